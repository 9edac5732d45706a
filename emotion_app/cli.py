"""Command-line parsing for train.py: dataclasses via HfArgumentParser, JSON config + flags."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import HfArgumentParser

from .config import DataArguments, LoraArguments, ModelArguments, RunArguments

ARGUMENT_CLASSES = (ModelArguments, DataArguments, LoraArguments, RunArguments)


def train_parser() -> HfArgumentParser:
    return HfArgumentParser(ARGUMENT_CLASSES)


def parse_train_args(argv: list[str]):
    """(model, data, lora, run) arguments. A first argument ending in .json is a config file
    whose values become defaults; the flags after it override them."""
    parser = train_parser()
    if argv and argv[0].endswith(".json"):
        path = Path(argv[0])
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"config {path} could not be read as JSON: {err}. Expected a JSON object of "
                             "train.py options, e.g. configs/minilm-cpu.json.") from None
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - known)
        if unknown:
            raise SystemExit(f"config {path} has unknown options {unknown}. See `python train.py --help`.")
        parser.set_defaults(**config)
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)
