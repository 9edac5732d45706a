"""Mix LoRA adapters of one base in weight space (WiSE-FT / a model soup) into one adapter, measured.

    python -m emotion_app soup --adapters outputs/plain outputs/prior --weights 0.5 0.5 \\
        --output_dir outputs/soup --data_dir ../shared/data/emotion

The output is a complete adapter directory like train.py's: one plain LoRA adapter (rank = the sum
of the ranks; train/soup.py says how), its tokenizer, metrics.json with validation and test figures,
the temperature fitted on validation, the coverage curve, the shift detector, and the soup's
lineage (each adapter, its sha256 and weight); then the model card. It loads with plain
transformers + peft. Choose the weights on validation (and real text of your own), never on test.
--output_dir must be new or empty; --overwrite replaces a finished adapter there, whole: the new
one is built beside it and swapped in only once complete (the old one stays if the run fails).
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path

from emotion_app.artifacts import read_metrics
from emotion_app.cli.runner import TIMED_LOG_FORMAT, command_parser, run_command
from emotion_app.data.labelled import DataArguments, load_splits
from emotion_app.errors import model_errors
from emotion_app.paths import check_adapter_output, check_input_folder, check_outputs, replacing_directory
from emotion_app.train.soup import NEUTRAL_MARGIN_HELP

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("soup", __doc__)
    parser.add_argument("--adapters", nargs="+", required=True, help="Two or more adapter directories or Hub ids.")
    parser.add_argument("--weights", nargs="+", type=float, required=True,
                        help="One weight per adapter, each in [0, 1], summing to 1.")
    parser.add_argument("--output_dir", required=True, help="Where the mixed adapter goes.")
    parser.add_argument("--neutral_margin", type=float, default=0.0, help=NEUTRAL_MARGIN_HELP)
    parser.add_argument("--data_dir", default=None, help="Directory with train/validation/test files "
                        "(e.g. ../shared/data/emotion); default: dair-ai/emotion from the Hub.")
    parser.add_argument("--max_length", type=int, default=None,
                        help="Tokens per text; default: what the first adapter was trained with (metrics.json).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the training rows the shift detector is fitted on.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace a finished adapter in --output_dir (once the new one is complete).")
    return parser


def check_paths(args: argparse.Namespace) -> bool:
    """--output_dir can take the mixed adapter and reads none of the inputs; whether it replaces one."""
    if args.data_dir:
        check_input_folder("--data_dir", args.data_dir)
    check_outputs({"--output_dir": args.output_dir}, {"--adapters": args.adapters, "--data_dir": args.data_dir},
                  directories={"--output_dir"})
    return check_adapter_output("--output_dir", args.output_dir, args.overwrite)


def run(args: argparse.Namespace) -> dict:
    """Mix, measure and save; returns the metrics written."""
    from emotion_app.engine.adapters import load_tokenizer
    from emotion_app.train.arguments import ModelArguments
    from emotion_app.train.soup import check_weights, lineage, load_mix, read_ingredient, recorded_accuracy
    from emotion_app.train.trainer import measure, save_adapter

    check_weights(args.weights, len(args.adapters))
    replacing = check_paths(args)
    with model_errors(", ".join(args.adapters)):
        ingredients, sources = zip(*(read_ingredient(adapter) for adapter in args.adapters))
        loaded, config = load_mix(ingredients, args.weights, load_tokenizer(sources[0].tokenizer_source),
                                  args.neutral_margin)
    trained = (read_metrics(sources[0].directory) or {}).get("training", {})
    model_args = ModelArguments(base_model=sources[0].base_model,
                                max_length=args.max_length or trained.get("max_length") or ModelArguments.max_length)
    data = load_splits(DataArguments(data_dir=args.data_dir, labels=list(loaded.labels)))  # read as the model labels
    metrics, detector = measure(loaded.model, loaded.tokenizer, data, model_args, 128, args.seed,
                                Path(args.output_dir).name)
    metrics["soup"] = {"adapters": [
        lineage(adapter, weight, source.directory, recorded_accuracy(source.directory))
        for adapter, weight, source in zip(args.adapters, args.weights, sources)],
        "rank": config["r"], "neutral_margin": args.neutral_margin, "max_length": model_args.max_length,
        "seed": args.seed}
    with replacing_directory(args.output_dir) if replacing else nullcontext(Path(args.output_dir)) as out:
        save_adapter(loaded.model, loaded.tokenizer, metrics, out, model_args.base_model, detector)
    return metrics


def soup(args: argparse.Namespace) -> None:
    metrics = run(args)
    logger.info("Soup in %s: validation %.2f%%, test %.2f%%", args.output_dir,
                100 * metrics["validation"]["accuracy"], 100 * metrics["test"]["accuracy"])


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, soup, log_format=TIMED_LOG_FORMAT, interrupted=lambda args: (
        f"no adapter was written to {args.output_dir} (an adapter there before is untouched)."))


if __name__ == "__main__":
    sys.exit(main())
