"""Calibrate an existing adapter: fit its temperature and its shift detector, and store both with it.

    python -m emotion_app calibrate --adapter models/minilm-emotion-lora --data_dir ../shared/data/emotion

Writes <adapter>/calibration.json {"temperature": T} (fitted in fp32 on validation, as training
does) and the shift detector <adapter>/shift_detector.safetensors + shift_detector.json (the
out-of-distribution score: fitted on a seeded sample of training rows with the features of the
engine the app runs, `--precision auto` = int8 ONNX Runtime on CPU, calibrated on validation),
and adds `calibration`, `coverage`, `shift_detector` and `coverage_in_distribution` to
<adapter>/metrics.json. Prints the figures. `--detector_rows 0` fits the temperature only,
`--detector_only` the detector only (with the temperature already stored).

Writing into --adapter is this command's job, so it needs no other flag: it replaces those files
only (each written beside and renamed, so none is ever half-written) and leaves the weights, the
tokenizer and the card as they are. To keep the adapter as it was, calibrate a copy. Before any
fitting it checks that --adapter is a local adapter directory that takes new files and that no
input is one of the files it writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emotion_app.analysis.calibration import calibrate_adapter
from emotion_app.analysis.shift import (
    DEFAULT_FIT_ROWS,
    fit_for_classifier,
    store_detector,
)
from emotion_app.artifacts import CALIBRATION_FILE, METRICS_FILE, SHIFT_FILES, read_labels
from emotion_app.cli.options import add_engine_options, add_evaluation_options, add_option
from emotion_app.cli.runner import command_parser, run_command
from emotion_app.constants import PRECISIONS
from emotion_app.data.labelled import DataArguments, load_splits
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.errors import InputError, ModelError, model_errors
from emotion_app.paths import check_input_folder, check_outputs, is_adapter_dir

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("calibrate", __doc__)
    add_evaluation_options(parser, "Local adapter directory (calibration is written into it).")
    add_option(parser, "--detector_rows", "--detector-rows", type=int, default=DEFAULT_FIT_ROWS,
               help=f"Training rows (a seeded sample) the shift detector is fitted on; 0: no detector. "
               f"Default {DEFAULT_FIT_ROWS}.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of that sample (default 0).")
    add_option(parser, "--extra_train_files", "--extra-train-files", nargs="+", default=None,
               help="More training files the detector's sample is drawn from, as train.py took them "
                    "(e.g. ../shared/data/goemotions/train.csv for a model trained on it).")
    add_option(parser, "--label_mapping", "--label-mapping", default=None,
               help="The label mapping train.py took (configs/mappings/goemotions.json).")
    add_option(parser, "--extra_train_max_per_label", "--extra-train-max-per-label", type=int, default=None,
               help="The per-label cap train.py took for the extra files (the capped rows are sampled with --seed).")
    add_option(parser, "--detector_only", "--detector-only", action="store_true",
               help="Fit the shift detector only, keeping the stored temperature (calibration.json).")
    add_engine_options(parser)  # the engine whose features the detector reads: the app's by default
    return parser


def check_paths(args: argparse.Namespace) -> None:
    """--adapter is a local adapter that takes the files written into it, none of which is an input."""
    adapter = Path(args.adapter)
    if not adapter.is_dir():
        raise InputError(f"--adapter {args.adapter} is not a directory: expected a local adapter directory, "
                         "since calibration.json and metrics.json are written into it. Download a Hub "
                         "adapter first (huggingface-cli download user/name --local-dir DIR).")
    if not is_adapter_dir(adapter):
        raise ModelError(f"--adapter {adapter} holds no adapter_config.json: expected an adapter directory "
                         "(as train.py writes). Check the path.")
    if args.data_dir:
        check_input_folder("--data_dir", args.data_dir)
    written = {name: adapter / name for name in (CALIBRATION_FILE, METRICS_FILE, *SHIFT_FILES)}
    check_outputs(written, {"--data_dir": args.data_dir, "--extra_train_files": args.extra_train_files,
                            "--label_mapping": args.label_mapping, "--base_model": args.base_model},
                  into_adapter=adapter)


def run(args: argparse.Namespace) -> dict:
    """Calibrate args.adapter; returns the entries added to metrics.json."""
    if args.detector_rows < 0 or (args.detector_only and not args.detector_rows):
        raise InputError(f"--detector_rows must be 0 (no detector) or more, and more with --detector_only; found "
                         f"{args.detector_rows}. Leave it at its default {DEFAULT_FIT_ROWS}.")
    check_paths(args)
    splits = ("train", "validation", "test") if args.detector_rows else ("validation", "test")
    data = load_splits(DataArguments(data_dir=args.data_dir, labels=list(read_labels(args.adapter)),
                                     extra_train_files=args.extra_train_files, label_mapping=args.label_mapping,
                                     extra_train_max_per_label=args.extra_train_max_per_label),
                       splits=splits, seed=args.seed)
    if args.detector_only:
        return fit_detector(args, data)
    # fp32, as train.py fits it: the temperature belongs to the adapter, not to one engine setting.
    # detect_shift=False: a detector stored earlier (perhaps broken: this command is its fix) is not read.
    with model_errors(args.adapter):
        classifier = EmotionClassifier.from_adapter(args.adapter, base_model=args.base_model,
                                                    batch_size=args.batch_size, quantize=False, detect_shift=False)
    # Raw logits: the temperature already stored (if any) must not affect the new fit.
    logits = {split: classifier.logits(data[split]["text"]) for split in ("validation", "test")}
    added = calibrate_adapter(args.adapter, logits["validation"], data["validation"]["label"],
                              logits["test"], data["test"]["label"])
    if args.detector_rows:
        added.update(fit_detector(args, data))
    return added


def fit_detector(args: argparse.Namespace, data) -> dict:
    """Fit, calibrate and store the shift detector with the engine's own features; its entries."""
    with model_errors(args.adapter):  # reads the temperature just fitted
        engine = EmotionClassifier.from_adapter(args.adapter, base_model=args.base_model, batch_size=args.batch_size,
                                                quantize=PRECISIONS[args.precision], runtime=args.runtime,
                                                detect_shift=False)
    split = {name: (list(data[name]["text"]), list(data[name]["label"])) for name in ("train", "validation", "test")}
    try:
        detector, entries = fit_for_classifier(engine, split["train"], split["validation"], split["test"],
                                               rows=args.detector_rows, seed=args.seed)
    except ValueError as err:  # e.g. a tiny validation split predicted all right: the temperature still counts
        logger.warning("no shift detector fitted: %s", err)
        return {"shift_detector_error": str(err)}
    store_detector(args.adapter, detector, entries)
    return entries


def format_summary(added: dict) -> str:
    calibration, lines = added.get("calibration"), []
    if calibration:
        lines += [f"temperature {calibration['temperature']:.4f} (fitted on {calibration['fitted_on']})",
                  f"test ECE ({calibration['n_bins']} bins)  before {calibration['test_ece_before']:.4f}  "
                  f"after {calibration['test_ece_after']:.4f}",
                  f"test NLL  before {calibration['test_nll_before']:.4f}  after {calibration['test_nll_after']:.4f}"]
    shift = added.get("shift_detector")
    if "shift_detector_error" in added:
        lines.append(f"no shift detector: {added['shift_detector_error']}")
    if shift:
        estimate = shift["test_estimate"]
        lines.append(f"shift detector ({shift['engine']}, {shift['fit_rows']} training rows): out of distribution "
                     f"{shift['validation_flagged']:.1%} of validation, {shift['test_flagged']:.1%} of test; "
                     f"test accuracy estimated {estimate['estimated_accuracy']:.1%} "
                     f"[{estimate['estimated_accuracy_low']:.1%}, {estimate['estimated_accuracy_high']:.1%}]")
    return "\n".join(lines)


def calibrate(args: argparse.Namespace) -> None:
    added = run(args)
    print(format_summary(added))  # the command's output
    written = [*(["calibration.json"] if "calibration" in added else []),
               *(["shift_detector.*"] if "shift_detector" in added else []), "metrics.json"]
    print(f"{', '.join(written)} updated in {args.adapter}")


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, calibrate, interrupted=lambda args: (
        f"every file in {args.adapter} is whole (each is written beside and renamed); a fit that had "
        "finished before the interruption (see metrics.json) was stored, the others were not."))


if __name__ == "__main__":
    sys.exit(main())
