"""A server that runs for weeks: what gradio keeps per session stays bounded however many sessions
come (the app built in-process around a fake classifier, served on a loopback port, a fresh
session per /classify call as curl and one-off gradio_clients make), and the public page names no
folder of the server. The full soak against the real app is `python benchmarks/soak_app.py`."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import LABEL_NAMES, REPO, FakePredictor

import app
from emotion_app.ui.layout import build_demo, model_info, storage_in_words
from emotion_app.ui.sessions import PRUNE_EVERY, PendingEventIds, bound_queue_records

sys.path.insert(0, str(REPO / "benchmarks"))
import load_app  # the soak's light client

MAX_SESSIONS = 20
CLIENTS = 10


@pytest.fixture
def served(monkeypatch, tmp_path):
    """The app's Blocks with app.py's session bounds, launched on a free loopback port."""
    for name, value in (("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500"), ("GRADIO_ANALYTICS_MAX_EVENTS", "1000")):
        monkeypatch.setenv(name, value)  # as app.lighten_gradio_analytics sets them
    demo = build_demo(FakePredictor(record=False), output_dir=tmp_path / "out")  # a long run keeps no texts
    app.bound_session_memory(demo, MAX_SESSIONS)
    demo.launch(server_name="127.0.0.1", server_port=load_app.free_port(), prevent_thread_lock=True, quiet=True)
    yield demo, demo.local_url
    demo.close()


def call_in_fresh_sessions(url: str, count: int, tag: str) -> None:
    """`count` /classify answers, each in a session of its own, CLIENTS at a time (bounded by time-outs)."""
    async def run():
        caller = load_app.http_caller(url, 0)
        async with load_app._http_session(connections=2 * CLIENTS) as session:
            limit = asyncio.Semaphore(CLIENTS)

            async def one(number: int):
                async with limit:
                    answer = await asyncio.wait_for(load_app.http_ask(
                        session, url, "i feel so happy today", "classify",
                        {**caller, "session_hash": f"{tag}{number}"}), load_app.PREDICT_TIMEOUT_S)
                    assert list(answer) == list(LABEL_NAMES)

            await asyncio.gather(*(one(n) for n in range(count)))

    asyncio.run(run())


def records(demo) -> dict[str, int]:
    queue = demo._queue
    return {"states": len(demo.state_holder.session_data), "pending": len(queue.pending_event_ids_session),
            "sessions_seen": len(queue.pending_messages_per_session)}  # gradio's own LRU, 2,000 at most


def test_session_records_stay_bounded_with_a_session_per_call(served):
    demo, url = served
    assert demo.state_holder.capacity == MAX_SESSIONS  # launch got app.py's state_session_capacity
    call_in_fresh_sessions(url, 150, "first")
    after_few = records(demo)
    call_in_fresh_sessions(url, 450, "then")
    after_many = records(demo)
    assert after_many["sessions_seen"] == 600  # every call came in a session of its own
    for seen in (after_few, after_many):
        assert seen["states"] <= MAX_SESSIONS
        assert seen["pending"] < PRUNE_EVERY + CLIENTS  # unbounded, it would be one per call: 150, then 600
    assert len(demo.state_holder.time_last_used) <= MAX_SESSIONS


def test_pending_event_ids_keep_sessions_with_events_and_drop_the_rest():
    records = PendingEventIds(prune_every=3)
    records["waiting"] = {"event-1"}
    records["done"] = set()
    assert set(records) == {"waiting", "done"}
    records["new"] = set()  # the third new session prunes first: "done" has nothing pending
    assert set(records) == {"waiting", "new"}
    records["new"].add("event-2")
    records["new"] = records["new"]  # an existing session is no new one: no pruning
    assert records["waiting"] == {"event-1"} and records["new"] == {"event-2"}


def test_bound_queue_records_swaps_the_dict_once_and_reports_a_changed_gradio(caplog):
    queue = SimpleNamespace(pending_event_ids_session={"a": {"event"}, "b": set()})
    assert bound_queue_records(queue) and bound_queue_records(queue)
    assert isinstance(queue.pending_event_ids_session, PendingEventIds)
    assert queue.pending_event_ids_session == {"a": {"event"}, "b": set()}  # nothing lost in the swap

    assert not bound_queue_records(SimpleNamespace(pending_events={}))  # a later gradio's name, say
    assert "no pending_event_ids_session dict" in caplog.text and "stays unbounded" in caplog.text


# --- the public page names no folder of the server --------------------------------------------------

def server_paths(text: str) -> list[str]:
    """Absolute or home-relative paths in `text` (a Hub id like user/model is none)."""
    return re.findall(r"(?:^|[\s`(*:])((?:~|/)[\w.-]*/[\w./-]*)", text)


def test_the_header_says_where_models_are_kept_in_words(monkeypatch, tmp_path):
    cache = tmp_path / "home" / ".cache" / "emotion_app"
    monkeypatch.setenv("EMOTION_APP_CACHE", str(cache))
    monkeypatch.delenv("SPACE_ID", raising=False)
    adapter, base = tmp_path / "adapters" / "my-emotion-lora", tmp_path / "bases" / "my-base"
    adapter.mkdir(parents=True)
    base.mkdir(parents=True)
    text = model_info(FakePredictor(adapter=str(adapter), base_model=str(base)), None)
    assert "this machine's cache" in text
    assert "`my-emotion-lora` (a folder on this machine)" in text and "`my-base`" in text
    assert str(tmp_path) not in text and str(Path.home()) not in text and not server_paths(text)
    hub = model_info(FakePredictor(base_model="sentence-transformers/all-MiniLM-L6-v2"), None)
    assert "`someone/fake-adapter`" in hub and "`sentence-transformers/all-MiniLM-L6-v2`" in hub


def test_the_page_config_carries_no_cache_path(monkeypatch, tmp_path):
    cache = tmp_path / "server-cache"
    monkeypatch.setenv("EMOTION_APP_CACHE", str(cache))
    demo = build_demo(FakePredictor(adapter=str(tmp_path / "adapter")), output_dir=tmp_path / "out")
    markdown = [block.value for block in demo.blocks.values() if type(block).__name__ == "Markdown"]
    header = " ".join(str(value) for value in markdown if "Models are kept in" in str(value))
    assert header and not server_paths(header)
    assert str(cache) not in json.dumps(demo.config, default=str)


def test_storage_words_for_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/emotion")
    assert storage_in_words(Path("/data/emotion_app")) == "the Space's persistent storage (kept across restarts)"
    assert "a Space restart starts it afresh" in storage_in_words(Path("/home/user/.cache/emotion_app"))
