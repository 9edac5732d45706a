"""Shared fixtures: tiny BERT and GPT-2 (DialogRPT-shaped) checkpoints, small labelled files and
tiny adapters trained through the real train.py (built by tests/support.py), and the engine's
cache in a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import (
    NEUTRAL_SPLIT_ROWS,
    SEVEN_LABELS,
    SPLIT_ROWS,
    build_tiny_bert,
    build_tiny_gpt2,
    quick_train_args,
    run_train,
    write_split_files,
)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """The engine's ONNX Runtime cache in a temporary folder (inherited by the app and CLI
    subprocesses), so that tests neither read nor fill the user's ~/.cache."""
    directory = tmp_path_factory.mktemp("onnx-cache")
    previous = os.environ.get("EMOTION_APP_CACHE")
    os.environ["EMOTION_APP_CACHE"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("EMOTION_APP_CACHE", None)
    else:
        os.environ["EMOTION_APP_CACHE"] = previous


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """train/validation/test.txt (`text;label`), 48/24/24 rows, all six labels in each."""
    return write_split_files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def split_rows() -> dict[str, list[tuple[str, int]]]:
    return {split: list(rows) for split, rows in SPLIT_ROWS.items()}


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def trained_bert_adapter(tmp_path_factory, tiny_bert_dir, data_dir) -> Path:
    """A tiny BERT adapter trained for 6 steps by `python train.py` (flags only)."""
    output = tmp_path_factory.mktemp("bert-adapter") / "adapter"
    run_train(quick_train_args(tiny_bert_dir, data_dir, output))
    return output


@pytest.fixture(scope="session")
def gpt2_config_file(tmp_path_factory, tiny_gpt2_dir, data_dir) -> Path:
    """A JSON config for the tiny GPT-2; the test run overrides max_steps and output_dir by flag."""
    directory = tmp_path_factory.mktemp("gpt2-config")
    args = quick_train_args(tiny_gpt2_dir, data_dir, directory / "from-config", steps=50)
    config = {}
    for flag, value in zip(args[::2], args[1::2]):
        config[flag.lstrip("-")] = _json_value(value)
    config["lora_r"] = 2
    path = directory / "tiny-gpt2.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def _json_value(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value, value)


@pytest.fixture(scope="session")
def trained_gpt2_adapter(tmp_path_factory, gpt2_config_file) -> Path:
    """A tiny GPT-2 adapter trained by `python train.py config.json --max_steps 4 --output_dir ...`."""
    output = tmp_path_factory.mktemp("gpt2-adapter") / "adapter"
    run_train([str(gpt2_config_file), "--max_steps", "4", "--output_dir", str(output)])
    return output


@pytest.fixture(scope="session")
def neutral_data_dir(tmp_path_factory) -> Path:
    """The six-label files plus plain sentences labelled `neutral` in every split."""
    return write_split_files(tmp_path_factory.mktemp("neutral-data"), NEUTRAL_SPLIT_ROWS, SEVEN_LABELS)


@pytest.fixture(scope="session")
def seven_label_adapter(tmp_path_factory, tiny_bert_dir, neutral_data_dir) -> Path:
    """A tiny BERT adapter with seven labels (the six + neutral), trained by `python train.py`."""
    output = tmp_path_factory.mktemp("seven-adapter") / "adapter"
    run_train(quick_train_args(tiny_bert_dir, neutral_data_dir, output, steps=12))
    return output


@pytest.fixture(scope="session")
def trained_adapter(trained_bert_adapter) -> Path:
    """Any trained tiny adapter (BERT: the fastest); for tests of code that only needs one."""
    return trained_bert_adapter
