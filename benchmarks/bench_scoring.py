"""Scoring benchmark: what users run, end to end, against the naive pipeline, in one run.

    python benchmarks/bench_scoring.py --output docs/bench_scoring.json

On --rows texts (default 10,200: the first train texts of ../shared/data/emotion, in a CSV with
an id column) it measures, in each of --rounds rounds (default 3; medians reported, and the ratio
per round), one after the other on this machine:
- naive: transformers.pipeline on the unmerged PEFT model, batch size 1, on --naive-rows texts
  (rows/s; the same baseline as bench_inference.py);
- the scoring CLI end to end, start-up included (`python -m emotion_app score IN -o OUT`, wall
  time of the whole process), at each --chunk-rows of the sweep; its ratio to the naive rows/s;
- the app's Batch tab: the same file through the running app's /score_csv API (gradio_client;
  upload, scoring and the result file), its rows/s and its share of the CLI's best rows/s. The app
  runs through all rounds, idle while the others run.
The ONNX cache is filled first, so every CLI run is a cached start. Run it on an idle machine:
with anything else running the figures are worthless (ratios within one run hold up better).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import EMBEDDED_ADAPTER, EMOTION_DATA, REPO, setup_logging
from bench_inference import bench_naive, machine
from load_app import start_app, stop_app

from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.loading import prepare_onnx

logger = logging.getLogger("bench_scoring")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(EMBEDDED_ADAPTER), help="Adapter directory (default: embedded).")
    parser.add_argument("--data_dir", default=str(EMOTION_DATA), help="Where train.txt is read from.")
    parser.add_argument("--rows", type=int, default=10_200, help="Texts in the scored file.")
    parser.add_argument("--naive-rows", type=int, default=1000, help="Texts for the naive pipeline.")
    parser.add_argument("--chunk-rows", default="2000,5000,10000", help="The CLI's --chunk_rows to sweep.")
    parser.add_argument("--no-app", action="store_true", help="Skip the Batch tab measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of every measurement, in turn (default 3).")
    parser.add_argument("--output", help="Write the JSON summary here too.")
    return parser.parse_args(argv)


def write_input(texts: list[str], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[str(i), text] for i, text in enumerate(texts)]])
    return path


def bench_cli(adapter: str, source: Path, chunk_rows: int, rows: int) -> dict:
    """Wall time of the whole `python -m emotion_app score` process, start-up included."""
    target = source.with_name(f"scored-{chunk_rows}.csv")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "emotion_app", "score", str(source), "-o", str(target),
                           "--adapter", adapter, "--chunk_rows", str(chunk_rows), "--no_progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the scoring CLI failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"chunk_rows": chunk_rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def bench_batch_tab(client, source: Path, rows: int) -> dict:
    """The file through the running app's /score_csv, as the Batch tab's button sends it."""
    from gradio_client import handle_file

    started = time.perf_counter()
    _summary, _preview, _chart, result = client.predict(handle_file(str(source)), "", "auto", 0.0,
                                                        api_name="/score_csv")
    seconds = time.perf_counter() - started
    with open(result, encoding="utf-8-sig", newline="") as handle:
        returned = sum(1 for _ in csv.reader(handle)) - 1
    if returned != rows:
        raise RuntimeError(f"the Batch tab returned {returned} rows for {rows}")
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def run(args) -> dict:
    """--rounds rounds, each measuring every path once in turn (naive, the CLI at each chunk size,
    the Batch tab), so that the machine's drift touches them all alike; medians over the rounds."""
    texts = list(read_labeled_file(Path(args.data_dir) / "train.txt")["text"])[:args.rows]
    prepare_onnx(args.adapter)  # the cache filled: every run below is a cached start
    chunks = [int(n) for n in args.chunk_rows.split(",")]
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as work:
        source = write_input(texts, Path(work) / "texts.csv")
        app = None if args.no_app else start_app(args.adapter, Path(work) / "app.log", timeout=300)
        try:
            client = None
            if app is not None:
                from gradio_client import Client

                client = Client(app[1], verbose=False, analytics_enabled=False, download_files=work)
            for number in range(args.rounds):
                logger.info("round %d of %d: naive on %d texts, the CLI at --chunk_rows %s%s", number + 1,
                            args.rounds, args.naive_rows, args.chunk_rows, "" if app is None else ", the Batch tab")
                result = {"naive": bench_naive(args.adapter, texts[:args.naive_rows]),
                          "cli": [bench_cli(args.adapter, source, n, len(texts)) for n in chunks]}
                if client is not None:
                    result["batch_tab"] = bench_batch_tab(client, source, len(texts))
                rounds.append(result)
        finally:
            if app is not None:
                stop_app(app[0])
    return summarize(rounds, chunks, len(texts))


def summarize(rounds: list[dict], chunks: list[int], rows: int) -> dict:
    def median(values):
        return round(statistics.median(values), 1)

    naive = median(r["naive"]["rows_per_s"] for r in rounds)
    cli = [{"chunk_rows": n, "rows_per_s": median(r["cli"][i]["rows_per_s"] for r in rounds),
            "per_round": [r["cli"][i]["rows_per_s"] for r in rounds]} for i, n in enumerate(chunks)]
    best = max(cli, key=lambda row: row["rows_per_s"])
    summary = {"machine": machine(), "rows": rows, "rounds": len(rounds),
               "naive": {"rows_per_s": naive, "per_round": [r["naive"]["rows_per_s"] for r in rounds]},
               "cli": cli, "cli_best": {**best, "ratio_to_naive": round(best["rows_per_s"] / naive, 2)},
               "ratio_per_round": [round(max(c["rows_per_s"] for c in r["cli"]) / r["naive"]["rows_per_s"], 2)
                                   for r in rounds]}
    if all("batch_tab" in r for r in rounds):
        tab = median(r["batch_tab"]["rows_per_s"] for r in rounds)
        summary["batch_tab"] = {"rows_per_s": tab, "per_round": [r["batch_tab"]["rows_per_s"] for r in rounds],
                                "share_of_cli": round(tab / best["rows_per_s"], 3)}
    return summary


def table(summary: dict) -> str:
    naive = summary["naive"]["rows_per_s"]
    lines = [f"medians of {summary['rounds']} round(s); CLI best / naive per round: "
             + ", ".join(f"{x:.1f}x" for x in summary["ratio_per_round"]), "",
             "| path | rows/s | x naive |", "|---|---:|---:|", f"| naive pipeline (batch 1) | {naive:.1f} | 1.0 |"]
    for row in summary["cli"]:
        lines.append(f"| CLI end to end, --chunk_rows {row['chunk_rows']} | {row['rows_per_s']:.1f} | "
                     f"{row['rows_per_s'] / naive:.1f} |")
    if "batch_tab" in summary:
        tab = summary["batch_tab"]
        lines.append(f"| Batch tab (/score_csv), {tab['share_of_cli']:.0%} of the CLI | {tab['rows_per_s']:.1f} | "
                     f"{tab['rows_per_s'] / naive:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    setup_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    summary = run(args)
    print(table(summary))  # the benchmark's result
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
