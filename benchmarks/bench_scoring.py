"""Scoring benchmark: what users run, end to end, against the naive pipeline, in one run.

    python benchmarks/bench_scoring.py --output docs/bench_scoring.json

On --rows texts (default 10,200: the first train texts of ../shared/data/emotion, in a CSV with
an id column) it measures, one after the other on this machine:
- naive: transformers.pipeline on the unmerged PEFT model, batch size 1, on --naive-rows texts
  (rows/s; the same baseline as bench_inference.py);
- the scoring CLI end to end, start-up included (`python -m emotion_app.score IN -o OUT`, wall
  time of the whole process), at each --chunk-rows of the sweep; its ratio to the naive rows/s;
- the app's Batch tab: the same file through the running app's /score_csv API (gradio_client;
  upload, scoring and the result file), its rows/s and its share of the CLI's best rows/s.
The ONNX cache is filled first, so every CLI run is a cached start. Run it on an idle machine:
with anything else running the figures are worthless (ratios within one run hold up better).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import bench_naive, machine  # noqa: E402
from load_app import start_app, stop_app  # noqa: E402

from emotion_app.data.labelled import read_labeled_file  # noqa: E402
from emotion_app.engine.loading import prepare_onnx  # noqa: E402

logger = logging.getLogger("bench_scoring")
DEFAULT_ADAPTER = REPO / "models" / "minilm-emotion-lora"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "emotion"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(DEFAULT_ADAPTER), help="Adapter directory (default: embedded).")
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA), help="Where train.txt is read from.")
    parser.add_argument("--rows", type=int, default=10_200, help="Texts in the scored file.")
    parser.add_argument("--naive-rows", type=int, default=1000, help="Texts for the naive pipeline.")
    parser.add_argument("--chunk-rows", default="2000,5000,10000", help="The CLI's --chunk_rows to sweep.")
    parser.add_argument("--no-app", action="store_true", help="Skip the Batch tab measurement.")
    parser.add_argument("--output", help="Write the JSON summary here too.")
    return parser.parse_args(argv)


def write_input(texts: list[str], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[str(i), text] for i, text in enumerate(texts)]])
    return path


def bench_cli(adapter: str, source: Path, chunk_rows: int, rows: int) -> dict:
    """Wall time of the whole `python -m emotion_app.score` process, start-up included."""
    target = source.with_name(f"scored-{chunk_rows}.csv")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "emotion_app.score", str(source), "-o", str(target),
                           "--adapter", adapter, "--chunk_rows", str(chunk_rows), "--no_progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the scoring CLI failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"chunk_rows": chunk_rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def bench_batch_tab(adapter: str, source: Path, rows: int) -> dict:
    """The file through the app's /score_csv, as the Batch tab's button sends it."""
    from gradio_client import Client, handle_file

    process, url = start_app(adapter, source.with_name("app.log"), timeout=300)
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(source.parent))
        started = time.perf_counter()
        _summary, _preview, _chart, result = client.predict(handle_file(str(source)), "", "auto", 0.0,
                                                            api_name="/score_csv")
        seconds = time.perf_counter() - started
        with open(result, encoding="utf-8-sig", newline="") as handle:
            returned = sum(1 for _ in csv.reader(handle)) - 1
    finally:
        stop_app(process)
    if returned != rows:
        raise RuntimeError(f"the Batch tab returned {returned} rows for {rows}")
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1)}


def run(args) -> dict:
    texts = list(read_labeled_file(Path(args.data_dir) / "train.txt")["text"])[:args.rows]
    prepare_onnx(args.adapter)  # the cache filled: every run below is a cached start
    summary = {"machine": machine(), "rows": len(texts)}
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as work:
        source = write_input(texts, Path(work) / "texts.csv")
        logger.info("naive pipeline on %d texts", args.naive_rows)
        summary["naive"] = bench_naive(args.adapter, texts[:args.naive_rows])
        summary["cli"] = []
        for chunk_rows in (int(n) for n in args.chunk_rows.split(",")):
            logger.info("CLI, --chunk_rows %d", chunk_rows)
            summary["cli"].append(bench_cli(args.adapter, source, chunk_rows, len(texts)))
        best = max(summary["cli"], key=lambda r: r["rows_per_s"])
        summary["cli_best"] = {**best, "ratio_to_naive": round(best["rows_per_s"] / summary["naive"]["rows_per_s"], 2)}
        if not args.no_app:
            logger.info("Batch tab (/score_csv)")
            tab = bench_batch_tab(args.adapter, source, len(texts))
            summary["batch_tab"] = {**tab, "share_of_cli": round(tab["rows_per_s"] / best["rows_per_s"], 3)}
    return summary


def table(summary: dict) -> str:
    naive = summary["naive"]["rows_per_s"]
    lines = ["| path | rows/s | x naive |", "|---|---:|---:|", f"| naive pipeline (batch 1) | {naive:.1f} | 1.0 |"]
    for row in summary["cli"]:
        lines.append(f"| CLI end to end, --chunk_rows {row['chunk_rows']} | {row['rows_per_s']:.1f} | "
                     f"{row['rows_per_s'] / naive:.1f} |")
    if "batch_tab" in summary:
        tab = summary["batch_tab"]
        lines.append(f"| Batch tab (/score_csv), {tab['share_of_cli']:.0%} of the CLI | {tab['rows_per_s']:.1f} | "
                     f"{tab['rows_per_s'] / naive:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    summary = run(args)
    print(table(summary))  # the benchmark's result
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
