"""The real app (`python app.py`, embedded model) on a free loopback port, started once per test
session and shared by the browser and API tests beside it (each asks `shared_app(request.config)`).

The process gets no HF_HUB_OFFLINE and a Hub endpoint that does not answer: the embedded model
must load without the network, and with no waiting on time-outs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "models" / "minilm-emotion-lora"
START_TIMEOUT_S = 300  # a loaded 2-core CI machine; usually well under a minute
_started: dict[str, AppServer | str] = {}  # one app per session, whichever test module asks first


@dataclass
class AppServer:
    process: subprocess.Popen
    url: str
    log: Path
    startup_seconds: float

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-5000:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(log_dir: Path, adapter: Path | None = None) -> AppServer:
    """`python app.py` on the embedded model, or on `adapter`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMOTION_ADAPTER", "HF_HUB_OFFLINE", "GRADIO_SERVER_NAME")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false",
               HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")  # a closed port: the Hub is unreachable

    log = log_dir / "app.log"
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        command = [sys.executable, "app.py", *(["--adapter", str(adapter)] if adapter else [])]
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT)
    server = AppServer(process, f"http://127.0.0.1:{port}/", log, 0.0)
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(f"python app.py exited with {process.returncode} before serving:\n{server.output()}")
        if _answers(f"{server.url}gradio_api/info"):
            server.startup_seconds = time.perf_counter() - started
            return server
        time.sleep(0.5)
    server.stop()
    pytest.fail(f"python app.py did not serve within {START_TIMEOUT_S} s:\n{server.output()}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def shared_app(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> AppServer:
    """The session's app, started on first use and stopped when the session ends."""
    if not (ADAPTER / "adapter_config.json").is_file():
        pytest.skip(f"the embedded model {ADAPTER} is missing (train it: see README)")
    if "failed" in _started:  # one failed start per session is enough; do not wait again
        pytest.fail(_started["failed"])
    if "app" not in _started:
        try:
            server = start_app(tmp_path_factory.mktemp("app"))
        except pytest.fail.Exception as err:
            _started["failed"] = str(err)
            raise
        config.add_cleanup(server.stop)
        _started["app"] = server
    return _started["app"]
