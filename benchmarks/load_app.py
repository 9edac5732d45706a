"""Load test: N concurrent clients call the app's APIs for T seconds each.

    python benchmarks/load_app.py                               # starts `python app.py` on a free port
    python benchmarks/load_app.py --clients 20 --seconds 60 --json load.json
    python benchmarks/load_app.py --endpoints classify --clients 20 --seconds 60

Endpoints (--endpoints, default all three, one after the other on the same app): `classify` (the
lean batched API), `predict` (what API callers of /predict get), `ui` (what the Predict tab asks:
/show, the page's one event: the probabilities, the top emotion in words and the word importances).
    python benchmarks/load_app.py --url http://127.0.0.1:7860 --pid 1234   # an app already running

Clients (--client): `http` (default), coroutines in this one thread speaking gradio's HTTP queue
protocol as the page and gradio_client do (one session each: join the queue, read the session's
event stream), over aiohttp; `gradio`, one gradio_client each, with its threads. On a 2-core
machine the load generator shares the cores with the server: 20 gradio_clients take most of them
themselves, which is why the light client is the default. The report adds the app's CPU time per
answer and the load generator's own, so that what the app would serve on cores of its own shows too.

Loopback only (127.0.0.0/8, localhost, ::1): the script refuses any other address. It is bounded:
each client stops sending at the deadline, every request has a time-out, and the whole run ends by
itself. First one client asks for every text once, in turn (the sequential answers); then the
clients run together, each cycling through the texts from its own offset, and every answer is
compared with the sequential one for the same text. It reports requests, errors, mismatches,
throughput, p50/p95/max latency and the app process's RSS before and after the load (and its peak,
sampled twice a second). Exit status: 0 when there were no errors and no mismatches, 1 otherwise,
2 for bad usage or an app that did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil
from _common import REPO, setup_logging

logger = logging.getLogger("load_app")

# Texts of the kind the app gets; written here (never the data set), varied in length.
TEXTS = [
    "i feel so happy today",
    "i am terrified of what the doctor will say tomorrow",
    "honestly i felt a bit lonely at the party last night even with everyone around",
    "i was amazed when the whole class stood up and clapped",
    "i am furious that they cancelled the train again without telling anyone",
    "i love the way you laugh",
    "nothing special happened",
    "i feel like giving up",
    "what a wonderful surprise to see you here after all these years",
    "i am scared",
    "my heart is full of love for my little sister who just started school",
    "this is outrageous and i want my money back",
    "i feel calm and content sitting by the window with a cup of tea",
    "i cannot stop crying since the dog died",
    "wow i did not expect that ending at all",
    "i am anxious about the exam results coming out on friday morning",
    "we won the match and i am delighted with how the team played",
    "he shouted at me in front of everyone and i am still angry",
    "i feel tender and affectionate towards my old friends",
    "i was shocked to hear the news",
]
PREDICT_TIMEOUT_S = 60.0
TOLERANCE = 1e-6  # probabilities equal up to float noise


@dataclass
class Report:
    url: str
    clients: int
    seconds: float
    endpoint: str = "predict"
    client: str = "http"
    requests: int = 0
    errors: int = 0
    mismatches: int = 0
    requests_per_s: float = 0.0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    max_ms: float = math.nan
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None
    rss_peak_mb: float | None = None
    server_cpu_s: float | None = None  # the app's CPU seconds during the load
    client_cpu_s: float | None = None  # this script's
    error_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.mismatches == 0


def check_loopback(url: str) -> str:
    """The URL, if its host is on this machine; ValueError otherwise."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or not host:
        raise ValueError(f"--url {url!r} is not an http(s) URL: expected e.g. http://127.0.0.1:7860.")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--url {url!r} is not a loopback address: this load test only targets an app on "
                         "this machine (127.0.0.1, localhost or ::1). Start the app locally.")
    return url.rstrip("/") + "/"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(adapter: str | None, log_path: Path, timeout: float,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free loopback port; returns once it answers HTTP."""
    port = free_port()
    env = dict(env if env is not None else os.environ, GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, str(REPO / "app.py"), *(["--adapter", adapter] if adapter else [])]
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child keeps its own handle
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode} before answering; see {log_path}:\n"
                               + log_path.read_text(encoding="utf-8", errors="replace")[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    stop_app(process)
    raise RuntimeError(f"app.py did not answer on {url} within {timeout:.0f} s; see {log_path}.")


def stop_app(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of the app process and its children, in MB."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in members) / 1e6
    except psutil.Error:
        return None


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) used so far by the app process and its children."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return None


def _request_errors() -> tuple[type[BaseException], ...]:
    """What a failed request raises: the app's error, HTTP/connection trouble, a time-out, a cancel."""
    from concurrent.futures import CancelledError

    import aiohttp
    import httpx
    from gradio_client.exceptions import AppError

    return (AppError, httpx.HTTPError, aiohttp.ClientError, OSError, ValueError, KeyError, RuntimeError,
            CancelledError)


REQUEST_ERRORS = _request_errors()


def connect(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


ENDPOINTS = {"classify": ("/classify",), "predict": ("/predict",), "ui": ("/show",)}


def ask(client, text: str, endpoint: str = "predict") -> object:
    """The answer(s) of `endpoint`'s calls for one text, in order (the page's calls for "ui")."""
    answers = []
    for api_name in ENDPOINTS[endpoint]:
        job = client.submit(text, api_name=api_name)
        try:
            answers.append(job.result(timeout=PREDICT_TIMEOUT_S))
        except TimeoutError:
            job.cancel()
            raise
    return answers[0] if len(answers) == 1 else answers


def same_answer(got: object, expected: object) -> bool:
    """Equal label order and probabilities (up to TOLERANCE)."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return list(got) == list(expected) and all(same_answer(got[k], expected[k]) for k in got)
    if isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same_answer(a, b) for a, b in zip(got, expected))
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        return abs(float(got) - float(expected)) <= TOLERANCE
    return got == expected


async def http_ask(session, url: str, text: str, endpoint: str, caller: dict) -> object:
    """What `ask` gets, over gradio's HTTP queue protocol, as the page and gradio_client speak it:
    POST gradio_api/queue/join with the client's session, then read the session's event stream
    until this event completes. `caller`: {"session_hash", "fn_index": {api_name: id}}. One light
    coroutine per client on one aiohttp session (its HTTP parser is C) instead of a gradio_client
    with its threads, so the load generator leaves the server most of the two cores: per page
    answer about 4 ms of this process's CPU against 11-12 ms with httpx (docs/performance.md)."""
    answers = []
    for api_name in ENDPOINTS[endpoint]:
        body = {"data": [text], "event_data": None, "fn_index": caller["fn_index"][api_name.lstrip("/")],
                "trigger_id": None, "session_hash": caller["session_hash"]}
        async with session.post(f"{url}gradio_api/queue/join", json=body) as response:
            response.raise_for_status()
            event_id = (await response.json())["event_id"]
        answers.append(await _read_result(session, url, caller["session_hash"], event_id))
    return answers[0] if len(answers) == 1 else answers


async def _read_result(session, url: str, session_hash: str, event_id: str) -> object:
    async with session.get(f"{url}gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        stream.raise_for_status()
        async for line in stream.content:  # one server-sent event line at a time
            # only a completion is parsed: the queue's estimation and start messages are skipped unread
            if not line.startswith(b"data:") or b"process_completed" not in line:
                continue
            message = json.loads(line[len(b"data:"):])
            if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                continue
            if not message.get("success"):
                raise RuntimeError(f"the app answered with an error: {message.get('output')}"[:300])
            data = message["output"]["data"]
            return data[0] if len(data) == 1 else tuple(data)
    raise RuntimeError(f"the event stream ended before event {event_id} completed")


def http_caller(url: str, number: int) -> dict:
    """A client's identity for http_ask: its own session, and the app's event ids by api_name."""
    with urllib.request.urlopen(f"{url}config", timeout=30) as response:
        config = json.load(response)
    return {"session_hash": f"load{os.getpid()}x{number}",
            "fn_index": {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}}


def sequential_answers(url: str, texts: list[str], endpoint: str = "predict") -> list[object]:
    client = connect(url)
    try:
        return [ask(client, text, endpoint) for text in texts]
    finally:
        client.close()


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client_loop(url: str, number: int, texts: list[str], expected: list[object], deadline: float,
                 tally: _Tally, endpoint: str) -> None:
    try:
        client = connect(url)
    except REQUEST_ERRORS as err:
        with tally.lock:
            tally.errors.append(f"client {number} could not connect: {type(err).__name__}: {err}")
        return
    i = number
    try:
        while time.monotonic() < deadline:
            index = i % len(texts)
            started = time.perf_counter()
            try:
                answer = ask(client, texts[index], endpoint)
            except REQUEST_ERRORS as err:
                with tally.lock:
                    tally.errors.append(f"{type(err).__name__}: {err}"[:300])
            else:
                elapsed = time.perf_counter() - started
                with tally.lock:
                    tally.latencies.append(elapsed)
                    tally.mismatches += not same_answer(answer, expected[index])
            i += 1
    finally:
        client.close()


async def _http_clients(url: str, clients: int, texts: list[str], expected: list[object], deadline: float,
                        tally: _Tally, endpoint: str) -> None:
    caller = http_caller(url, 0)
    async with _http_session(connections=2 * clients + 4) as session:
        await asyncio.gather(*(_http_loop(session, url, n, texts, expected, deadline, tally, endpoint,
                                          {**caller, "session_hash": f"{caller['session_hash']}c{n}"})
                               for n in range(clients)))


def _http_session(connections: int = 4):
    import aiohttp

    # read_bufsize: room for long event lines (a big answer) in the line reader
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), read_bufsize=1 << 20,
                                 timeout=aiohttp.ClientTimeout(total=PREDICT_TIMEOUT_S))


async def _http_loop(session, url: str, number: int, texts: list[str], expected: list[object], deadline: float,
                     tally: _Tally, endpoint: str, caller: dict) -> None:
    i = number
    while time.monotonic() < deadline:
        index = i % len(texts)
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(http_ask(session, url, texts[index], endpoint, caller),
                                            PREDICT_TIMEOUT_S)
        except (*REQUEST_ERRORS, asyncio.TimeoutError) as err:
            tally.errors.append(f"{type(err).__name__}: {err}"[:300])
        else:
            tally.latencies.append(time.perf_counter() - started)
            tally.mismatches += not same_answer(answer, expected[index])
        i += 1


async def http_sequential_answers(url: str, texts: list[str], endpoint: str) -> list[object]:
    caller = http_caller(url, -1)
    async with _http_session() as session:
        return [await http_ask(session, url, text, endpoint, caller) for text in texts]


def _sample_rss(pid: int | None, stop: threading.Event, peak: list[float]) -> None:
    while not stop.wait(0.5):
        value = rss_mb(pid)
        if value is not None:
            peak[0] = max(peak[0], value)


def run_load(url: str, clients: int, seconds: float, pid: int | None = None,
             texts: list[str] | None = None, endpoint: str = "predict", client: str = "http") -> Report:
    """`clients` concurrent callers of `endpoint` for `seconds`. client "http": coroutines on
    gradio's HTTP API in this one thread; "gradio": one gradio_client (and its threads) each."""
    texts = texts or TEXTS
    report = Report(url=url, clients=clients, seconds=seconds, endpoint=endpoint, client=client)
    if client == "http":  # also warms the app up
        expected = asyncio.run(http_sequential_answers(url, texts, endpoint))
    else:
        expected = sequential_answers(url, texts, endpoint)
    report.rss_before_mb = rss_mb(pid)
    tally, stop, peak = _Tally(), threading.Event(), [report.rss_before_mb or 0.0]
    sampler = threading.Thread(target=_sample_rss, args=(pid, stop, peak), daemon=True)
    sampler.start()
    server_cpu, own_cpu = cpu_seconds(pid), time.process_time()
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    stuck = []
    if client == "http":
        asyncio.run(_http_clients(url, clients, texts, expected, deadline, tally, endpoint))
    else:
        threads = [threading.Thread(target=_client_loop, args=(url, n, texts, expected, deadline, tally, endpoint),
                                    daemon=True) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:  # a request in flight at the deadline gets its time-out, then we go on
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + PREDICT_TIMEOUT_S + 5)
        stuck = [t for t in threads if t.is_alive()]
    elapsed = time.perf_counter() - started
    stop.set()
    report.rss_after_mb = rss_mb(pid)
    report.rss_peak_mb = peak[0] if pid is not None else None
    if server_cpu is not None and (after := cpu_seconds(pid)) is not None:
        report.server_cpu_s = round(after - server_cpu, 1)
    report.client_cpu_s = round(time.process_time() - own_cpu, 1)
    _fill(report, tally, elapsed, stuck)
    return report


def _fill(report: Report, tally: _Tally, elapsed: float, stuck: list) -> None:
    with tally.lock:
        latencies = sorted(tally.latencies)
        report.errors = len(tally.errors) + len(stuck)
        report.error_examples = tally.errors[:5] + [f"{len(stuck)} client(s) still waiting"] * bool(stuck)
        report.mismatches = tally.mismatches
    report.requests = len(latencies) + report.errors
    report.requests_per_s = len(latencies) / elapsed if elapsed > 0 else 0.0
    if latencies:
        report.p50_ms = 1000 * _quantile(latencies, 0.50)
        report.p95_ms = 1000 * _quantile(latencies, 0.95)
        report.max_ms = 1000 * latencies[-1]


def _quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def format_reports(reports: list[Report]) -> str:
    """One markdown table, a row per report, then any error examples."""
    def mb(value):
        return "n/a" if value is None else f"{value:.0f} MB"

    lines = ["| endpoint | client | clients x seconds | requests | errors | mismatches | req/s | p50 | p95 | max "
             "| app CPU per answer | load generator CPU per answer | RSS before | RSS after | RSS peak | growth |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in reports:
        growth = (f"{r.rss_after_mb - r.rss_before_mb:+.0f} MB"
                  if r.rss_before_mb is not None and r.rss_after_mb is not None else "n/a")
        answers = r.requests - r.errors
        cpu = f"{1000 * r.server_cpu_s / answers:.1f} ms" if r.server_cpu_s is not None and answers else "n/a"
        own = f"{1000 * r.client_cpu_s / answers:.1f} ms" if r.client_cpu_s is not None and answers else "n/a"
        lines.append(f"| {r.endpoint} | {r.client} | {r.clients} x {r.seconds:g} | {r.requests} | {r.errors} "
                     f"| {r.mismatches} | {r.requests_per_s:.1f} | {r.p50_ms:.0f} ms | {r.p95_ms:.0f} ms "
                     f"| {r.max_ms:.0f} ms | {cpu} | {own} | {mb(r.rss_before_mb)} | {mb(r.rss_after_mb)} "
                     f"| {mb(r.rss_peak_mb)} | {growth} |")
        if r.error_examples:
            notes.append(f"{r.endpoint} errors, e.g.: " + "; ".join(r.error_examples))
    return "\n".join(lines + notes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/load_app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="A running app (loopback only); default: start app.py.")
    parser.add_argument("--pid", type=int, default=None, help="The running app's process id, for its RSS.")
    parser.add_argument("--adapter", default=None, help="Adapter for the app this script starts.")
    parser.add_argument("--clients", type=int, default=20, help="Concurrent clients (default 20).")
    parser.add_argument("--seconds", type=float, default=60.0, help="How long they send (default 60).")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="Seconds to wait for app.py.")
    parser.add_argument("--log", default=None, help="Where the started app's output goes (default: a temp file).")
    parser.add_argument("--endpoints", default="classify,predict,ui",
                        help="Comma-separated, run one after the other: classify, predict, ui (default all).")
    parser.add_argument("--client", choices=("http", "gradio"), default="http",
                        help="http (default): coroutines on gradio's HTTP API, light enough to leave the server "
                             "the CPU on a shared machine; gradio: one gradio_client per client, with its threads.")
    parser.add_argument("--json", default=None, help="Also write the reports as JSON here.")
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    args = build_parser().parse_args(argv)
    endpoints = [name.strip() for name in args.endpoints.split(",") if name.strip()]
    if args.clients < 1 or not 0 < args.seconds <= 3600 or not endpoints or set(endpoints) - set(ENDPOINTS):
        print(f"error: --clients must be at least 1, --seconds between 0 and 3600, and --endpoints some of "
              f"{', '.join(ENDPOINTS)} (found {args.endpoints!r}).", file=sys.stderr)
        return 2
    process = None
    try:
        if args.url:
            url, pid = check_loopback(args.url), args.pid
        else:
            log = Path(args.log) if args.log else Path(os.environ.get("TMPDIR", "/tmp")) / f"load_app-{os.getpid()}.log"
            process, url = start_app(args.adapter, log, args.startup_timeout)
            pid = process.pid
            logger.info("app.py (pid %d) answers on %s; its output: %s", pid, url, log)
        reports = [run_load(url, args.clients, args.seconds, pid, endpoint=name, client=args.client)
                   for name in endpoints]
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if process is not None:
            stop_app(process)
    print(format_reports(reports))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n", encoding="utf-8")
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
