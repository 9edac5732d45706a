"""Evaluate a saved adapter on a labelled split, without training.

    python -m emotion_app evaluate --adapter models/minilm-emotion-lora --data_dir ../shared/data/emotion
    python -m emotion_app evaluate --adapter user/name --split validation --output val-metrics.json

Prints the figures and writes them in metrics.json's format (to --output). The file's labels are
read against the model's (a label the model does not have is an error naming the row); a model with
`neutral` scored on rows without it (dair-ai/emotion) also gets the six-way figures (the six
emotions alone, comparable with six-label models) and the count of rows it called neutral. With labels of your own
(--file), it also says what they give: the review threshold for --target_accuracy chosen on them
("On your 120 labelled rows, confidence >= 0.80 kept 40% at 91.0% (target 97%)") beside what the
unlabelled estimate would have said, when the adapter has a shift detector.

    python -m emotion_app evaluate --adapter models/minilm-emotion-lora --file my-labelled.csv --split test
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emotion_app.analysis.metrics import format_report, label_set_metrics
from emotion_app.analysis.review import threshold_from_labels
from emotion_app.analysis.shift import describe_estimate, estimate_file_accuracy
from emotion_app.artifacts import write_json
from emotion_app.cli.options import add_engine_options, add_evaluation_options, add_option
from emotion_app.cli.runner import command_parser, run_command
from emotion_app.constants import DEFAULT_TARGET_ACCURACY, PRECISIONS, resolve_adapter
from emotion_app.data.labelled import SPLITS, DataArguments, load_splits
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.errors import model_errors
from emotion_app.paths import check_input_file, check_input_folder, check_outputs, writing

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("evaluate", __doc__)
    add_evaluation_options(parser, "Adapter directory or Hub repo id (user/name).")
    parser.add_argument("--file", default=None, help="One labelled file to evaluate instead of a split.")
    parser.add_argument("--split", default="test", choices=SPLITS, help="Split to evaluate.")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Evaluate only the first N rows.")
    # fp32 by default: the precision metrics.json is computed in; `auto` or int8 is the app's CPU engine
    add_engine_options(parser, precision="fp32")
    parser.add_argument("--int8", dest="precision", action="store_const", const="int8", help=argparse.SUPPRESS)
    add_option(parser, "--target_accuracy", "--target-accuracy", type=float, default=DEFAULT_TARGET_ACCURACY,
               help="The accuracy the review threshold chosen on these labels must reach "
                    f"(default {DEFAULT_TARGET_ACCURACY}).")
    parser.add_argument("--output", default="metrics.json", help="Where to write the metrics (JSON).")
    return parser


def check_paths(args: argparse.Namespace) -> None:
    """The labelled file or folder is there and --output can be written, before the model loads."""
    if args.file:
        check_input_file("--file", args.file)
    elif args.data_dir:
        check_input_folder("--data_dir", args.data_dir)
    check_outputs({"--output": args.output}, {"--adapter": resolve_adapter(args.adapter),
                                              "--file": args.file, "--data_dir": None if args.file else args.data_dir})


def run(args: argparse.Namespace) -> dict:
    check_paths(args)
    with model_errors(args.adapter):
        classifier = EmotionClassifier.from_adapter(args.adapter, base_model=args.base_model,
                                                    batch_size=args.batch_size, quantize=PRECISIONS[args.precision],
                                                    runtime=args.runtime)
    data_args = DataArguments(data_dir=None if args.file else args.data_dir, labels=list(classifier.labels))
    if args.file:
        setattr(data_args, f"{args.split}_file", args.file)
    dataset = load_splits(data_args, splits=(args.split,))[args.split]
    if args.max_eval_samples is not None:
        dataset = dataset.select(range(min(args.max_eval_samples, len(dataset))))
    texts, labels = list(dataset["text"]), list(dataset["label"])
    detector = classifier.detector
    details = classifier.predict_details(texts) if detector is not None else None
    probs = details.probabilities if details is not None else classifier.predict_proba(texts)
    figures = label_set_metrics(labels, probs, classifier.labels)
    review = threshold_from_labels(probs, labels, args.target_accuracy,
                                   details.in_distribution if details is not None else None, classifier.labels)
    figures["review_from_labels"] = {**vars(review), "summary": review.describe()}
    if details is not None:  # what the file's estimate would have said without the labels
        figures["estimate_without_labels"] = estimate_file_accuracy(detector, probs, details.ood_scores)
    metrics = {"labels": list(classifier.labels), "base_model": classifier.info["base_model"],
               "adapter": args.adapter, "engine": {k: classifier.info[k] for k in ("runtime", "precision")},
               args.split: figures}
    with writing("--output", args.output):
        write_json(Path(args.output), metrics)
    return metrics


def evaluate(args: argparse.Namespace) -> None:
    metrics = run(args)
    figures = metrics[args.split]
    print(format_report(figures, f"{args.adapter} on {args.file or args.split}:"))  # the command's output
    print(figures["review_from_labels"]["summary"])
    if "estimate_without_labels" in figures:
        print("Without the labels: " + " ".join(describe_estimate(figures["estimate_without_labels"])))
    print(f"metrics written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, evaluate)


if __name__ == "__main__":
    sys.exit(main())
