"""The default model's figures over its seeds: benchmark and real text, per run and mean ± spread.

    python benchmarks/bench_model.py --adapters outputs/v2-seed42 outputs/v2-seed43 outputs/v2-seed44 \
        --output docs/bench_model.json
    python benchmarks/bench_model.py --adapters models/minilm-emotion-lora   # the shipped one alone

For each adapter (a train.py output directory):
- dair-ai validation and test accuracy / macro-F1 as train.py measured them (metrics.json: the
  fp32 training model, the best epoch by validation accuracy, test read once);
- GoEmotions-6 dev (../shared/data/goemotions-6/dev.csv, Reddit comments never trained on):
  accuracy / macro-F1 with the fp32 torch model and with the engine the app runs (int8 ONNX
  Runtime on CPU), so the shipped figure is the one users get;
- the best epoch and the training time;
then the mean, the sample standard deviation and the range of each figure over the adapters.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

from _common import GOEMOTIONS6_DEV, setup_logging

from emotion_app.analysis.metrics import classification_metrics
from emotion_app.artifacts import read_metrics
from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.classifier import EmotionClassifier

logger = logging.getLogger("bench_model")

ENGINES = {"fp32": {"quantize": False, "runtime": "torch"}, "engine": {"quantize": "auto", "runtime": "auto"}}


def measure(adapter: str, real: Path) -> dict:
    metrics = read_metrics(Path(adapter))
    if not metrics or "test" not in metrics:
        raise SystemExit(f"error: {adapter} has no metrics.json with test figures: expected a train.py output "
                         "directory. Train one with `python train.py configs/minilm-cpu.json`.")
    training = metrics.get("training", {})
    row = {"adapter": adapter, "seed": training.get("seed"),
           "best_checkpoint": Path(str(training.get("best_checkpoint"))).name,
           "train_minutes": round(training.get("train_seconds", 0) / 60, 1)}
    for split in ("validation", "test"):
        row[f"{split}_accuracy"] = metrics[split]["accuracy"]
        row[f"{split}_macro_f1"] = metrics[split]["macro_f1"]
    data = read_labeled_file(real)
    for name, options in ENGINES.items():
        classifier = EmotionClassifier.from_adapter(adapter, detect_shift=False, **options)
        figures = classification_metrics(data["label"], classifier.predict_proba(list(data["text"])))
        row[f"real_{name}_accuracy"], row[f"real_{name}_macro_f1"] = figures["accuracy"], figures["macro_f1"]
        logger.info("%s on %s (%s): accuracy %.4f, macro-F1 %.4f", adapter, real.name, name,
                    figures["accuracy"], figures["macro_f1"])
    return row


def summarise(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k.endswith(("_accuracy", "_macro_f1"))]
    summary = {}
    for key in keys:
        values = [row[key] for row in rows]
        summary[key] = {"mean": round(statistics.fmean(values), 4),
                        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None,
                        "min": min(values), "max": max(values)}
    return summary


def table(rows: list[dict], summary: dict) -> str:
    keys = [k for k in rows[0] if k.endswith(("_accuracy", "_macro_f1"))]
    lines = ["| run | seed | best | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 3)]
    for row in rows:
        lines.append(f"| {row['adapter']} | {row['seed']} | {row['best_checkpoint']} | "
                     + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    if len(rows) > 1:
        lines.append("| mean ± sd | | | " + " | ".join(
            f"{summary[k]['mean']:.4f} ± {summary[k]['sd']:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_model.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", required=True, help="train.py output directories.")
    parser.add_argument("--real", default=str(GOEMOTIONS6_DEV), help="Labelled real-text file (default GoEmotions-6 dev).")
    parser.add_argument("--output", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    rows = [measure(adapter, Path(args.real)) for adapter in args.adapters]
    summary = summarise(rows)
    print(table(rows, summary))
    if args.output:
        Path(args.output).write_text(json.dumps({"real": args.real, "runs": rows, "summary": summary}, indent=2)
                                     + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
