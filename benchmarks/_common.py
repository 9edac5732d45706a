"""What the benchmarks (and the scripts in experiments/) share: the repository on the import path,
where the data and the embedded adapter are, and one logging set-up.

Each script imports it first: running a script (`python benchmarks/<name>.py`) puts this folder on
the import path, and importing this module puts the repository there too, so that a checkout runs every benchmark
from its root without installing the package.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from emotion_app.constants import DEFAULT_ADAPTER  # after the path above
from emotion_app.data.labelled import RawRows, read_raw_rows, texts_labelled
from emotion_app.labels import NEUTRAL, parse_label

EMBEDDED_ADAPTER = REPO / DEFAULT_ADAPTER
DOCS = REPO / "docs"
# Local copies of the data sets, beside the repository (the machine has no Hub access).
DATA = REPO.parent / "shared" / "data"
EMOTION_DATA = DATA / "emotion"  # dair-ai/emotion: train/validation/test.txt
GOEMOTIONS6 = DATA / "goemotions-6"  # GoEmotions comments with exactly one of the six emotions
GOEMOTIONS6_DEV = GOEMOTIONS6 / "dev.csv"  # real text, never trained on
ISEAR = DATA / "isear" / "isear.csv"  # situations people felt an emotion in; never trained on
GOEMOTIONS_DEV = DATA / "goemotions" / "dev.csv"  # all 28 labels, multi-label
GOEMOTIONS_TRAIN = DATA / "goemotions" / "train.csv"  # the default model's training data, as dev

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def rows_of_labels(path: str | Path, labels) -> tuple[RawRows, dict[str, int]]:
    """A labelled file's rows whose label is one of `labels` (names in any case, or ids), in file
    order, and how many rows of each other label were set aside: ISEAR, whose anger, fear, joy and
    sadness rows are ours, read against a model's labels."""
    raw = read_raw_rows(path)
    keep, aside = [], {}
    for i, cell in enumerate(raw.cells):
        try:
            parse_label(cell, labels)
        except ValueError:
            key = str(cell).strip().lower()
            aside[key] = aside.get(key, 0) + 1
            continue
        keep.append(i)
    return raw.select(keep), dict(sorted(aside.items()))


def neutral_only(path: str | Path) -> list[str]:
    """The texts of a GoEmotions file (text, labels) rated `neutral` and nothing else: plain text."""
    return texts_labelled(read_raw_rows(path), NEUTRAL)


def setup_logging(level: int = logging.INFO) -> None:
    """The benchmarks' progress goes to stderr through logging; their results go to stdout."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
