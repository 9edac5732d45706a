"""Fit the temperature of an existing adapter on the validation split and store it with the adapter.

    python -m emotion_app.calibrate --adapter models/minilm-emotion-lora --data_dir ../shared/data/emotion

Writes <adapter>/calibration.json {"temperature": T} (used by the app and the CLIs from then on)
and adds `calibration` (ECE and NLL on test before/after) and `coverage` (the test split's
accuracy-vs-coverage curve) to <adapter>/metrics.json. Prints the before/after figures.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from emotion_app.analysis.calibration import calibrate_adapter
from emotion_app.commands import add_evaluation_options
from emotion_app.data.labelled import DataArguments, load_splits
from emotion_app.engine.classifier import EmotionClassifier

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluation_options(parser, "Local adapter directory (calibration is written into it).")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Calibrate args.adapter; returns the entries added to metrics.json."""
    if not Path(args.adapter).is_dir():
        raise ValueError(f"--adapter {args.adapter} is not a directory: expected a local adapter directory, "
                         "since calibration.json and metrics.json are written into it. Download a Hub "
                         "adapter first (huggingface-cli download user/name --local-dir DIR).")
    data = load_splits(DataArguments(data_dir=args.data_dir), splits=("validation", "test"))
    # fp32, as train.py fits it: the temperature belongs to the adapter, not to one engine setting.
    classifier = EmotionClassifier.from_adapter(args.adapter, base_model=args.base_model,
                                                batch_size=args.batch_size, quantize=False)
    # Raw logits: the temperature already stored (if any) must not affect the new fit.
    logits = {split: classifier.logits(data[split]["text"]) for split in ("validation", "test")}
    return calibrate_adapter(args.adapter, logits["validation"], data["validation"]["label"],
                             logits["test"], data["test"]["label"])


def format_summary(calibration: dict) -> str:
    return (f"temperature {calibration['temperature']:.4f} (fitted on {calibration['fitted_on']})\n"
            f"test ECE ({calibration['n_bins']} bins)  before {calibration['test_ece_before']:.4f}  "
            f"after {calibration['test_ece_after']:.4f}\n"
            f"test NLL  before {calibration['test_nll_before']:.4f}  after {calibration['test_nll_after']:.4f}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        added = run(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(format_summary(added["calibration"]))  # the command's output
    print(f"calibration.json and metrics.json updated in {args.adapter}")


if __name__ == "__main__":
    main()
