"""Evaluate a saved adapter on a labelled split, without training.

    python -m emotion_app.evaluate --adapter models/minilm-emotion-lora --data_dir ../shared/data/emotion
    python -m emotion_app.evaluate --adapter user/name --split validation --output val-metrics.json

Prints the figures and writes them in metrics.json's format (to --output).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from emotion_app.analysis.metrics import evaluate, format_report
from emotion_app.commands import add_engine_options, add_evaluation_options
from emotion_app.constants import PRECISIONS
from emotion_app.data.labelled import SPLITS, DataArguments, load_splits
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import LABELS

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluation_options(parser, "Adapter directory or Hub repo id (user/name).")
    parser.add_argument("--file", default=None, help="One labelled file to evaluate instead of a split.")
    parser.add_argument("--split", default="test", choices=SPLITS, help="Split to evaluate.")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Evaluate only the first N rows.")
    # fp32 by default: the precision metrics.json is computed in; `auto` or int8 is the app's CPU engine
    add_engine_options(parser, precision="fp32")
    parser.add_argument("--int8", dest="precision", action="store_const", const="int8", help=argparse.SUPPRESS)
    parser.add_argument("--output", default="metrics.json", help="Where to write the metrics (JSON).")
    return parser


def run(args: argparse.Namespace) -> dict:
    data_args = DataArguments(data_dir=None if args.file else args.data_dir)
    if args.file:
        setattr(data_args, f"{args.split}_file", args.file)
    dataset = load_splits(data_args, splits=(args.split,))[args.split]
    if args.max_eval_samples is not None:
        dataset = dataset.select(range(min(args.max_eval_samples, len(dataset))))
    classifier = EmotionClassifier.from_adapter(args.adapter, base_model=args.base_model,
                                                batch_size=args.batch_size, quantize=PRECISIONS[args.precision],
                                                runtime=args.runtime)
    metrics = {"labels": list(LABELS), "base_model": classifier.info["base_model"],
               "adapter": args.adapter, "engine": {k: classifier.info[k] for k in ("runtime", "precision")},
               args.split: evaluate(classifier, dataset["text"], dataset["label"])}
    Path(args.output).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        metrics = run(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(format_report(metrics[args.split], f"{args.adapter} on {args.split}:"))  # the command's output
    print(f"metrics written to {args.output}")


if __name__ == "__main__":
    main()
