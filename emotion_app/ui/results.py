"""Files the app writes for a visitor (a scored table, a corrections table, a zipped adapter): one
folder per job, named `<prefix>-<id>`, under one root (the Adapt tab's by default
storage.cache_root() / RESULTS_DIR), and an age-based sweep whenever a new job's folder is made, so
the root stays bounded.

MAX_AGE_S is far beyond any use of a job's files: the adaptation child reads its corrections
file for at most ui.adapt.ADAPT_TIMEOUT_S (30 minutes), and a file returned to the page is copied
into gradio's own cache as the answer is sent. Age counts from last use: the newest change of the
folder or a file in it. The sweep deletes only folders with its own prefix ("batch", "adapt"), so
other files in the same root are left alone.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

RESULTS_DIR = "results"
MAX_AGE_S = 6 * 3600


class ResultFolders:
    """Job folders `<root>/<prefix>-<id>`, the ones older than `max_age_s` swept when one is made."""

    def __init__(self, root: Path, prefix: str, max_age_s: float = MAX_AGE_S):
        self.root, self.prefix, self.max_age_s = Path(root), prefix, max_age_s

    def new(self) -> Path:
        """A fresh, empty folder for one job (the old ones swept first)."""
        self.sweep()
        folder = self.root / f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        return folder

    def sweep(self, now: float | None = None) -> list[Path]:
        """Delete this prefix's folders last used more than max_age_s ago; the ones deleted."""
        now = time.time() if now is None else now
        if not self.root.is_dir():
            return []
        swept = [folder for folder in self.root.glob(f"{self.prefix}-*")
                 if folder.is_dir() and now - _last_use(folder) > self.max_age_s]
        for folder in swept:
            shutil.rmtree(folder, ignore_errors=True)
        if swept:
            logger.info("Removed %d result folder(s) unused for over %.0f h", len(swept), self.max_age_s / 3600)
        return swept


def _last_use(folder: Path) -> float:
    """The newest modification time of `folder` and the files in it (a file gone meanwhile: skipped)."""
    try:
        times = [folder.stat().st_mtime]
    except FileNotFoundError:  # swept by another job meanwhile: nothing left to sweep
        return time.time()
    for path in folder.rglob("*"):
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times)
