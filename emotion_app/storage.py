"""Where the app keeps what it makes (the engine's ONNX models, adapted models): one root for all.

$EMOTION_APP_CACHE when set; else, on a Hugging Face Space (SPACE_ID set) with persistent storage
(a writable /data), /data/emotion_app, so a restart is a cached start; else the user's cache
(~/.cache/emotion_app, or $XDG_CACHE_HOME/emotion_app).
"""

from __future__ import annotations

import os
from pathlib import Path

SPACE_STORAGE = Path("/data")


def cache_root(space_storage: Path = SPACE_STORAGE) -> Path:
    """The root directory (not created here)."""
    if os.environ.get("EMOTION_APP_CACHE"):
        return Path(os.environ["EMOTION_APP_CACHE"])
    if os.environ.get("SPACE_ID") and space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return space_storage / "emotion_app"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotion_app"


def describe(root: Path) -> str:
    """Where things are kept, in words for the info panel."""
    if os.environ.get("EMOTION_APP_CACHE"):
        return f"{root} ($EMOTION_APP_CACHE)"
    if root.is_relative_to(SPACE_STORAGE):
        return f"{root} (the Space's persistent storage: kept across restarts)"
    return f"{root} (this machine's cache{'; a Space restart starts it afresh' if os.environ.get('SPACE_ID') else ''})"
