"""Which model each visitor's session uses: the app's own, or one this visitor adapted.

On a public Space one visitor must never change the labels everybody else gets, so an adapted
model belongs to the session that made it (gradio's session hash: a browser tab, or one
gradio_client Client) and every handler asks `classifier(request)` for the caller's model.
Adapted models live under one folder (storage.cache_root() / "adapted"); at most `max_loaded`
stay loaded at once (the least recently used is unloaded, and loads again from disk when its
session asks), at most `max_kept` stay on disk (the oldest go first), and a session's models are
deleted when it ends (`end_session`, wired to the page's unload).

Gradio keeps its own records per session, and a server that runs for weeks must bound them: one
session per page, but also one per API call from curl on /call/... or from a fresh gradio_client.
Its state (a copy of every component's config, about 165 KB a session on this page) is bounded by
launch's `state_session_capacity` (`MAX_SESSION_STATES`, set by app.py); its queue's record of
each session's pending events is not bounded at all, so `bound_queue_records` prunes it.
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
# Gradio session states kept in memory (the least recently used go first): about 165 MB at most.
# A page idle while this many newer sessions came loses its scored table and column choices.
MAX_SESSION_STATES = 1000
PRUNE_EVERY = 100  # new sessions between two prunings of gradio's pending-event record
STATE_TTL_S = 2 * 3600  # a visitor's batch result and review (a whole table) freed this long after last change


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
    from emotion_app.engine.threads import THREADS_BY_BATCH

    # served beside the app's own model, with the same thread policy as app.py's
    return EmotionClassifier.from_adapter(directory, thread_policy=THREADS_BY_BATCH)


class PendingEventIds(dict):
    """Gradio's record of each session's pending event ids (`Queue.pending_event_ids_session`),
    less the sessions with none pending. Gradio empties a session's set as its answers are
    delivered but drops the key only when a page disconnects mid-stream, so a session per API
    call leaves a key and an empty set (about 0.4 KB) per call, for good. Every `prune_every` new
    sessions the empty ones go. Gradio adds a session here, on its event loop, between two awaits
    that also fill the set, so no coroutine sees an empty set it is about to use disappear."""

    def __init__(self, records=(), prune_every: int = PRUNE_EVERY):
        super().__init__(records)
        self.prune_every, self._added = prune_every, 0

    def __setitem__(self, session: str, event_ids: set) -> None:
        if session not in self:
            self._added += 1
            if self._added % self.prune_every == 0:
                self.prune()
        super().__setitem__(session, event_ids)

    def prune(self) -> None:
        for session in [session for session, event_ids in self.items() if not event_ids]:
            del self[session]


def bound_queue_records(queue, prune_every: int = PRUNE_EVERY) -> bool:
    """Swap gradio's pending-event record in `queue` (a Blocks' `_queue`) for a PendingEventIds.
    A private attribute, for want of any setting or hook that bounds it (gradio 6.31); should a
    gradio release rename it, say so and leave the queue as it is. True when bounded."""
    records = getattr(queue, "pending_event_ids_session", None)
    if isinstance(records, PendingEventIds):
        return True
    if type(records) is not dict:
        logger.warning("gradio's queue has no pending_event_ids_session dict (found %s): its per-session "
                       "record stays unbounded. Check benchmarks/soak_app.py against this gradio version.",
                       type(records).__name__)
        return False
    queue.pending_event_ids_session = PendingEventIds(records, prune_every)
    return True
