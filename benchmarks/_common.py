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

EMBEDDED_ADAPTER = REPO / DEFAULT_ADAPTER
DOCS = REPO / "docs"
# Local copies of the data sets, beside the repository (the machine has no Hub access).
DATA = REPO.parent / "shared" / "data"
EMOTION_DATA = DATA / "emotion"  # dair-ai/emotion: train/validation/test.txt
GOEMOTIONS6 = DATA / "goemotions-6"  # GoEmotions comments with exactly one of the six emotions
GOEMOTIONS6_DEV = GOEMOTIONS6 / "dev.csv"  # real text, never trained on
ISEAR = DATA / "isear" / "isear.csv"  # situations people felt an emotion in; never trained on

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """The benchmarks' progress goes to stderr through logging; their results go to stdout."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
