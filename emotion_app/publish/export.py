"""Exports of an adapter for tools that do not know PEFT: the merged model (safetensors + config
with the adapter's labels + tokenizer + card) and the engine's ONNX model in the layout Optimum and
transformers.js expect; `hub_folder` is what a push uploads (merged at the root, adapter in
adapter/). The command is `python -m emotion_app export` (emotion_app/cli/export.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from emotion_app.artifacts import (
    ADAPTER_FILES,
    ADAPTER_SUBFOLDER,
    CALIBRATION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    read_labels,
)
from emotion_app.engine.adapters import load_adapter, read_adapter, resolve_base
from emotion_app.publish.card import export_card, model_card, write_text

logger = logging.getLogger(__name__)

ONNX_SUBFOLDER = "onnx"
ONNX_INT8, ONNX_FP32 = "model_quantized.onnx", "model.onnx"  # Optimum's / transformers.js's names
STAGING = ".export-staging"
TOKENIZER_NAMES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
SIDE_FILES = (CALIBRATION_FILE, METRICS_FILE, LABELS_FILE)  # copied into exports when the adapter has them
# The adapter's files that go into a pushed repo's adapter/ folder (never checkpoints or staging).
ADAPTER_NAMES = (*ADAPTER_FILES, *TOKENIZER_NAMES, *SIDE_FILES, "README.md")


@dataclass
class Export:
    """One output folder and what goes into it."""
    directory: Path
    merged: bool = False
    onnx: bool = False
    with_adapter: bool = False


def export(adapter: str, merged: str | Path | None = None, onnx: str | Path | None = None, *,
           base_model: str | None = None, token: str | None = None, repo_id: str | None = None,
           with_adapter: bool = False) -> list[Path]:
    """Write the merged and/or ONNX export of `adapter` (a directory or a Hub id); returns the
    folders written. `repo_id` is named in the cards' examples; `with_adapter` also copies the
    adapter into `adapter/` of the merged folder (the layout push_adapter uploads)."""
    if merged is None and onnx is None:
        raise ValueError("nothing to export: expected --merged OUT and/or --onnx OUT, found neither. "
                         "Name an output folder.")
    exports: dict[Path, Export] = {}
    for path, kind in ((merged, "merged"), (onnx, "onnx")):
        if path is not None:
            folder = Path(path)
            _check_output(folder, f"--{kind}")
            setattr(exports.setdefault(folder.resolve(), Export(folder)), kind, True)
    source = read_adapter(adapter, base_model=base_model, token=token)
    if any(folder == source.directory.resolve() for folder in exports):
        raise ValueError(f"the export folder is the adapter's own folder {source.directory}: expected another "
                         "folder (the export would sit beside the adapter, which transformers then misreads). "
                         "Name a new folder.")
    for item in exports.values():
        item.with_adapter = with_adapter and item.merged
    loaded = load_adapter(adapter, source=source)  # merged, fp32, on the CPU
    metrics = _metrics(source.directory, source.base_model)
    for item in exports.values():
        _write(item, adapter, source, loaded, metrics, repo_id)
    return [item.directory for item in exports.values()]


def hub_folder(adapter_dir: str | Path, work: str | Path, repo_id: str, base_model: str | None = None) -> Path:
    """The folder push_adapter uploads for the adapter in `adapter_dir`: its merged model at the
    root (transformers' one-liner) and the adapter in `adapter/` (peft and this project)."""
    folder = Path(work) / "repo"
    export(str(adapter_dir), merged=folder, base_model=base_model, repo_id=repo_id, with_adapter=True)
    return folder


def _check_output(folder: Path, flag: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} is a file: expected a folder to write the export into. "
                         "Name a folder.")
    if (folder / ADAPTER_FILES[0]).is_file():
        raise ValueError(f"{flag} {folder} holds an adapter ({ADAPTER_FILES[0]}): expected an empty or export "
                         "folder, since transformers takes a folder holding both an adapter and a model for "
                         "a model to apply the adapter to. Name another folder.")


def _metrics(directory: Path, base_model: str) -> dict:
    """The adapter's metrics.json (for the card), or the little a card needs without one."""
    path = directory / "metrics.json"
    if path.is_file():
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            logger.warning("ignoring the unreadable %s (%s): the export's card has no results", path, err)
        else:
            if isinstance(metrics, dict):  # the labels are the adapter's own (labels.json), whatever it says
                return {**metrics, "labels": list(read_labels(directory)),
                        "base_model": metrics.get("base_model") or base_model}
    return {"name": directory.name, "labels": list(read_labels(directory)), "base_model": base_model}


def _write(item: Export, adapter: str, source, loaded, metrics: dict, repo_id: str | None) -> None:
    """Everything into a staging folder inside the output folder, then each file moved into place
    (README.md last): a failed export leaves the folder's old files, never half-written ones."""
    from emotion_app.artifacts import read_temperature
    from emotion_app.engine import onnx as onnx_runtime
    from emotion_app.engine.int8 import int8_layer_names

    model = loaded.model
    staging = item.directory / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.config.architectures = [type(model).__name__]  # the base's may name its bare model (BertModel)
        if item.merged:
            model.save_pretrained(str(staging))  # config.json (with the label maps) + model.safetensors
            for stray in staging.glob("*.bin"):
                stray.unlink()
        else:
            model.config.save_pretrained(str(staging))
        onnx_file = None
        if item.onnx:
            layers = int8_layer_names(model)
            onnx_file = f"{ONNX_SUBFOLDER}/{ONNX_INT8 if layers else ONNX_FP32}"
            # The engine's own cache key, so that an export reuses the app's cached model and vice versa.
            key = onnx_runtime.source_key(source.directory, source.base_model, True)
            onnx_runtime.save_onnx(model, layers, staging / onnx_file, key)
        _write_tokenizer(staging, source, loaded.tokenizer)
        for name in SIDE_FILES:
            if (source.directory / name).is_file():
                shutil.copyfile(source.directory / name, staging / name)
        if item.with_adapter:
            _copy_adapter(source.directory, staging / ADAPTER_SUBFOLDER, metrics, repo_id)
        calibrated = (source.directory / "calibration.json").is_file()
        card = export_card(metrics, adapter=adapter, architecture=type(model).__name__,
                           merged=item.merged, onnx_file=onnx_file,
                           temperature=read_temperature(source.directory) if calibrated else None,
                           repo_id=repo_id, with_adapter=item.with_adapter)
        write_text(staging / "README.md", card)
        _publish(staging, item.directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Exported %s%s%s to %s", adapter, " merged" if item.merged else "", " as ONNX" if item.onnx else "",
                item.directory)


def _write_tokenizer(staging: Path, source, tokenizer) -> None:
    """The adapter's tokenizer files as saved (or the base's), else the loaded tokenizer saved."""
    folder = Path(resolve_base(source.tokenizer_source))
    names = [name for name in TOKENIZER_NAMES if (folder / name).is_file()] if folder.is_dir() else []
    if "tokenizer_config.json" in names:
        for name in names:
            shutil.copyfile(folder / name, staging / name)
    else:
        tokenizer.save_pretrained(str(staging))


def _copy_adapter(directory: Path, target: Path, metrics: dict, repo_id: str | None) -> None:
    target.mkdir(parents=True)
    for name in ADAPTER_NAMES:
        if (directory / name).is_file():
            shutil.copyfile(directory / name, target / name)
    if (directory / "metrics.json").is_file():  # its card, now naming the repo it is in
        write_text(target / "README.md", model_card(metrics, repo_id=repo_id))


def _publish(staging: Path, directory: Path) -> None:
    files = sorted(path for path in staging.rglob("*") if path.is_file())
    files.sort(key=lambda path: path.name == "README.md")  # the card last: it describes the rest
    mode = 0o666 & ~_umask()  # temporary files are created 0600; exports are for sharing
    for path in files:
        target = directory / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(path, mode)
        os.replace(path, target)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
