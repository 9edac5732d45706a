"""Mix LoRA adapters of one base in weight space (WiSE-FT / a model soup) into one adapter, measured.

    python -m emotion_app soup --adapters outputs/plain outputs/prior --weights 0.5 0.5 \\
        --output_dir models/minilm-emotion-lora --data_dir ../shared/data/emotion

The output is a complete adapter directory like train.py's: one plain LoRA adapter (rank = the sum
of the ranks; train/soup.py says how), its tokenizer, metrics.json with validation and test figures,
the temperature fitted on validation, the coverage curve, the shift detector, and the soup's
lineage (each adapter, its sha256 and weight); then the model card. It loads with plain
transformers + peft. Choose the weights on validation (and real text of your own), never on test.
Exit codes: 0 done, 2 bad input or options (the message says what to fix).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emotion_app.artifacts import read_metrics
from emotion_app.data.labelled import DataArguments, load_splits

logger = logging.getLogger(__name__)

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app soup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", required=True, help="Two or more adapter directories or Hub ids.")
    parser.add_argument("--weights", nargs="+", type=float, required=True,
                        help="One weight per adapter, each in [0, 1], summing to 1.")
    parser.add_argument("--output_dir", required=True, help="Where the mixed adapter goes.")
    parser.add_argument("--data_dir", default=None, help="Directory with train/validation/test files "
                        "(e.g. ../shared/data/emotion); default: dair-ai/emotion from the Hub.")
    parser.add_argument("--max_length", type=int, default=None,
                        help="Tokens per text; default: what the first adapter was trained with (metrics.json).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the training rows the shift detector is fitted on.")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Mix, measure and save; returns the metrics written."""
    from emotion_app.engine.adapters import load_tokenizer
    from emotion_app.train.arguments import ModelArguments
    from emotion_app.train.soup import lineage, load_mix, read_ingredient, recorded_accuracy
    from emotion_app.train.trainer import measure, save_adapter

    ingredients, sources = zip(*(read_ingredient(adapter) for adapter in args.adapters))
    loaded, config = load_mix(ingredients, args.weights, load_tokenizer(sources[0].tokenizer_source))
    trained = (read_metrics(sources[0].directory) or {}).get("training", {})
    model_args = ModelArguments(base_model=sources[0].base_model,
                                max_length=args.max_length or trained.get("max_length") or ModelArguments.max_length)
    data = load_splits(DataArguments(data_dir=args.data_dir))
    metrics, detector = measure(loaded.model, loaded.tokenizer, data, model_args, 128, args.seed,
                                Path(args.output_dir).name)
    metrics["soup"] = {"adapters": [
        lineage(adapter, weight, source.directory, recorded_accuracy(source.directory))
        for adapter, weight, source in zip(args.adapters, args.weights, sources)],
        "rank": config["r"], "max_length": model_args.max_length, "seed": args.seed}
    save_adapter(loaded.model, loaded.tokenizer, metrics, Path(args.output_dir), model_args.base_model, detector)
    return metrics


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        metrics = run(args)
    except ValueError as err:
        logger.error("%s", err)
        return 2
    logger.info("Soup in %s: validation %.2f%%, test %.2f%%", args.output_dir,
                100 * metrics["validation"]["accuracy"], 100 * metrics["test"]["accuracy"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
