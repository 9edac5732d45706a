"""A child process run from one of the server's threads, bounded in time and stoppable.

The child starts in a session of its own (`start_new_session`: no Python code runs between fork
and exec, which `preexec_fn` would do, unsafe in a threaded server). A reader thread passes its
output (stdout and stderr together) line by line through a queue, so the caller's loop watches a
deadline and a stop signal while it waits for the next line; when either fires, the child's
whole process group is ended (SIGTERM, then SIGKILL after KILL_GRACE_S).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

logger = logging.getLogger(__name__)

FINISHED, TIMED_OUT, STOPPED = "finished", "timed out", "stopped"
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL
POLL_S = 0.2  # how often the loop looks at the stop signal while no line comes
TAIL_LINES = 20  # output lines kept for a message when the child fails without saying why


@dataclass
class ChildResult:
    """How the child ended: FINISHED (by itself, `returncode` set), TIMED_OUT or STOPPED (its group
    was ended here; `returncode` is what killing it left); the last lines of its output."""

    outcome: str
    returncode: int | None
    tail: list[str] = field(default_factory=list)


def run_child(command: list[str], on_line: Callable[[str], None], timeout_s: float,
              stop: threading.Event | None = None, env: dict[str, str] | None = None) -> ChildResult:
    """Run `command`, calling `on_line(line)` for each line of its output as it comes, until it ends,
    `timeout_s` pass or `stop` is set. The child's process group never outlives this call."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding="utf-8", errors="replace", env=env, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), name="child-output", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        outcome = _follow(lines, on_line, tail, deadline, stop)
        if outcome == FINISHED:
            outcome = _wait(process, deadline)
    finally:
        if process.poll() is None:  # over time, stopped, or on_line raised: nothing is left running
            _end_group(process)
        reader.join(timeout=KILL_GRACE_S)
    return ChildResult(outcome, process.returncode, list(tail))


def _follow(lines: queue.Queue, on_line, tail: deque, deadline: float, stop: threading.Event | None) -> str:
    """Pass the child's lines on until its output ends (FINISHED), the deadline or the stop."""
    while True:
        if stop is not None and stop.is_set():
            return STOPPED
        left = deadline - time.monotonic()
        if left <= 0:
            return TIMED_OUT
        try:
            line = lines.get(timeout=min(POLL_S, left))
        except queue.Empty:
            continue
        if line is None:
            return FINISHED
        tail.append(line.rstrip("\n"))
        on_line(line)


def _wait(process: subprocess.Popen, deadline: float) -> str:
    """Its output is closed: it is exiting (or has closed its output and hangs: then TIMED_OUT)."""
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        return TIMED_OUT
    return FINISHED


def _pump(stream: IO[str], lines: queue.Queue) -> None:
    """The reader thread: every line of `stream`, then None at its end."""
    try:
        for line in stream:
            lines.put(line)
    finally:
        stream.close()
        lines.put(None)


def _end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after KILL_GRACE_S."""
    if not hasattr(os, "killpg"):  # no process groups (Windows): the child alone
        process.kill()
        process.wait()
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is gone already
            break
        try:
            process.wait(timeout=KILL_GRACE_S)
            break
        except subprocess.TimeoutExpired:
            logger.warning("child %d ignored SIGTERM for %.0f s: killing its group", process.pid, KILL_GRACE_S)
    process.wait()
