"""The app's side of adaptation (emotion_app/ui/adapt.py, ui/child.py, ui/results.py): the child
in a session of its own, read line by line under a deadline and a stop signal, its whole process
group ended when either fires; its JSON events driving the progress bar; result folders swept by
age; and the Review & adapt handler end to end on a real `python -m emotion_app adapt` child."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from support import SPLIT_ROWS

from emotion_app.labels import EMOTIONS
from emotion_app.train.adaptation.progress import DONE, ERROR, STEP, Event, encode
from emotion_app.ui import adapt as adapt_ui
from emotion_app.ui.child import FINISHED, STOPPED, TIMED_OUT, ChildResult, run_child
from emotion_app.ui.common import Limits
from emotion_app.ui.results import ResultFolders
from emotion_app.ui.sessions import SessionModels


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process `pid` no longer runs (a zombie awaiting its reaper counts as gone)."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


# --- the child runner ------------------------------------------------------------------------------

def test_lines_come_as_they_are_written_and_the_exit_code_is_kept():
    seen = []
    result = run_child(python("import sys\nfor i in range(3): print('line', i)\nsys.exit(3)"), seen.append, 60)
    assert seen == ["line 0\n", "line 1\n", "line 2\n"]
    assert (result.outcome, result.returncode, result.tail) == (FINISHED, 3, ["line 0", "line 1", "line 2"])


def test_the_child_runs_in_a_session_of_its_own():
    seen = []
    run_child(python("import os; print(os.getsid(0), os.getpgid(0), os.getpid())"), seen.append, 60)
    sid, pgid, pid = map(int, seen[0].split())
    assert sid == pgid == pid != os.getsid(0)


@pytest.mark.parametrize("hang", [
    "import time; print('started', flush=True); time.sleep(120)",
    "import sys, time; sys.stdout.write('half a line'); sys.stdout.flush(); time.sleep(120)",  # no newline ever
])
def test_the_deadline_fires_for_a_child_that_hangs(hang):
    result = run_child(python(hang), lambda line: None, timeout_s=1)
    assert result.outcome == TIMED_OUT and result.returncode is not None


def test_the_whole_process_group_is_ended_not_only_the_child():
    grandchild = []
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print(p.pid, flush=True)\ntime.sleep(120)")
    result = run_child(python(code), lambda line: grandchild.append(int(line)), timeout_s=3)
    assert result.outcome == TIMED_OUT
    assert grandchild and gone(grandchild[0])


def test_a_stop_ends_the_child_at_once():
    stop = threading.Event()
    pids = []

    def on_line(line):
        pids.append(int(line))
        stop.set()

    result = run_child(python("import os, time; print(os.getpid(), flush=True); time.sleep(120)"), on_line,
                       timeout_s=600, stop=stop)
    assert result.outcome == STOPPED and gone(pids[0])


def test_a_failing_line_handler_leaves_no_child_behind():
    pids = []

    def on_line(line):
        pids.append(int(line))
        raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError, match="the handler failed"):
        run_child(python("import os, time; print(os.getpid(), flush=True); time.sleep(120)"), on_line, 600)
    assert gone(pids[0])


# --- the app's reading of the events --------------------------------------------------------------

class Bar:
    """gr.Progress's call, recorded."""

    def __init__(self):
        self.calls = []

    def __call__(self, value, desc="", unit=""):
        self.calls.append((value, desc))


def test_step_events_move_the_bar_error_and_done_are_kept_log_lines_pass():
    bar = Bar()
    reader = adapt_ui.ChildEvents(bar)
    for line in ["INFO emotion_app.train.adaptation.run: held-out fold 1/5 done", encode(Event(STEP, 1, 4)),
                 "training step 2/4", encode(Event(STEP, 4, 4)), encode(Event(DONE, output_dir="/x")), "{broken"]:
        reader.line(line + "\n")
    assert [value for value, _ in bar.calls] == [(1, 4), (4, 4)]
    assert all(desc.startswith("Adapting: about") for _, desc in bar.calls)
    assert reader.done == "/x" and reader.error is None
    assert reader.succeeded(ChildResult(FINISHED, 0))
    assert not reader.succeeded(ChildResult(FINISHED, 1)) and not reader.succeeded(ChildResult(STOPPED, -15))


def test_failures_say_why():
    reader = adapt_ui.ChildEvents(Bar())
    timed_out = reader.failure(ChildResult(TIMED_OUT, -15, ["INFO loading"]))
    assert f"longer than {adapt_ui.ADAPT_TIMEOUT_S // 60} minutes" in timed_out and "fewer corrections" in timed_out
    assert "exit code 1" in reader.failure(ChildResult(FINISHED, 1, ["Traceback ...", "RuntimeError: boom"]))
    assert "RuntimeError: boom" in reader.failure(ChildResult(FINISHED, 1, ["RuntimeError: boom"]))
    reader.line(encode(Event(ERROR, message="found 9 corrections: expected at least 10")))
    assert reader.failure(ChildResult(FINISHED, 2)) == "The adaptation failed: found 9 corrections: expected at least 10"


# --- result folders -------------------------------------------------------------------------------

def test_result_folders_are_per_job_and_swept_by_last_use(tmp_path):
    folders = ResultFolders(tmp_path, "adapt", max_age_s=3600)
    old, used, fresh = folders.new(), folders.new(), folders.new()
    assert len({old, used, fresh}) == 3 and all(f.parent == tmp_path and f.name.startswith("adapt-")
                                                for f in (old, used, fresh))
    other = tmp_path / "batch-output"  # not this prefix: never swept
    other.mkdir()
    (used / "corrections.csv").write_text("text,label\n", encoding="utf-8")
    long_ago = time.time() - 7200
    for path in (old, used, other):
        os.utime(path, (long_ago, long_ago))  # the folder is old, but `used` holds a file written just now
    assert folders.sweep() == [old]
    assert not old.exists() and used.exists() and fresh.exists() and other.exists()
    assert set(folders.sweep(now=time.time() + 7200)) == {used, fresh}


def test_a_new_job_sweeps_the_old_folders(tmp_path):
    folders = ResultFolders(tmp_path, "adapt", max_age_s=60)
    old = folders.new()
    os.utime(old, (time.time() - 120,) * 2)
    folders.new()
    assert not old.exists()


# --- the handler, on a real child -----------------------------------------------------------------

class Parent:
    """The session's model as the handler sees it: labels and the adapter directory."""

    labels = EMOTIONS

    def __init__(self, directory: Path):
        self.info = {"directory": str(directory)}


def corrections_file(path: Path) -> str:
    rows = [(text, EMOTIONS[label]) for text, label in SPLIT_ROWS["train"][:24]]
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def tab(trained_bert_adapter, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(adapt_ui.REPLAY_ENV, str(data_dir))  # no Hub
    models = SessionModels(Parent(trained_bert_adapter), tmp_path / "adapted", load=Parent)
    return adapt_ui.AdaptHandlers(models, Limits(), output_dir=tmp_path / "results")


def test_local_replay_data_reaches_the_child_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(adapt_ui.REPLAY_ENV, raising=False)
    monkeypatch.delenv(adapt_ui.NEUTRAL_ENV, raising=False)
    plain = adapt_ui.adapt_command("parent", "fixed.csv", tmp_path / "out")
    assert "--replay_data" not in plain and "--neutral_data" not in plain  # the Hub, by default
    monkeypatch.setenv(adapt_ui.REPLAY_ENV, "/data/emotion")
    monkeypatch.setenv(adapt_ui.NEUTRAL_ENV, "/data/goemotions/train.csv")
    command = adapt_ui.adapt_command("parent", "fixed.csv", tmp_path / "out")
    assert command[command.index("--replay_data") + 1] == "/data/emotion"
    assert command[command.index("--neutral_data") + 1] == "/data/goemotions/train.csv"


def test_the_handler_adapts_through_the_child_with_a_progress_bar(tab, tmp_path):
    bar = Bar()
    alice = SimpleNamespace(session_hash="alice")
    text = tab.adapt(None, corrections_file(tmp_path / "fixed.csv"), bar, alice)
    assert "held-out corrections" in text and "dair-ai/emotion test" in text
    steps = [value for value, _ in bar.calls[1:]]
    assert bar.calls[0] == ((0, 1), "Adapting: loading") and steps and steps[-1][0] == steps[-1][1]
    latest = tab.models.latest("alice")
    assert latest is not None and (latest.directory / "adapter_config.json").is_file()
    assert latest.directory.parent == tmp_path / "adapted"
    zipped = Path(tab.download_adapter(alice))
    assert zipped.parent.parent == tmp_path / "results" and zipped.parent.name.startswith("adapt-")


def test_a_child_that_fails_shows_its_error_and_leaves_nothing(tab, tmp_path):
    broken = tmp_path / "not-an-adapter"
    broken.mkdir()
    tab.models.default = Parent(broken)
    with pytest.raises(gr.Error) as failed:
        tab.adapt(None, corrections_file(tmp_path / "fixed.csv"), Bar(), SimpleNamespace(session_hash="bob"))
    # the child's error event, as written, not the end of its output
    message = str(failed.value.message)
    assert message.startswith("The adaptation failed: ") and str(broken) in message and "adapter_config.json" in message
    assert not any((tmp_path / "adapted").glob("*")) and tab.models.latest("bob") is None


def test_a_child_over_the_time_limit_is_stopped_with_a_clear_message(tab, tmp_path, monkeypatch):
    monkeypatch.setattr(adapt_ui, "ADAPT_TIMEOUT_S", 1)
    with pytest.raises(gr.Error, match="took longer than"):
        tab.adapt(None, corrections_file(tmp_path / "fixed.csv"), Bar(), SimpleNamespace(session_hash="carol"))
    assert not any((tmp_path / "adapted").glob("*"))


@pytest.mark.parametrize("how", ["stop", "end_session"])
def test_stop_or_a_closed_page_ends_the_running_child(tab, tmp_path, how):
    dave = SimpleNamespace(session_hash="dave")

    class StopAtFirstStep(Bar):
        def __call__(self, value, desc="", unit=""):
            super().__call__(value, desc, unit)
            if value != (0, 1):
                getattr(tab, how)(dave)

    bar = StopAtFirstStep()
    assert tab.adapt(None, corrections_file(tmp_path / "fixed.csv"), bar, dave) == adapt_ui.STOPPED_TEXT
    assert len(bar.calls) == 2  # loading, then the first step: nothing after the stop
    assert not any((tmp_path / "adapted").glob("*")) and tab.models.latest("dave") is None
