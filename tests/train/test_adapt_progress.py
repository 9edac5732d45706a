"""The adaptation child's progress protocol (emotion_app/train/adaptation/progress.py): what the
child writes decodes to the same events, and every other line is no event."""

from __future__ import annotations

import io
import json

import pytest

from emotion_app.train.adaptation.progress import (
    DONE,
    ERROR,
    STEP,
    STEPS_SHOWN,
    Event,
    EventWriter,
    decode,
    encode,
)


@pytest.mark.parametrize("event", [Event(STEP, step=3, total=40), Event(ERROR, message="found 9 corrections: … é"),
                                   Event(DONE, output_dir="/data/emotion_app/adapted/x")])
def test_every_event_round_trips_as_one_json_line(event):
    line = encode(event)
    assert "\n" not in line and json.loads(line)["event"] == event.kind
    assert decode(line + "\n") == event


@pytest.mark.parametrize("line", [
    "INFO emotion_app.train.adaptation.run: held-out fold 1/5 done (10 rows)",
    "Adapted parent on 48 corrections into /tmp/out.",
    "{not json",
    "[1, 2]",
    '{"event": "step", "step": "3", "total": 40}',
    '{"event": "step", "step": true, "total": 40}',
    '{"event": "step", "step": -1, "total": 40}',
    '{"event": "error"}',
    '{"event": "done", "output_dir": 7}',
    '{"event": "finished", "output_dir": "/tmp/out"}',
    "",
])
def test_other_lines_are_no_event(line):
    assert decode(line) is None


def test_an_unknown_event_cannot_be_encoded():
    with pytest.raises(ValueError, match=r"progress event 'finished': expected one of step, error, done"):
        encode(Event("finished"))


@pytest.mark.parametrize("total", [1, 7, 100, 1000])
def test_step_events_come_at_most_once_a_percent_and_end_at_the_last_step(total):
    stream = io.StringIO()
    writer = EventWriter(stream)
    for step in range(1, total + 1):
        writer.step(step, total)
    events = [decode(line) for line in stream.getvalue().splitlines()]
    steps = [event.step for event in events]
    assert all(event.kind == STEP and event.total == total for event in events)
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == total
    assert len(steps) == min(total, STEPS_SHOWN + 1)


def test_failures_the_user_can_fix_become_an_error_event_and_go_on():
    stream = io.StringIO()
    writer = EventWriter(stream)
    with pytest.raises(ValueError, match="too few"), writer.errors_reported():
        raise ValueError("too few corrections")
    with pytest.raises(KeyboardInterrupt), writer.errors_reported():
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), writer.errors_reported():  # a bug: the app shows the output's end
        raise RuntimeError("bug")
    events = [decode(line) for line in stream.getvalue().splitlines()]
    assert events == [Event(ERROR, message="too few corrections"),
                      Event(ERROR, message="interrupted: no adapter was written.")]

