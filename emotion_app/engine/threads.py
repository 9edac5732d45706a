"""The engine's thread policy: as many intra-op threads as cores this process may use, split by
operator (the default) or by batch (`THREADS_BY_BATCH`: a server, bulk scoring)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

# How an engine uses its threads (EmotionClassifier.from_adapter's `thread_policy`):
THREADS_PER_RUN = "per_run"  # every run splits its operators over the threads: a lone short call answers soonest
THREADS_BY_BATCH = "by_batch"  # one thread per run, one batch per core at once: a server, bulk scoring
THREAD_POLICIES = (THREADS_PER_RUN, THREADS_BY_BATCH)


def set_num_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count (a process-wide setting) and return it.

    None picks `default_num_threads()`. More threads than cores only adds contention; on a
    shared machine or under Ray (one worker per core) pass 1.
    """
    import torch

    num_threads = thread_count(num_threads)
    if torch.get_num_threads() != num_threads:
        logger.info("torch threads: %d -> %d", torch.get_num_threads(), num_threads)
        torch.set_num_threads(num_threads)
    return num_threads


def thread_count(num_threads: int | None) -> int:
    """`num_threads` checked; None: `default_num_threads()`."""
    if num_threads is None:
        return default_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a whole number of at least 1, found {num_threads!r}. "
                         "Leave it unset to use every core this process may run on.")
    return num_threads


def check_thread_policy(policy: str) -> str:
    if policy not in THREAD_POLICIES:
        raise ValueError(f"thread_policy must be one of {', '.join(map(repr, THREAD_POLICIES))}, found {policy!r}: "
                         f"{THREADS_BY_BATCH!r} for a server or bulk scoring, else {THREADS_PER_RUN!r}.")
    return policy


def default_num_threads() -> int:
    """OMP_NUM_THREADS when set (the user's explicit choice), else the cores this process may
    run on (its CPU affinity, which honours taskset/cgroup pinning, unlike os.cpu_count)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
