"""The Hub only when there is a network, never a process-wide offline switch, and the Space's storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from emotion_app.storage import cache_root

REPO = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "SPACE_ID", "EMOTION_APP_CACHE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    return env


def test_the_hub_test_split_says_it_cannot_reach_the_hub_within_seconds():
    code = ("import time, gradio as gr\n"
            "from emotion_app.ui.common import Limits\n"
            "from emotion_app.ui.evaluation import EvaluationHandlers\n"
            "class Fake:\n    labels = None\n"
            "started = time.perf_counter()\n"
            "try:\n    EvaluationHandlers(Fake(), Limits()).evaluate_hub(progress=lambda *a, **k: None)\n"
            "except gr.Error as err:\n    print('MESSAGE', err.message)\n"
            "print('SECONDS', time.perf_counter() - started)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=offline_env(), capture_output=True,
                         text=True, timeout=120).stdout
    message = out.split("MESSAGE ", 1)[1].split("\n")[0]
    seconds = float(out.split("SECONDS ", 1)[1])
    assert "cannot reach the Hugging Face Hub" in message and "upload a labelled file" in message
    assert seconds < 10


def test_the_embedded_model_loads_without_the_network_and_leaves_the_environment_alone():
    code = ("import os, time, app\n"
            "started = time.perf_counter()\n"
            "demo, _ = app.build(app.build_parser().parse_args([]))\n"
            "print('SECONDS', time.perf_counter() - started)\n"
            "print('OFFLINE', os.environ.get('HF_HUB_OFFLINE'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=offline_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OFFLINE None" in out.stdout
    assert float(out.stdout.split("SECONDS ", 1)[1].split()[0]) < 60  # no time-out waits (about 5-15 s here)


def test_a_hub_adapter_without_network_is_a_clear_error():
    code = ("from emotion_app.engine.adapters import adapter_directory\n"
            "try:\n    adapter_directory('someone/never-downloaded')\n"
            "except ValueError as err:\n    print('MESSAGE', err)\n")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=offline_env(), capture_output=True,
                         text=True, timeout=120).stdout
    assert "never downloaded" in out and "cannot reach the Hugging Face Hub" in out
    assert time.perf_counter() - started < 30


def test_a_space_with_persistent_storage_keeps_the_cache_there(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOTION_APP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    data = tmp_path / "data"
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert cache_root(data) == tmp_path / "home-cache" / "emotion_app"  # not a Space
    monkeypatch.setenv("SPACE_ID", "someone/emotion")
    assert cache_root(data) == tmp_path / "home-cache" / "emotion_app"  # a Space without storage
    data.mkdir()
    assert cache_root(data) == data / "emotion_app"
    monkeypatch.setenv("EMOTION_APP_CACHE", str(tmp_path / "mine"))
    assert cache_root(data) == tmp_path / "mine"  # the owner's choice wins
