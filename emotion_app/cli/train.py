"""Fine-tune a LoRA emotion classifier on dair-ai/emotion.

The reference recipe (DialogRPT-updown, GPT-2 medium, LoRA r=8; needs the Hub, best on a GPU):
    python -m emotion_app train configs/dialogrpt-updown.json

The bundled MiniLM on a 2-core CPU with the local copy of the data (docs/training.md): the embedded
adapter (v3: seven labels, with GoEmotions train, mixed in weight space with v2), and v2 (a prior
run mixed with the labels-only run v1, which the first command makes):
    python -m emotion_app train configs/minilm-v3.json --data_dir ../shared/data/emotion
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion
    python -m emotion_app train configs/minilm-cpu.json --data_dir ../shared/data/emotion

A smoke run (2 steps) and resuming after an interruption:
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion --max_steps 2 --output_dir /tmp/out
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion --resume

Flags override the JSON file; `python -m emotion_app train --help` lists them all. Publish with
`--push_to_hub --hub_model_id user/name [--hub_private_repo]` (token from HF_TOKEN or the login).

--output_dir must be new, empty or an earlier run of train.py (its checkpoints/, or its
metrics.json); another non-empty folder is refused before any work unless --overwrite_output_dir
(or --resume) says to train into it. The base model and --soup_with are checked before the data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from emotion_app.artifacts import read_metrics
from emotion_app.cli.runner import TIMED_LOG_FORMAT, run_command
from emotion_app.errors import InputError, model_errors
from emotion_app.paths import check_directory_output, check_input_file, check_input_folder, check_outputs
from emotion_app.train.arguments import parse_train_args
from emotion_app.train.trainer import CHECKPOINTS, train

logger = logging.getLogger(__name__)


def parse(argv: list[str]):
    """(model, data, lora, run) arguments; a config file that cannot be used is bad usage."""
    try:
        return parse_train_args(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # parse_train_args' own message about the config file
            raise InputError(exit_.code) from None
        raise


def is_earlier_run(folder: Path) -> bool:
    """A folder train.py wrote: its checkpoints, or a metrics.json with training figures (not an adaptation's)."""
    if (folder / CHECKPOINTS).is_dir():
        return True
    try:
        metrics = read_metrics(folder) or {}
    except ValueError:
        return False
    return "training" in metrics and "adaptation" not in metrics


def check_data(data_args) -> None:
    """The local data files and folder named are there (exit 2 now, not after the model loads)."""
    if data_args.data_dir:
        check_input_folder("--data_dir", data_args.data_dir)
    for flag in ("train_file", "validation_file", "test_file", "label_mapping"):
        if getattr(data_args, flag):
            check_input_file(f"--{flag}", getattr(data_args, flag))
    for path in data_args.extra_train_files or ():
        check_input_file("--extra_train_files", path)


def check_paths(model_args, data_args, run_args) -> None:
    """output_dir: creatable, no input in it nor it inside an adapter, and new, empty or an earlier run."""
    inputs = {"--data_dir": data_args.data_dir, "--train_file": data_args.train_file,
              "--validation_file": data_args.validation_file, "--test_file": data_args.test_file,
              "--extra_train_files": data_args.extra_train_files, "--label_mapping": data_args.label_mapping,
              "--base_model": model_args.base_model, "--soup_with": run_args.soup_with}
    check_outputs({"--output_dir": run_args.output_dir}, inputs, directories={"--output_dir"})
    anything = run_args.overwrite_output_dir or run_args.resume
    check_directory_output("--output_dir", run_args.output_dir, (lambda _: True) if anything else is_earlier_run,
                           "Pass --overwrite_output_dir to train into it anyway, or choose a new or empty folder.")


def check_models(model_args, run_args) -> None:
    """The base model's config and the --soup_with adapter load (exit 3 now, not after the data)."""
    from transformers import AutoConfig

    from emotion_app.engine.adapters import read_adapter, resolve_base

    with model_errors(model_args.base_model):
        AutoConfig.from_pretrained(resolve_base(model_args.base_model))
    if run_args.soup_with:
        with model_errors(run_args.soup_with):
            read_adapter(run_args.soup_with)


def run(arguments) -> None:
    model_args, data_args, lora_args, run_args = arguments
    check_data(data_args)
    check_paths(model_args, data_args, run_args)
    check_models(model_args, run_args)
    output_dir = train(model_args, data_args, lora_args, run_args)
    logger.info("Adapter, metrics.json and model card in %s", output_dir)


def interrupted(arguments) -> str:
    folder = Path(arguments[3].output_dir) / CHECKPOINTS
    return f"no adapter was saved; the checkpoints saved so far are in {folder}: --resume continues from the last."


def main(argv: list[str] | None = None) -> int:
    return run_command(parse, argv, run, interrupted=interrupted, log_format=TIMED_LOG_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
