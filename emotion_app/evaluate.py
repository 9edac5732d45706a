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

from .config import DEFAULT_DATASET, DataArguments
from .data import SPLITS, load_splits
from .evaluation import evaluate, format_report
from .inference import EmotionClassifier
from .labels import LABELS
from .options import RUNTIMES

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="Adapter directory or Hub repo id (user/name).")
    parser.add_argument("--base_model", default=None, help="Override the base model named in the adapter.")
    parser.add_argument("--data_dir", default=None, help="Directory with train/validation/test files; "
                        f"default: {DEFAULT_DATASET} from the Hub.")
    parser.add_argument("--file", default=None, help="One labelled file to evaluate instead of a split.")
    parser.add_argument("--split", default="test", choices=SPLITS, help="Split to evaluate.")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Evaluate only the first N rows.")
    parser.add_argument("--batch_size", type=int, default=64, help="Texts per forward pass.")
    parser.add_argument("--int8", action="store_true", help="Evaluate the int8 engine the app uses on CPU "
                        "(default: fp32, the precision metrics.json is computed in).")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="auto: ONNX Runtime on CPU when installed, else torch.")
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
                                                batch_size=args.batch_size, quantize=args.int8,
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
