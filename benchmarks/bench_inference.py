"""Inference benchmark: our engine against the naive transformers pipeline, on the same texts.

    python benchmarks/bench_inference.py --output docs/bench_inference.json

Measures, on one model (default: the embedded models/minilm-emotion-lora) and one set of texts
(default: the 2000 validation texts of ../shared/data/emotion; --synthetic generates texts):
- naive: transformers.pipeline("text-classification") on the UNMERGED PEFT model, batch size 1,
  all six scores per text (top_k=None, as our engine returns);
- ours: EmotionClassifier.from_adapter as the app and the CLIs use it (merged; ONNX Runtime int8
  on CPU), at each batch size of --batch-sizes, the best one reported; beside it the engine's
  other settings: ONNX Runtime fp32, torch int8 (dynamic quantization), torch fp32;
- the rows/s ratio; p50/p95 latency of one text; test accuracy of each (the 0.3-point rule);
- peak RSS of this process, and the app's cold start (process start -> first answer from its
  gradio API): first with an empty ONNX cache (the export included, as on a fresh Space), then
  again with the cache filled (every later start), --app-runs times each, the slowest counted;
  with the serving process's peak RSS and the peak of all the app's processes together (a first
  start exports the model in a child process), sampled every 50 ms;
- the FLOP bound: torch's fp32 GEMM rate on this CPU (all threads) and the model's FLOPs per row
  from the actual token counts, hence the best rows/s fp32 could reach, and our share of it;
- with --against OTHER: both adapters' default engines timed in turn in this one process, rounds in
  ABBA order, and the ratio of their rows/s (separate runs drift by several percent; this does not).

Run it on an otherwise idle machine: numbers taken while something else runs are worthless.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import EMBEDDED_ADAPTER, EMOTION_DATA, REPO, setup_logging

from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.adapters import load_adapter
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS

logger = logging.getLogger("bench_inference")
# Issue 5's limits; the ratio and the accuracy change are lower bounds, the rest upper bounds.
TARGETS = {"ratio": 8.0, "p50_ms": 12.0, "cold_start_s": 8.0, "first_start_s": 8.0, "app_rss_mb": 1200.0,
           "int8_minus_fp32_points": -0.3}
LOWER_BOUNDS = ("ratio", "int8_minus_fp32_points")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(EMBEDDED_ADAPTER), help="Adapter directory (default: embedded).")
    parser.add_argument("--data_dir", default=str(EMOTION_DATA),
                        help="Directory with validation.txt and test.txt (default ../shared/data/emotion).")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="Use N generated texts instead of the validation file (no accuracy then).")
    parser.add_argument("--naive-rows", type=int, default=2000, help="Texts for the naive pipeline.")
    parser.add_argument("--batch-sizes", default="8,16,32,64,128", help="Batch sizes to sweep.")
    parser.add_argument("--latency-runs", type=int, default=300, help="Single-text calls for p50/p95.")
    parser.add_argument("--no-app", action="store_true", help="Skip the app cold start.")
    parser.add_argument("--app-runs", type=int, default=3,
                        help="App starts of each kind (first, then cached); the slowest counts.")
    parser.add_argument("--against", help="Another adapter whose default engine is timed in turn with this one's.")
    parser.add_argument("--against-rounds", type=int, default=4, help="Rounds of each engine for --against.")
    parser.add_argument("--output", help="Write the JSON summary to this file too.")
    return parser.parse_args(argv)


def load_texts(args) -> tuple[list[str], list[str], list[int]]:
    """(benchmark texts, test texts, test labels)."""
    if args.synthetic:
        rng = np.random.default_rng(0)
        words = "i feel so happy sad angry scared surprised loved today about the news from my friend".split()
        texts = [" ".join(rng.choice(words, size=rng.integers(3, 40))) for _ in range(args.synthetic)]
        return texts, [], []
    data_dir = Path(args.data_dir)
    validation = read_labeled_file(data_dir / "validation.txt")
    test = read_labeled_file(data_dir / "test.txt")
    return list(validation["text"]), list(test["text"]), list(test["label"])


def rows_per_second(classify, texts: list[str]) -> float:
    classify(texts[:64])  # warm-up: first-call allocations and lazy initialisation
    started = time.perf_counter()
    classify(texts)
    return len(texts) / (time.perf_counter() - started)


def bench_against(adapter: str, other: str, texts: list[str], rounds: int) -> dict:
    """rows/s of the default engines of `adapter` and `other`, timed in turn (ABBA) in one process."""
    engines = {"this": EmotionClassifier.from_adapter(adapter), "other": EmotionClassifier.from_adapter(other)}
    per_round = {name: [] for name in engines}
    for turn in range(rounds):
        for name in (list(engines) if turn % 2 == 0 else list(reversed(engines))):
            per_round[name].append(rows_per_second(engines[name].predict_proba, texts))
    return {"adapter": other, "rounds": rounds, "this_rows_per_s": per_round["this"],
            "other_rows_per_s": per_round["other"], "ratio": sum(per_round["this"]) / sum(per_round["other"])}


def bench_naive(adapter: str, texts: list[str]) -> dict:
    from transformers import pipeline

    loaded = load_adapter(adapter, merge=False)
    pipe = pipeline("text-classification", model=loaded.model, tokenizer=loaded.tokenizer, device="cpu")
    for text in texts[:10]:
        pipe(text, top_k=None)
    times = []
    for text in texts:
        started = time.perf_counter()
        pipe(text, top_k=None)
        times.append(time.perf_counter() - started)
    return {"rows": len(texts), "rows_per_s": len(texts) / sum(times), **latency_summary(times)}


def latency_summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def bench_engine(engine: EmotionClassifier, texts: list[str], batch_sizes: list[int]) -> dict:
    sweep = {}
    for batch_size in batch_sizes:
        engine.batch_size = batch_size
        sweep[batch_size] = rows_per_second(engine.predict_proba, texts)
        logger.info("%s batch %d: %.0f rows/s", engine.info.get("precision"), batch_size, sweep[batch_size])
    best = max(sweep, key=sweep.get)
    engine.batch_size = best
    return {"best_batch_size": best, "rows_per_s": sweep[best], "sweep": {str(k): v for k, v in sweep.items()}}


def bench_latency(predict_one, texts: list[str], runs: int) -> dict:
    """One text per call, texts drawn from the benchmark set (their real lengths)."""
    picks = [texts[i % len(texts)] for i in range(0, runs * 7, 7)]
    for text in picks[:10]:
        predict_one(text)
    times = []
    for text in picks:
        started = time.perf_counter()
        predict_one(text)
        times.append(time.perf_counter() - started)
    return latency_summary(times)


def accuracy(engine: EmotionClassifier, texts: list[str], labels: list[int]) -> float:
    return float((engine.predict_proba(texts).argmax(axis=1) == np.asarray(labels)).mean())


def token_stats(engine: EmotionClassifier, texts: list[str]) -> dict:
    """Mean real tokens per text, and mean tokens actually computed (with our batches' padding)."""
    lengths = np.sort([len(ids) for ids in engine.tokenizer(texts, truncation=True,
                                                            max_length=engine.max_length)["input_ids"]])
    padded = sum(int(lengths[i:i + engine.batch_size].max()) * len(lengths[i:i + engine.batch_size])
                 for i in range(0, len(lengths), engine.batch_size))
    return {"mean_tokens": float(lengths.mean()), "mean_padded_tokens": padded / len(lengths),
            "lengths": lengths}


def model_flops_per_row(model, lengths: np.ndarray) -> dict:
    """FLOPs of one text: 2 x (weights of the per-token linear layers) x tokens, plus attention
    (QK^T and AV: 4 x tokens^2 x hidden per layer), plus the once-per-text pooler and head."""
    config = model.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    per_token = layers * (4 * hidden * hidden + 2 * hidden * config.intermediate_size)
    per_text = hidden * hidden + hidden * len(EMOTIONS)  # pooler + classifier, on the first token only
    flops = 2 * per_token * lengths + 4 * layers * hidden * lengths.astype(np.float64) ** 2 + 2 * per_text
    return {"linear_weights_per_token": per_token, "gflop_per_row": float(flops.mean() / 1e9)}


def gemm_gflops(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - started) / 1e9


def bench_app(adapter: str, cache: str) -> dict:
    """`python app.py` on a free port -> seconds until its /predict API answers; its peak RSS.
    `cache` is the app's ONNX cache folder (EMOTION_APP_CACHE)."""
    import httpx
    from gradio_client import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", EMOTION_APP_CACHE=cache)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--adapter", adapter], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer, tree_rss = None, 0.0
        while answer is None and time.perf_counter() - started < 120:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}: {process.stderr.read()[-2000:]}")
            tree_rss = max(tree_rss, _tree_rss_mb(process.pid))
            if not _port_open(port):  # a cheap check first: a Client per try costs ~25 ms of CPU,
                time.sleep(0.05)  # which the app starting on the same 2 cores would pay for
                continue
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                answer = client.predict("i feel so happy today", api_name="/predict")
            except (OSError, ValueError, httpx.HTTPError) as err:  # not up yet
                logger.debug("app not ready: %s", err)
                time.sleep(0.1)
        seconds = time.perf_counter() - started
        rss = _peak_rss_mb(process.pid)
        tree_rss = max(tree_rss, rss)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"cold_start_s": seconds, "app_peak_rss_mb": rss, "all_processes_peak_rss_mb": tree_rss,
            "first_answer": str(answer)[:120]}


def bench_app_starts(adapter: str, runs: int) -> tuple[dict, dict]:
    """`runs` times: a first start on an empty ONNX cache, then a start that finds the model
    cached. Each kind: the slowest start, the highest memory, and every run's seconds."""
    first, cached = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            first.append(bench_app(adapter, cache))
            cached.append(bench_app(adapter, cache))
    return _worst(first), _worst(cached)


def _worst(results: list[dict]) -> dict:
    return {"cold_start_s": max(r["cold_start_s"] for r in results),
            "cold_start_s_runs": [round(r["cold_start_s"], 2) for r in results],
            "app_peak_rss_mb": max(r["app_peak_rss_mb"] for r in results),
            "all_processes_peak_rss_mb": max(r["all_processes_peak_rss_mb"] for r in results),
            "first_answer": results[-1]["first_answer"]}


def _tree_rss_mb(pid: int) -> float:
    """RSS of the app and its children (the first start's background ONNX build), sampled now."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:  # a child that just ended
            pass
    return total / 2**20


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    return {"cpu": _lscpu("Model name"), "cores": os.cpu_count(), "threads_used": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _lscpu(field: str) -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(field)), "?")


# name -> from_adapter's (runtime, quantize)
ENGINES = {"onnxruntime-int8": ("onnxruntime", True), "onnxruntime-fp32": ("onnxruntime", False),
           "torch-int8": ("torch", True), "torch-fp32": ("torch", False)}


def run(args) -> dict:
    texts, test_texts, test_labels = load_texts(args)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    summary = {"machine": machine(), "adapter": args.adapter, "texts": len(texts),
               "texts_source": f"{args.synthetic} generated" if args.synthetic else "validation.txt"}
    if not args.no_app:  # first, while this process holds no model and runs nothing in the background
        summary["app_first_start"], summary["app"] = bench_app_starts(args.adapter, args.app_runs)

    logger.info("naive pipeline on %d texts", min(args.naive_rows, len(texts)))
    summary["naive"] = bench_naive(args.adapter, texts[:args.naive_rows])

    default = EmotionClassifier.from_adapter(args.adapter)  # what the app and the CLIs load
    summary["machine"]["threads_used"] = torch.get_num_threads()
    summary["default_engine"] = f"{default.info['runtime']}-{default.info['precision'].replace('float32', 'fp32')}"
    tokens = token_stats(default, texts)
    del default
    summary["engines"] = {}
    for name, (runtime, quantize) in ENGINES.items():
        engine = EmotionClassifier.from_adapter(args.adapter, runtime=runtime, quantize=quantize)
        row = {**engine.info, **bench_engine(engine, texts, batch_sizes),
               **bench_latency(lambda text, engine=engine: engine.predict_proba([text]), texts, args.latency_runs)}
        if test_texts:
            row["test_accuracy"] = accuracy(engine, test_texts, test_labels)
        row["ratio"] = row["rows_per_s"] / summary["naive"]["rows_per_s"]
        summary["engines"][name] = row
        if name == "torch-fp32":
            flops = model_flops_per_row(engine.model, tokens.pop("lengths"))
            config = engine.model.config
        del engine
    summary["ours"] = summary["engines"][summary["default_engine"]]
    summary["ratio"] = summary["ours"]["ratio"]
    if test_texts:
        fp32 = summary["engines"][f"{summary['ours']['runtime']}-fp32"]["test_accuracy"]
        summary["int8_minus_fp32_points"] = 100 * (summary["ours"]["test_accuracy"] - fp32)

    gemm = {"square_2048": gemm_gflops(2048, 2048, 2048),
            "model_shaped": gemm_gflops(summary["ours"]["best_batch_size"] * round(tokens["mean_tokens"]),
                                        config.hidden_size, config.intermediate_size)}
    bound = gemm["square_2048"] / flops["gflop_per_row"]
    summary["flop_bound"] = {**tokens, **flops, "gemm_gflops": gemm, "fp32_bound_rows_per_s": bound,
                             **{f"{name}_share_of_bound": row["rows_per_s"] / bound
                                for name, row in summary["engines"].items()}}
    if args.against:
        summary["against"] = bench_against(args.adapter, args.against, texts, args.against_rounds)
    summary["bench_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary["targets"] = check_targets(summary)
    return summary


def check_targets(summary: dict) -> dict:
    found = {"ratio": summary["ratio"], "p50_ms": summary["ours"]["p50_ms"]}
    if "app" in summary:
        found["cold_start_s"] = summary["app"]["cold_start_s"]
        found["first_start_s"] = summary["app_first_start"]["cold_start_s"]
        found["app_rss_mb"] = max(summary[run]["all_processes_peak_rss_mb"] for run in ("app", "app_first_start"))
    if "int8_minus_fp32_points" in summary:
        found["int8_minus_fp32_points"] = summary["int8_minus_fp32_points"]
    checks = {}
    for name, value in found.items():
        limit = TARGETS[name]
        met = value >= limit if name in LOWER_BOUNDS else value <= limit
        checks[name] = {"value": round(value, 2), "target": limit, "met": bool(met)}
    return checks


def table(summary: dict) -> str:
    naive = summary["naive"]
    lines = ["| engine | rows/s | × naive | p50 one text (ms) | p95 one text (ms) | test accuracy |",
             "|---|---:|---:|---:|---:|---:|",
             f"| naive pipeline, unmerged PEFT, batch 1 | {naive['rows_per_s']:.0f} | 1.0× | {naive['p50_ms']:.1f} "
             f"| {naive['p95_ms']:.1f} | – |"]
    for name, row in summary["engines"].items():
        label = f"{name}{' (default)' if name == summary['default_engine'] else ''}, batch {row['best_batch_size']}"
        accuracy = f"{100 * row['test_accuracy']:.2f} %" if "test_accuracy" in row else "–"
        lines.append(f"| {label} | {row['rows_per_s']:.0f} | {row['ratio']:.1f}× | {row['p50_ms']:.1f} "
                     f"| {row['p95_ms']:.1f} | {accuracy} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    setup_logging()
    args = parse_args(argv)
    summary = run(args)
    text = json.dumps(summary, indent=2)
    print(text)
    print()
    print(table(summary))
    for name, check in summary["targets"].items():
        print(f"{name}: {check['value']} (target {check['target']}) {'met' if check['met'] else 'NOT MET'}")
    if "against" in summary:
        against = summary["against"]
        print(f"against {against['adapter']}: rows/s ratio {against['ratio']:.3f} over {against['rounds']} rounds "
              f"each, in turn ({[round(r) for r in against['this_rows_per_s']]} vs "
              f"{[round(r) for r in against['other_rows_per_s']]})")
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
