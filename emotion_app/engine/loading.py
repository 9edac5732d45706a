"""Loading the engine's model: device, precision and runtime resolved, a cached ONNX model when
there is one (no torch model needed), else base + adapter merged, then exported to ONNX Runtime
or quantized in torch. `load_model` is what EmotionClassifier.from_adapter builds on."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emotion_app.constants import RUNTIMES
from emotion_app.engine.int8 import int8_layer_names, quantize_int8
from emotion_app.engine.onnx import OnnxModel
from emotion_app.engine.threads import set_num_threads, thread_count

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from emotion_app.engine.adapters import AdapterSource

logger = logging.getLogger(__name__)


# Without any of these a Linux machine has no GPU for torch, which then need not be imported to
# ask; where one exists, torch is asked.
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


@dataclass
class LoadedModel:
    """What `load_model` returns: the model to run (an OnnxModel or a torch model), the adapter
    it came from, and what was chosen (`info`: adapter, base_model, directory, runtime, precision,
    device, num_threads, labels)."""

    model: OnnxModel | PreTrainedModel
    source: AdapterSource
    info: dict


def load_model(adapter: str, base_model: str | None = None, token: str | None = None, *,
               quantize: str | bool = "auto", runtime: str = "auto", num_threads: int | None = None,
               device: str | None = None) -> LoadedModel:
    """Base + adapter (a directory or a Hub repo id), merged, on the device, precision and runtime
    the options resolve to (see EmotionClassifier.from_adapter); the options are checked before
    anything is read."""
    from emotion_app.engine.adapters import read_adapter

    target = _resolve_device(device)
    use_int8 = _resolve_quantize(quantize, target)
    use_onnx = _resolve_runtime(runtime, target)
    threads = thread_count(num_threads)
    source = read_adapter(adapter, base_model=base_model, token=token)
    model, precision = _load_model(adapter, source, target, use_int8, use_onnx, runtime == "auto", threads)
    info = {"adapter": adapter, "base_model": source.base_model, "directory": str(source.directory),
            "runtime": "onnxruntime" if isinstance(model, OnnxModel) else "torch",
            "precision": precision, "device": target, "num_threads": threads, "labels": list(source.labels)}
    return LoadedModel(model, source, info)


def prepare_onnx(adapter: str, base_model: str | None = None, token: str | None = None, *,
                 quantize: str | bool = "auto", runtime: str = "auto") -> bool:
    """Put the ONNX model that `from_adapter` with the same arguments runs into the cache, and
    nothing else (`python app.py --prepare`, and the app's background build on a first start).
    False when that engine is not an ONNX one (a GPU, runtime "torch", no onnxruntime, a
    failed export with runtime "auto"): then there is nothing to cache."""
    if not _resolve_runtime(runtime, _resolve_device(None)):
        return False
    loaded = load_model(adapter, base_model, token, quantize=quantize, runtime=runtime)
    return isinstance(loaded.model, OnnxModel)


def _load_model(adapter: str, source: AdapterSource, device: str, int8: bool, use_onnx: bool, fallback: bool,
                threads: int) -> tuple:
    """(model, precision): a cached ONNX model when there is one (no torch model needed), else base +
    adapter merged, then exported to ONNX Runtime (`use_onnx`) or quantized in torch (`int8`)."""
    from emotion_app.engine import onnx  # the module; the switch is use_onnx
    from emotion_app.engine.adapters import load_adapter

    key = onnx.source_key(source.directory, source.base_model, int8) if use_onnx else None
    # One process builds a given ONNX model at a time; the others wait and read it from the cache.
    with onnx.build_lock(key) if key else contextlib.nullcontext():
        model = onnx.load_cached(key, threads) if key else None
        if model is None:
            model = load_adapter(adapter, source=source).model.to(device)
            int8_layers = int8_layer_names(model) if int8 else []
            if use_onnx:
                model = _onnx_or_torch(model, int8_layers, threads, key, fallback)
            if not isinstance(model, OnnxModel):
                set_num_threads(threads)
                return model, "int8" if int8_layers and quantize_int8(model, int8_layers) else "float32"
    return model, "int8" if model.int8_layers else "float32"


def _onnx_or_torch(model: PreTrainedModel, int8_layers: list[str], threads: int, key: str | None, fallback: bool):
    """The model in ONNX Runtime; with `fallback` (runtime "auto"), the torch model when that fails."""
    from emotion_app.engine.onnx import onnx_model

    try:
        return onnx_model(model, int8_layers, threads, key)
    except (RuntimeError, OSError) as err:
        if not fallback:
            raise
        logger.warning("ONNX Runtime could not take %s (%s); using torch instead", type(model).__name__, err)
        return model


def _resolve_quantize(quantize: str | bool, device: str) -> bool:
    """True when the int8 path should be used: "auto" means int8 on CPU, nothing elsewhere."""
    if not (isinstance(quantize, bool) or quantize == "auto"):
        raise ValueError(f'quantize must be "auto", True or False; found {quantize!r}.')
    on_cpu = _device_type(device) == "cpu"
    if quantize is True and not on_cpu:
        raise ValueError(f"int8 dynamic quantization runs on CPU only, but device is {device}. "
                         'Pass quantize="auto" or False on a GPU.')
    return quantize is True or (quantize == "auto" and on_cpu)


def _resolve_runtime(runtime: str, device: str) -> bool:
    """True when the model should run in ONNX Runtime: "auto" means on CPU, when installed."""
    from emotion_app.engine import onnx

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(map(repr, RUNTIMES))}; found {runtime!r}.")
    on_cpu, installed = _device_type(device) == "cpu", onnx.available()
    if runtime == "onnxruntime" and not on_cpu:
        raise ValueError(f'runtime "onnxruntime" runs on CPU here, but device is {device}. '
                         'Pass runtime="auto" or "torch" on a GPU.')
    if runtime == "onnxruntime" and not installed:
        raise ImportError(f'runtime "onnxruntime" needs onnxruntime and onnx: {onnx.INSTALL_HINT}.')
    if runtime == "auto" and on_cpu and not installed:
        logger.warning("onnxruntime is not installed, so the engine runs in torch (slower on CPU): %s",
                       onnx.INSTALL_HINT)
    return runtime == "onnxruntime" or (runtime == "auto" and on_cpu and installed)


def _resolve_device(device) -> str:
    """The device as torch spells it ("cpu", "cuda", "cuda:1"). None: the first GPU when torch
    sees one, else the CPU."""
    if device is None:
        return "cuda" if _torch_sees_a_gpu() else "cpu"
    import torch

    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err}): expected e.g. \"cpu\" or "
                         "\"cuda\", or None to pick one.") from None


def _torch_sees_a_gpu() -> bool:
    """torch.cuda.is_available(), without importing torch on a Linux machine with no GPU driver."""
    if sys.platform == "linux" and "torch" not in sys.modules and not any(map(os.path.exists, GPU_DRIVER_FILES)):
        return False
    import torch

    return torch.cuda.is_available()


def _device_type(device: str) -> str:
    return device.partition(":")[0]
