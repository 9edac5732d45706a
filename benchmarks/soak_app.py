"""Soak test: does the app's memory stay flat, and its throughput steady, over many answers?

    python benchmarks/soak_app.py                                 # starts `python app.py`; 100,000 answers
    python benchmarks/soak_app.py --answers 9000 --rounds 3       # a short run (a few minutes)
    python benchmarks/soak_app.py --url http://127.0.0.1:7860 --pid 1234 --json soak.json

Clients (--clients, default 20) call /classify over gradio's HTTP queue protocol with the light
client of load_app.py (coroutines on one aiohttp session) until the round's answers are in; the
answers are split into --rounds equal rounds, and after each the app process's RSS (with its
children) and the round's throughput are printed. Sessions (--sessions): `request` (default), a
fresh gradio session for every answer, as a curl caller of /call/classify, a new gradio_client or a
page opened once get, the case that made the server grow; `client`, one session per client for
the whole run, as a long-lived gradio_client.

Targets, checked at the end: RSS growth from the end of the first round to the end of the last at
most --max-growth-mb (default 50 MB), and the last round's throughput at least 90 % of the first
(--max-slowdown 0.10). On a machine shared with other work the throughput target is only as good
as the machine is quiet. Every answer is compared with the sequential one for its text.

Loopback only and bounded: the script refuses any address off this machine, every request has a
time-out, each round stops at --round-seconds and the whole run at --max-seconds whatever the count.
Exit status: 0 when every target was met with no errors, 1 when one was missed, 2 for bad usage or
an app that did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import load_app  # the light client, app start/stop and RSS, shared with the load test
from _common import setup_logging

logger = logging.getLogger("soak_app")

SETTLE_S = 2.0  # after a round, before reading RSS: lets the server finish its last messages


@dataclass
class Round:
    number: int
    answers: int = 0
    errors: int = 0
    mismatches: int = 0
    seconds: float = 0.0
    answers_per_s: float = 0.0
    rss_mb: float | None = None
    complete: bool = True  # False: the round's time ran out before its answers were in
    error_examples: list[str] = field(default_factory=list)


@dataclass
class Soak:
    url: str
    clients: int
    sessions: str
    answers_per_round: int
    rss_start_mb: float | None = None
    rounds: list[Round] = field(default_factory=list)
    growth_mb: float | None = None  # RSS after the last round minus after the first
    slowdown: float | None = None  # 1 - last round's throughput / first's
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


async def _client(session, url: str, number: int, caller: dict, sessions: str, tickets, texts: list[str],
                   expected: list[object], deadline: float, tally: Round) -> None:
    for ticket in tickets:  # shared by all clients: the round's answers, one ticket each
        if time.monotonic() >= deadline:
            tally.complete = False
            return
        index = (number + ticket) % len(texts)
        if sessions == "request":
            caller = {**caller, "session_hash": f"{caller['base']}t{ticket}"}
        try:
            answer = await asyncio.wait_for(load_app.http_ask(session, url, texts[index], "classify", caller),
                                            load_app.PREDICT_TIMEOUT_S)
        except (TimeoutError, *load_app.REQUEST_ERRORS) as err:
            tally.errors += 1
            if len(tally.error_examples) < 5:
                tally.error_examples.append(f"{type(err).__name__}: {err}"[:300])
        else:
            tally.answers += 1
            tally.mismatches += not load_app.same_answer(answer, expected[index])


async def _round(url: str, number: int, count: int, clients: int, sessions: str, texts: list[str],
                 expected: list[object], seconds: float) -> Round:
    caller = load_app.http_caller(url, 0)
    base = f"soak{os.getpid()}r{number}"
    tickets = iter(range(count))
    tally = Round(number)
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    async with load_app._http_session(connections=2 * clients + 4) as session:
        await asyncio.gather(*(_client(session, url, n, {**caller, "session_hash": f"{base}c{n}", "base": base},
                                       sessions, tickets, texts, expected, deadline, tally)
                               for n in range(clients)))
    tally.seconds = round(time.perf_counter() - started, 2)
    tally.answers_per_s = round(tally.answers / tally.seconds, 1) if tally.seconds > 0 else 0.0
    return tally


def run_soak(url: str, pid: int | None, answers: int, rounds: int, clients: int = 20, sessions: str = "request",
             round_seconds: float = 900.0, max_seconds: float = 7200.0, max_growth_mb: float = 50.0,
             max_slowdown: float = 0.10, texts: list[str] | None = None) -> Soak:
    """`answers` /classify answers in `rounds` rounds; RSS and throughput after each; targets checked."""
    texts = texts or load_app.TEXTS
    expected = asyncio.run(load_app.http_sequential_answers(url, texts, "classify"))  # also warms the app up
    soak = Soak(url, clients, sessions, answers // rounds, rss_start_mb=load_app.rss_mb(pid))
    logger.info("%d answers in %d rounds of %d, %d clients, a session per %s; RSS at start %s MB", answers,
                rounds, soak.answers_per_round, clients, sessions, _mb(soak.rss_start_mb))
    end = time.monotonic() + max_seconds
    for number in range(1, rounds + 1):
        left = end - time.monotonic()
        if left <= 0:
            soak.failures.append(f"the run's --max-seconds ({max_seconds:g}) ran out after {number - 1} round(s)")
            break
        result = asyncio.run(_round(url, number, soak.answers_per_round, clients, sessions, texts, expected,
                                    min(round_seconds, left)))
        time.sleep(SETTLE_S)
        result.rss_mb = load_app.rss_mb(pid)
        soak.rounds.append(result)
        logger.info("round %d: %d answers in %.1f s, %.1f answers/s, %d errors, RSS %s MB", number,
                    result.answers, result.seconds, result.answers_per_s, result.errors, _mb(result.rss_mb))
    check_targets(soak, max_growth_mb, max_slowdown)
    return soak


def check_targets(soak: Soak, max_growth_mb: float, max_slowdown: float) -> None:
    """Fill growth, slowdown and failures (what was expected and what was found)."""
    rounds = soak.rounds
    for r in rounds:
        if r.errors or r.mismatches or not r.complete:
            soak.failures.append(f"round {r.number}: {r.errors} errors, {r.mismatches} mismatches"
                                 + ("" if r.complete else ", stopped by --round-seconds before its answers were in")
                                 + (f" (e.g. {r.error_examples[0]})" if r.error_examples else ""))
    if len(rounds) < 2:
        soak.failures.append(f"{len(rounds)} round(s) done: growth and slowdown need at least 2 (pass --rounds 2+).")
        return
    first, last = rounds[0], rounds[-1]
    if first.rss_mb is not None and last.rss_mb is not None:
        soak.growth_mb = round(last.rss_mb - first.rss_mb, 1)
        if soak.growth_mb > max_growth_mb:
            soak.failures.append(f"RSS grew {soak.growth_mb:.0f} MB after the first round (expected at most "
                                 f"{max_growth_mb:g} MB): something keeps per-request data.")
    if first.answers_per_s > 0:
        soak.slowdown = round(1 - last.answers_per_s / first.answers_per_s, 3)
        if soak.slowdown > max_slowdown:
            soak.failures.append(f"the last round served {last.answers_per_s:.1f} answers/s against "
                                 f"{first.answers_per_s:.1f} in the first ({soak.slowdown:.0%} slower; expected at "
                                 f"most {max_slowdown:.0%}). On a shared machine, check it was quiet.")


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def format_soak(soak: Soak) -> str:
    """A markdown table, a row per round, then the verdict."""
    lines = [(f"{soak.clients} clients on /classify, a session per {soak.sessions}; RSS at start "
              f"{_mb(soak.rss_start_mb)} MB"), "",
             "| round | answers | errors | seconds | answers/s | RSS after |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.number} | {r.answers} | {r.errors + r.mismatches} | {r.seconds:.1f} | {r.answers_per_s:.1f} "
              f"| {_mb(r.rss_mb)} MB |" for r in soak.rounds]
    growth = "n/a" if soak.growth_mb is None else f"{soak.growth_mb:+.0f} MB"
    slowdown = "n/a" if soak.slowdown is None else f"{soak.slowdown:+.1%}"
    lines += ["", f"growth after round 1: {growth}; last round vs first: {slowdown} slower",
              "targets met" if soak.ok else "targets MISSED:\n- " + "\n- ".join(soak.failures)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/soak_app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="A running app (loopback only); default: start app.py.")
    parser.add_argument("--pid", type=int, default=None, help="The running app's process id, for its RSS.")
    parser.add_argument("--adapter", default=None, help="Adapter for the app this script starts.")
    parser.add_argument("--answers", type=int, default=100_000, help="Answers in all (default 100,000).")
    parser.add_argument("--rounds", type=int, default=10, help="Rounds they are split into (default 10).")
    parser.add_argument("--clients", type=int, default=20, help="Concurrent clients (default 20).")
    parser.add_argument("--sessions", choices=("request", "client"), default="request",
                        help="A fresh gradio session per answer (default) or one per client.")
    parser.add_argument("--round-seconds", type=float, default=900.0, help="Most seconds per round (default 900).")
    parser.add_argument("--max-seconds", type=float, default=7200.0, help="Most seconds in all (default 7200).")
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="RSS growth allowed after round 1.")
    parser.add_argument("--max-slowdown", type=float, default=0.10, help="Throughput loss allowed, last vs first.")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="Seconds to wait for app.py.")
    parser.add_argument("--log", default=None, help="Where the started app's output goes (default: a temp file).")
    parser.add_argument("--json", default=None, help="Also write the result as JSON here.")
    return parser


def _usage_problem(args: argparse.Namespace) -> str:
    if args.rounds < 2 or args.answers < args.rounds or args.clients < 1:
        return (f"expected --rounds 2 or more, --answers at least --rounds and --clients 1 or more; found "
                f"--rounds {args.rounds}, --answers {args.answers}, --clients {args.clients}.")
    if not (0 < args.round_seconds <= 3600 and 0 < args.max_seconds <= 86400):
        return (f"expected --round-seconds in (0, 3600] and --max-seconds in (0, 86400]; found "
                f"{args.round_seconds:g} and {args.max_seconds:g}.")
    return ""


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if problem := _usage_problem(args):
        logger.error("%s", problem)
        return 2
    process = None
    try:
        if args.url:
            url, pid = load_app.check_loopback(args.url), args.pid
        else:
            log = Path(args.log) if args.log else Path(os.environ.get("TMPDIR", "/tmp")) / f"soak_app-{os.getpid()}.log"
            process, url = load_app.start_app(args.adapter, log, args.startup_timeout)
            pid = process.pid
            logger.info("app.py (pid %d) answers on %s; its output: %s", pid, url, log)
        soak = run_soak(url, pid, args.answers, args.rounds, args.clients, args.sessions, args.round_seconds,
                        args.max_seconds, args.max_growth_mb, args.max_slowdown)
    except (ValueError, RuntimeError) as err:
        logger.error("%s", err)
        return 2
    finally:
        if process is not None:
            load_app.stop_app(process)
    sys.stdout.write(format_soak(soak) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({**asdict(soak), "ok": soak.ok}, indent=2) + "\n", encoding="utf-8")
    return 0 if soak.ok else 1


if __name__ == "__main__":
    sys.exit(main())
