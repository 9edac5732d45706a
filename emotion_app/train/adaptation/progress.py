"""The progress protocol between `python -m emotion_app adapt --progress json` (the child) and the
app that runs it (emotion_app/ui/adapt.py): one JSON object per line on the child's stdout.

    {"event": "step", "step": 12, "total": 240}       after an optimizer step (not every one)
    {"event": "error", "message": "found 9 corrections: expected at least 10, ..."}
    {"event": "done", "output_dir": "/.../adapted"}    the adapter is saved

Any other line (the command's log and its summary) is no event: `decode` returns None for it, so
the reader keeps it for a message and moves on. Both sides import this module, and nothing else
names the events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

STEP, ERROR, DONE = "step", "error", "done"
STEPS_SHOWN = 100  # step events per run at most: one per percent of the steps


@dataclass(frozen=True)
class Event:
    """One decoded line: `kind` is STEP (step, total), ERROR (message) or DONE (output_dir)."""

    kind: str
    step: int = 0
    total: int = 0
    message: str = ""
    output_dir: str = ""


def encode(event: Event) -> str:
    """One line of JSON (no newline) with the fields `event.kind` carries."""
    fields = {STEP: {"step": event.step, "total": event.total}, ERROR: {"message": event.message},
              DONE: {"output_dir": event.output_dir}}
    if event.kind not in fields:
        raise ValueError(f"progress event {event.kind!r}: expected one of {STEP}, {ERROR}, {DONE}.")
    return json.dumps({"event": event.kind, **fields[event.kind]}, ensure_ascii=False)


def decode(line: str) -> Event | None:
    """The event a line carries, or None for any other line (log text, a summary, a malformed or
    unknown event), so that a reader can pass over the child's other output."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("event")
    if kind == STEP and _whole(data.get("step")) and _whole(data.get("total")):
        return Event(STEP, step=data["step"], total=data["total"])
    if kind == ERROR and isinstance(data.get("message"), str):
        return Event(ERROR, message=data["message"])
    if kind == DONE and isinstance(data.get("output_dir"), str):
        return Event(DONE, output_dir=data["output_dir"])
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class EventWriter:
    """The child's side: writes events to `stream` (stdout), one flushed line each, so the app sees
    them as they happen. Use `step` as `adapt`'s progress callback."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.shown = -1

    def step(self, step: int, total: int) -> None:
        """A step event at the first step of each percent of `total` (the last step is one)."""
        share = step * STEPS_SHOWN // max(total, 1)
        if share != self.shown:
            self.shown = share
            self.write(Event(STEP, step=step, total=total))

    def error(self, message: str) -> None:
        self.write(Event(ERROR, message=message))

    @contextmanager
    def errors_reported(self) -> Iterator[None]:
        """An error event for what the command reports as the user's to fix (a ValueError: bad
        input or options; an OSError; an interrupt), then the exception goes on to the command's
        own handling (its exit code and error line). Anything else is a bug: no event, and the app
        shows the end of the child's output instead."""
        try:
            yield
        except (ValueError, OSError) as err:
            self.error(str(err))
            raise
        except KeyboardInterrupt:
            self.error("interrupted: no adapter was written.")
            raise

    def done(self, output_dir: str) -> None:
        self.write(Event(DONE, output_dir=output_dir))

    def write(self, event: Event) -> None:
        self.stream.write(encode(event) + "\n")
        self.stream.flush()
