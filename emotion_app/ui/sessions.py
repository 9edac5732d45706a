"""Which model each visitor's session uses: the app's own, or one this visitor adapted.

On a public Space one visitor must never change the labels everybody else gets, so an adapted
model belongs to the session that made it (gradio's session hash: a browser tab, or one
gradio_client Client) and every handler asks `classifier(request)` for the caller's model.
Adapted models live under one folder (storage.cache_root() / "adapted"); at most `max_loaded`
stay loaded at once (the least recently used is unloaded, and loads again from disk when its
session asks), at most `max_kept` stay on disk (the oldest go first), and a session's models are
deleted when it ends (`end_session`, wired to the page's unload).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_LOADED = 2  # adapted engines in memory at once (each about 100 MB with its ONNX model)
MAX_KEPT = 20  # adapted adapter directories on disk at once, all sessions together


@dataclass
class Adapted:
    """One adapted model: its directory, the session that made it, and what to show about it."""

    key: str
    session: str
    directory: Path
    lineage: str
    created: float = field(default_factory=time.time)


class SessionModels:
    """The default classifier for everyone, and per session the adapted one it chose to use."""

    def __init__(self, default, root: Path, load: Callable[[str], object] | None = None,
                 max_loaded: int = MAX_LOADED, max_kept: int = MAX_KEPT):
        self.default = default
        self.root = Path(root)
        self._load = load or _load_engine
        self.max_loaded, self.max_kept = max_loaded, max_kept
        self._adapted: dict[str, Adapted] = {}
        self._active: dict[str, str] = {}  # session -> key of the adapted model it uses
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def new_directory(self, session: str) -> tuple[str, Path]:
        """(key, a fresh directory path, not created) for an adaptation this session starts."""
        key = uuid.uuid4().hex[:12]
        return key, self.root / f"{_safe(session)}-{key}"

    def register(self, session: str, key: str, directory: Path, lineage: str) -> None:
        """Record a finished adaptation (its directory holds a complete adapter)."""
        with self._lock:
            self._adapted[key] = Adapted(key, session, Path(directory), lineage)
            evicted = self._evict_over_limit()
        for item in evicted:
            shutil.rmtree(item.directory, ignore_errors=True)

    def use(self, session: str, key: str | None) -> None:
        """Switch `session` to the adapted model `key` (None: back to the app's model)."""
        with self._lock:
            if key is None:
                self._active.pop(session, None)
                return
            item = self._adapted.get(key)
            if item is None or item.session != session:
                raise ValueError("that adapted model is not this session's (or was cleaned up): adapt again.")
            self._active[session] = key

    def classifier(self, request=None):
        """The model the caller's session uses (the app's own for callers without a session)."""
        session = getattr(request, "session_hash", None)
        with self._lock:
            key = self._active.get(session) if session else None
            item = self._adapted.get(key) if key else None
            if item is None:
                return self.default
            engine = self._loaded.get(key)
            if engine is not None:
                self._loaded.move_to_end(key)
                return engine
        engine = self._load(str(item.directory))  # outside the lock: loading takes seconds
        with self._lock:
            self._loaded[key] = engine
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
        return engine

    def lineage(self, request=None) -> str:
        """What the caller's session uses, in words for the header ("" for the app's model)."""
        session = getattr(request, "session_hash", None)
        with self._lock:
            item = self._adapted.get(self._active.get(session, "")) if session else None
            return item.lineage if item else ""

    def latest(self, session: str) -> Adapted | None:
        with self._lock:
            mine = [a for a in self._adapted.values() if a.session == session]
            return max(mine, key=lambda a: a.created) if mine else None

    def end_session(self, session: str | None) -> None:
        """Forget and delete everything `session` adapted (its page was closed)."""
        if not session:
            return
        with self._lock:
            mine = [a for a in self._adapted.values() if a.session == session]
            for item in mine:
                self._adapted.pop(item.key, None)
                self._loaded.pop(item.key, None)
            self._active.pop(session, None)
        for item in mine:
            shutil.rmtree(item.directory, ignore_errors=True)
        if mine:
            logger.info("Session ended: removed %d adapted model(s)", len(mine))

    def _evict_over_limit(self) -> list[Adapted]:
        """Oldest first, beyond max_kept (called with the lock held); their sessions fall back."""
        evicted = sorted(self._adapted.values(), key=lambda a: a.created)[:max(0, len(self._adapted) - self.max_kept)]
        for item in evicted:
            self._adapted.pop(item.key, None)
            self._loaded.pop(item.key, None)
            for session, key in list(self._active.items()):
                if key == item.key:
                    self._active.pop(session)
        return evicted


def _safe(session: str) -> str:
    return "".join(ch for ch in session if ch.isalnum())[:16] or "session"


def _load_engine(directory: str):
    from emotion_app.engine.classifier import EmotionClassifier

    classifier = EmotionClassifier.from_adapter(directory)
    classifier.share_cores_by_batch()  # served beside the app's own model, as app.py does
    return classifier
