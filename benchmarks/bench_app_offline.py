"""App start without the network, three ways: process start to the port answering, 3 starts each.

    python benchmarks/bench_app_offline.py

The default Hub endpoint (no network here: DNS fails), HF_ENDPOINT at a closed local port, and
HF_HUB_OFFLINE=1 set by hand (what the app used to set itself). Equal figures mean the embedded
model's start waits on no Hub time-out. Loopback only; each app is stopped once it answers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from load_app import free_port, start_app, stop_app

RUNS = 3


def seconds_to_answer(extra: dict[str, str], log: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    started = time.perf_counter()
    process, _url = start_app(None, log, timeout=300, env={**env, **extra})
    seconds = time.perf_counter() - started
    stop_app(process)
    return seconds


def main() -> None:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_app_offline-{os.getpid()}.log"
    ways = {"default endpoint": {}, "HF_ENDPOINT a closed port": {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
            "HF_HUB_OFFLINE=1 by hand": {"HF_HUB_OFFLINE": "1"}}
    for name, extra in ways.items():
        runs = [round(seconds_to_answer(extra, log), 2) for _ in range(RUNS)]
        print(f"{name}: {runs} s")  # the benchmark's result


if __name__ == "__main__":
    main()
