"""The files an adapter directory holds besides the weights, each named and read in one place:
metrics.json, calibration.json; plus the atomic JSON write and the cached file hash they share."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)


# The adapter directory's files beside the PEFT ones (adapter_config.json, adapter_model.safetensors).
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
ADAPTER_SUBFOLDER = "adapter"  # in a repo pushed by this project: the merged model at the root, the adapter here
METRICS_FILE = "metrics.json"  # figures, label order, calibration and lineage (training, adaptation)
CALIBRATION_FILE = "calibration.json"  # {"temperature": T}: divides the logits in every engine


def read_metrics(directory: str | Path) -> dict | None:
    """The adapter's metrics.json as a dict; None when the directory has none. ValueError, saying
    what is wrong with it, when it exists but is not a JSON object."""
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} could not be read ({err}): expected the JSON that training writes. "
                         "Train, calibrate or download the adapter again.") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} holds {type(metrics).__name__}: expected a JSON object. "
                         "Train, calibrate or download the adapter again.")
    return metrics



def read_temperature(directory: Path) -> float:
    """The temperature fitted on validation and stored as calibration.json; 1.0 if none."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        temperature = float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid calibration file ({err}): expected "
                         '{"temperature": <positive number>}. Refit it or delete the file.') from None
    if not temperature > 0:
        raise ValueError(f"{path} holds temperature {temperature}: expected a positive number. Refit it.")
    return temperature


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for each (path, size, modification time)."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_calibration(adapter_dir: str | Path, temperature: float) -> Path:
    """Write <adapter_dir>/calibration.json {"temperature": T} (atomically); returns its path."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, found {temperature!r}.")
    return write_json(Path(adapter_dir) / CALIBRATION_FILE, {"temperature": float(temperature)})


def write_json(path: Path, data) -> Path:
    """Write to a temporary file, then rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
