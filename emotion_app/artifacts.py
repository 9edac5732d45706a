"""The files an adapter directory holds besides the weights, each named and read in one place:
labels.json, metrics.json, calibration.json, the shift detector (shift_detector.safetensors + .json); plus the
atomic writes and the cached file hash they share."""

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
LABELS_FILE = "labels.json"  # {"labels": [...]}: the head's outputs in order; none means the six emotions
CALIBRATION_FILE = "calibration.json"  # {"temperature": T}: divides the logits in every engine
# The out-of-distribution detector (engine/ood.py applies it, analysis/shift.py fits it): its arrays
# (class means and precisions, float32) and its scalars (thresholds, the P(correct) model, metadata).
SHIFT_ARRAYS_FILE = "shift_detector.safetensors"
SHIFT_SCALARS_FILE = "shift_detector.json"
SHIFT_FILES = (SHIFT_ARRAYS_FILE, SHIFT_SCALARS_FILE)
SHIFT_FORMAT_VERSION = 1
SHIFT_ARRAYS = ("means", "precision", "background_mean", "background_precision")


def read_metrics(directory: str | Path) -> dict | None:
    """The adapter's metrics.json as a dict; None when the directory has none. ValueError, saying
    what is wrong with it, when it exists but is not a JSON object."""
    return _read_object(Path(directory) / METRICS_FILE, "the JSON that training writes",
                        "Train, calibrate or download the adapter again.")


def _read_object(path: Path, expected: str, fix: str) -> dict | None:
    """A JSON object file; None when absent, ValueError saying what is wrong when not an object."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} could not be read ({err}): expected {expected}. {fix}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds {str(record)[:80]!r}: expected {expected}. {fix}")
    return record


def read_labels(directory: str | Path) -> tuple[str, ...]:
    """The adapter's labels from labels.json, checked; the seed's six emotions when it has none
    (every adapter made before labels were recorded is a six-emotion one)."""
    from emotion_app.labels import EMOTIONS, check_labels

    path = Path(directory) / LABELS_FILE
    expected, fix = '{"labels": [names...]} as train.py writes it', "Train or download the adapter again."
    record = _read_object(path, expected, fix)
    if record is None:
        return EMOTIONS
    if not isinstance(record.get("labels"), list):
        raise ValueError(f"{path} holds {str(record)[:80]!r}: expected {expected}. {fix}")
    return check_labels(record["labels"], str(path))


def write_labels(directory: str | Path, labels) -> Path:
    """Write <directory>/labels.json (atomically); returns its path."""
    from emotion_app.labels import check_labels

    return write_json(Path(directory) / LABELS_FILE, {"labels": list(check_labels(labels, "the label list"))})


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


def read_shift_detector(directory: str | Path) -> tuple[dict, dict] | None:
    """(arrays, scalars) of the adapter's shift detector; None when it has none (older adapters).
    ValueError, saying what is wrong and how to fix it, for a broken or half-written pair."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    present = [name for name in SHIFT_FILES if (directory / name).is_file()]
    if not present:
        return None
    fix = "Fit it again: python -m emotion_app calibrate --adapter DIR --data_dir DATA."
    if len(present) < len(SHIFT_FILES):
        raise ValueError(f"{directory} has {present[0]} but not {set(SHIFT_FILES).difference(present).pop()}: "
                         f"expected both files of the shift detector. {fix}")
    scalars_path, arrays_path = directory / SHIFT_SCALARS_FILE, directory / SHIFT_ARRAYS_FILE
    try:
        scalars = json.loads(scalars_path.read_text(encoding="utf-8"))
        arrays = load_file(str(arrays_path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as err:
        raise ValueError(f"the shift detector in {directory} could not be read ({err}). {fix}") from None
    if not isinstance(scalars, dict) or scalars.pop("format_version", None) != SHIFT_FORMAT_VERSION:
        raise ValueError(f"{scalars_path} is not a shift detector of format {SHIFT_FORMAT_VERSION} "
                         f"(found {type(scalars).__name__} without that format_version). {fix}")
    if scalars.pop("arrays_sha256", None) != file_sha256(arrays_path):
        raise ValueError(f"{arrays_path} does not belong to {scalars_path} (its sha256 differs from the one "
                         f"recorded there; a fit was interrupted or one file was replaced). {fix}")
    missing = [name for name in SHIFT_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{arrays_path} lacks the arrays {missing}: expected {list(SHIFT_ARRAYS)}. {fix}")
    return arrays, scalars


def write_shift_detector(directory: str | Path, arrays: dict, scalars: dict) -> list[Path]:
    """Write the detector's two files atomically: the arrays first, then the scalars, which record
    the arrays' sha256, so a reader never takes one fit's arrays with another's scalars."""
    import numpy as np
    from safetensors.numpy import save_file

    directory = Path(directory)
    missing = [name for name in SHIFT_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"the shift detector lacks the arrays {missing}: expected {list(SHIFT_ARRAYS)}.")
    arrays_path = directory / SHIFT_ARRAYS_FILE
    tmp = arrays_path.with_name(f".{arrays_path.name}.tmp")
    save_file({name: np.ascontiguousarray(arrays[name], dtype=np.float32) for name in SHIFT_ARRAYS}, str(tmp))
    os.chmod(tmp, 0o644)  # like the adapter's other files, for every reader
    os.replace(tmp, arrays_path)
    record = {**scalars, "format_version": SHIFT_FORMAT_VERSION, "arrays_sha256": file_sha256(arrays_path)}
    return [arrays_path, write_json(directory / SHIFT_SCALARS_FILE, record)]


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
    tmp = temporary_name(Path(path), ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) `folder` (or its nearest existing ancestor) takes; 255 if unknown."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def temporary_name(target: Path, suffix: str, reserve: int = 0) -> Path:
    """A hidden temporary beside `target`: .<name><suffix>, its name shortened (with a hash of the
    full one, so that different targets keep different names) when the whole, plus `reserve` bytes
    (e.g. mkstemp's random part), would pass the folder's NAME_MAX: a long legal name still works."""
    limit = name_max(target.parent) - reserve
    name = os.fsencode(target.name)
    if len(name) + len(os.fsencode(suffix)) + 1 <= limit:
        return target.with_name(f".{target.name}{suffix}")
    tail = f"~{hashlib.sha256(name).hexdigest()[:8]}{suffix}"
    room = max(limit - 1 - len(os.fsencode(tail)), 0)
    return target.with_name(f".{name[:room].decode('utf-8', errors='ignore')}{tail}")
