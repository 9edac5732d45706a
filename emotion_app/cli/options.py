"""What the `python -m emotion_app <command>` commands and app.py share on their command lines: one
spelling per option (underscores, as train.py's), the engine switches, and the adapter default.
Earlier spellings keep working but are hidden from --help."""

from __future__ import annotations

import argparse

from emotion_app.constants import DEFAULT_ADAPTER, DEFAULT_DATASET, PRECISIONS, RUNTIMES


def add_option(parser: argparse.ArgumentParser, name: str, *old_names: str, **kwargs) -> None:
    """`name` as documented, each of `old_names` as a hidden alias with the same meaning."""
    action = parser.add_argument(name, **kwargs)
    for old in old_names:
        alias = {k: v for k, v in kwargs.items() if k not in ("help", "required", "default")}
        parser.add_argument(old, dest=action.dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **alias)


def add_adapter_option(parser: argparse.ArgumentParser, default: str = DEFAULT_ADAPTER) -> None:
    parser.add_argument("--adapter", default=default,
                        help=f"Adapter directory or Hub repo id (user/name); default: {default}.")


def add_evaluation_options(parser: argparse.ArgumentParser, adapter_help: str) -> None:
    """The adapter to evaluate or calibrate, and the labelled data (evaluate, calibrate, adapt)."""
    parser.add_argument("--adapter", required=True, help=adapter_help)
    parser.add_argument("--base_model", default=None, help="Override the base model named in the adapter.")
    parser.add_argument("--data_dir", default=None, help="Directory with train/validation/test files "
                        f"(e.g. ../shared/data/emotion); default: {DEFAULT_DATASET} from the Hub.")
    add_option(parser, "--batch_size", "--batch-size", type=int, default=64, help="Texts per forward pass.")


def add_engine_options(parser: argparse.ArgumentParser, precision: str = "auto") -> None:
    """--precision and --runtime, as EmotionClassifier.from_adapter takes them (see PRECISIONS)."""
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=precision,
                        help=f"auto: int8 on CPU, fp32 on a GPU; int8; fp32 (int8 off). Default: {precision}.")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="auto: ONNX Runtime on CPU when installed, else torch; or onnxruntime, torch.")
