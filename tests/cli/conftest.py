"""Fixtures of the command tests: a folder that takes no new file, a table, a labelled file, a copy of the
tiny adapter, a folder that is no adapter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_support import make_read_only

from emotion_app.labels import EMOTIONS


@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    undo = make_read_only(folder)
    yield folder
    undo()


@pytest.fixture
def table(tmp_path) -> Path:
    """A two-row table of texts to score."""
    path = tmp_path / "in.csv"
    path.write_text("text\ni feel so happy today\ni am scared\n", encoding="utf-8")
    return path


@pytest.fixture
def labelled_file(tmp_path, split_rows) -> Path:
    path = tmp_path / "lab.csv"
    rows = [f"{text},{EMOTIONS[label]}" for text, label in split_rows["validation"]]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def adapter_copy(tmp_path, trained_adapter) -> Path:
    """A copy of the tiny adapter that a test may try to write into."""
    return Path(shutil.copytree(trained_adapter, tmp_path / "adapter-copy"))


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    folder = tmp_path / "not-an-adapter"
    folder.mkdir()
    return folder
