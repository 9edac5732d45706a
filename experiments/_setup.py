"""The experiments run on the benchmarks' set-up (benchmarks/_common.py: the repository on the
import path, where the data and the embedded adapter are, logging). Running a script
(`python experiments/<name>.py`) puts this folder on the import path; importing this module adds benchmarks/ and re-exports that set-up.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from _common import (  # noqa: E402
    DATA,
    EMBEDDED_ADAPTER,
    EMOTION_DATA,
    GOEMOTIONS6_DEV,
    REPO,
    setup_logging,
)

RESULTS = Path(__file__).resolve().parent / "results"  # what the experiments measured, as JSON

__all__ = ["DATA", "EMBEDDED_ADAPTER", "EMOTION_DATA", "GOEMOTIONS6_DEV", "REPO", "RESULTS", "setup_logging"]
