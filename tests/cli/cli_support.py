"""Helpers of the command tests: a folder that takes no new file, a stand-in for the steps that
must not run, and a file's bytes and time to show it untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _takes_files(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def make_read_only(folder: Path):
    """Make `folder` take no new file (chmod; as root, which ignores modes, the immutable
    attribute); returns a function that undoes it. Skips the test where neither works."""
    folder.chmod(0o555)
    immutable = False
    if _takes_files(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    if _takes_files(folder):
        folder.chmod(0o755)
        pytest.skip("cannot make a read-only folder here (root without chattr +i)")

    def undo() -> None:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)

    return undo


def never(*_args, **_kwargs):
    """Stands in for a step that must not run (a model load, the training): the runner reports it
    as a bug (exit 1), so an expected 2, 3 or 4 fails the test."""
    raise AssertionError("ran a step that the checks before it must have stopped")


def snapshot(path: Path) -> tuple[bytes, int]:
    """A file's bytes and modification time, to show it was not touched."""
    return path.read_bytes(), os.stat(path).st_mtime_ns
