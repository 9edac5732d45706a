"""The inference engine: texts -> probabilities [N, 6], used by the app, the CLIs and evaluation.

What makes it fast on a small CPU (measured in docs/performance.md):
- the LoRA adapter is merged into the base at load, so a forward pass is the plain base model;
- texts are tokenized once, in one call, then sorted by length and cut into batches, so each batch
  pads only to its own longest text; the original order is restored at the end;
- batches are padded with numpy instead of `tokenizer.pad` (less Python work per batch);
- on CPU the merged model runs in ONNX Runtime (`onnx_runtime.py`: exported once, cached on disk)
  with most of its linear layers in int8 (see `_keep_fp32` for the ones that stay fp32), unless
  turned off: `from_adapter(..., quantize=False)` for fp32, `runtime="torch"` for plain torch
  (whose int8 is torch's dynamic quantization of the same layers);
- `from_adapter` sets the thread count to the cores this process may use (see `set_num_threads`);
- loading from the ONNX cache needs neither torch nor transformers: the tokenizer is the Rust one
  (`tokenizer.py`), torch is imported only where a torch model is used. The app starts in about
  4 s with 370 MB instead of 5.5 s with 570 MB.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .labels import LABELS, NUM_LABELS
from .onnx_runtime import OnnxModel
from .options import RUNTIMES

if TYPE_CHECKING:  # importing these loads transformers' model code (seconds): see modeling.py
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Without any of these a Linux machine has no GPU for torch, which then need not be imported to
# ask; where one exists, torch is asked.
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
MAX_POSITIONS = 512  # the most tokens per text, whatever the tokenizer or the model allows
# torch warns that torch.ao.quantization is deprecated (in favour of torchao, not installed here);
# dynamic quantization still works in this torch, and the warning would reach every user.
_QUANTIZATION_WARNINGS = re.compile(r"torch\.ao\.quantization is deprecated|torch\.quantize_per_tensor")


class EmotionClassifier:
    """A sequence-classification model + tokenizer with six outputs in `labels.LABELS` order.

    `model` is used as given: a transformers model (merged or not, quantized or not) or an
    `onnx_runtime.OnnxModel`; `from_adapter` builds the fast one. `temperature` divides the logits
    before the softmax (calibration.json, see `read_temperature`).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 max_length: int | None = None, batch_size: int = 32, temperature: float = 1.0,
                 info: dict | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, found {batch_size!r}.")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ValueError(f"max_length must be a whole number of at least 2 tokens, found {max_length!r}. "
                             "Leave it unset to use the tokenizer's limit.")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, found {temperature}.")
        self.model = model if isinstance(model, OnnxModel) else model.eval()
        self.tokenizer = tokenizer
        self.max_length = min(max_length or tokenizer.model_max_length, _position_limit(model))
        self.batch_size = batch_size
        self.temperature = temperature
        self.info = info or {}
        self.labels = LABELS
        self.pad_id = _pad_id(tokenizer)

    @classmethod
    def from_adapter(cls, adapter: str, base_model: str | None = None, token: str | None = None,
                     batch_size: int = 32, *, quantize: str | bool = "auto", runtime: str = "auto",
                     num_threads: int | None = None, device: str | None = None) -> EmotionClassifier:
        """Load base + adapter (a directory or a Hub repo id), merged, ready for fast inference.

        quantize: "auto" (int8 on CPU, unchanged on a GPU), True (int8; CPU only) or False (fp32).
        runtime: "auto" (ONNX Runtime on CPU when installed, else torch), "onnxruntime" or "torch".
        num_threads: intra-op threads; None = the cores this process may use. For a torch model
            this changes a process-wide torch setting (see `set_num_threads`).
        device: "cpu", "cuda", ...; None = the GPU when torch sees one, else the CPU.
        """
        from .modeling import load_engine_tokenizer, read_adapter

        target = _resolve_device(device)
        use_int8 = _resolve_quantize(quantize, target)
        use_onnx = _resolve_runtime(runtime, target)
        threads = _thread_count(num_threads)
        source = read_adapter(adapter, base_model=base_model, token=token)
        model, precision = _load_model(adapter, source, target, use_int8, use_onnx, runtime == "auto", threads)
        info = {"adapter": adapter, "base_model": source.base_model, "directory": str(source.directory),
                "runtime": "onnxruntime" if isinstance(model, OnnxModel) else "torch",
                "precision": precision, "device": target, "num_threads": threads}
        return cls(model, load_engine_tokenizer(source.tokenizer_source), batch_size=batch_size, info=info,
                   temperature=read_temperature(source.directory))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw (uncalibrated) logits [N, 6], in input order."""
        texts = _check_texts(texts)
        out = np.zeros((len(texts), NUM_LABELS), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), kind="stable")
        for start in range(0, len(texts), self.batch_size):
            index = order[start:start + self.batch_size]
            out[index] = self._forward(*self._pad([ids[i] for i in index]))
        return out

    def set_num_threads(self, num_threads: int) -> None:
        """Threads for this engine's forward passes (for torch a process-wide setting)."""
        if isinstance(self.model, OnnxModel):
            self.model.set_num_threads(num_threads)
        else:
            set_num_threads(num_threads)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if isinstance(self.model, OnnxModel):  # ONNX Runtime takes numpy directly
            return self.model(input_ids, mask)
        import torch

        device = self.model.device
        with torch.inference_mode():
            result = self.model(input_ids=torch.from_numpy(input_ids).to(device),
                                attention_mask=torch.from_numpy(mask).to(device))
        return result.logits.float().cpu().numpy()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities [N, 6] (rows sum to 1), columns in `labels.LABELS` order."""
        return softmax(self.logits(texts) / self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def _pad(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) for one batch, padded to its longest sequence on the
        tokenizer's padding side. A text that tokenizes to nothing (GPT-2 and "") gets one pad
        token, so it still gets a prediction instead of breaking the batch."""
        width = max(1, max(map(len, sequences)))
        input_ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for row, seq in enumerate(sequences):
            size = max(len(seq), 1)
            where = slice(width - size, width) if left else slice(0, size)
            if seq:
                input_ids[row, where] = seq
            mask[row, where] = 1
        return input_ids, mask


def prepare_onnx(adapter: str, base_model: str | None = None, token: str | None = None, *,
                 quantize: str | bool = "auto", runtime: str = "auto") -> bool:
    """Put the ONNX model that `from_adapter` with the same arguments runs into the cache, and
    nothing else (`python app.py --prepare`, and the app's background build on a first start).
    False when that engine is not an ONNX one (a GPU, runtime "torch", no onnxruntime, a
    failed export with runtime "auto"): then there is nothing to cache."""
    from .modeling import read_adapter

    target = _resolve_device(None)
    if not _resolve_runtime(runtime, target):
        return False
    source = read_adapter(adapter, base_model=base_model, token=token)
    model, _precision = _load_model(adapter, source, target, _resolve_quantize(quantize, target), True,
                                    runtime == "auto", _thread_count(None))
    return isinstance(model, OnnxModel)


def set_num_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count (a process-wide setting) and return it.

    None picks `default_num_threads()`. More threads than cores only adds contention; on a
    shared machine or under Ray (one worker per core) pass 1.
    """
    import torch

    num_threads = _thread_count(num_threads)
    if torch.get_num_threads() != num_threads:
        logger.info("torch threads: %d -> %d", torch.get_num_threads(), num_threads)
        torch.set_num_threads(num_threads)
    return num_threads


def _thread_count(num_threads: int | None) -> int:
    if num_threads is None:
        return default_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a whole number of at least 1, found {num_threads!r}. "
                         "Leave it unset to use every core this process may run on.")
    return num_threads


def default_num_threads() -> int:
    """OMP_NUM_THREADS when set (the user's explicit choice), else the cores this process may
    run on (its CPU affinity, which honours taskset/cgroup pinning, unlike os.cpu_count)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def int8_layer_names(model: PreTrainedModel) -> list[str]:
    """Full names of the linear layers that go int8: the backbone's nn.Linear layers except those
    `_keep_fp32` keeps. The classification head stays fp32: it is tiny, so int8 would save nothing
    there and would only add rounding to the logits. GPT-2 uses Conv1D rather than nn.Linear, so it
    has none (and stays fp32)."""
    import torch

    prefix = model.base_model_prefix
    backbone = getattr(model, prefix, model)
    return [f"{prefix}.{name}" if backbone is not model else name
            for name, module in backbone.named_modules()
            if isinstance(module, torch.nn.Linear) and not _keep_fp32(name, model.config.num_hidden_layers)]


def quantize_int8(model: PreTrainedModel, layers: list[str] | None = None) -> list[str]:
    """Quantize `layers` (default `int8_layer_names(model)`) to int8 in place with torch dynamic
    quantization (int8 weights, activations quantized per batch); returns the quantized names."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    if model.device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on CPU only; the model is on {model.device}. "
                         "Pass quantize=False (or \"auto\") on a GPU.")
    layers = int8_layer_names(model) if layers is None else layers
    if not layers:
        logger.info("int8: %s has no nn.Linear layers to quantize; it stays fp32", type(model).__name__)
        return []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUANTIZATION_WARNINGS.pattern)
        quantize_dynamic(model, {name: default_dynamic_qconfig for name in layers}, dtype=torch.qint8, inplace=True)
    logger.info("int8: quantized %d linear layers of %s", len(layers), type(model).__name__)
    return layers


def _load_model(adapter: str, source, device: str, int8: bool, onnx: bool, fallback: bool,
                threads: int) -> tuple:
    """(model, precision): a cached ONNX model when there is one (no torch model needed), else base +
    adapter merged, then exported to ONNX Runtime (`onnx`) or quantized in torch (`int8`)."""
    from . import onnx_runtime
    from .modeling import load_adapter

    key = onnx_runtime.source_key(source.directory, source.base_model, int8) if onnx else None
    # One process builds a given ONNX model at a time; the others wait and read it from the cache.
    with onnx_runtime.build_lock(key) if key else contextlib.nullcontext():
        model = onnx_runtime.load_cached(key, threads) if key else None
        if model is None:
            model = load_adapter(adapter, source=source).model.to(device)
            int8_layers = int8_layer_names(model) if int8 else []
            if onnx:
                model = _onnx_or_torch(model, int8_layers, threads, key, fallback)
            if not isinstance(model, OnnxModel):
                set_num_threads(threads)
                return model, "int8" if int8_layers and quantize_int8(model, int8_layers) else "float32"
    return model, "int8" if model.int8_layers else "float32"


def _onnx_or_torch(model: PreTrainedModel, int8_layers: list[str], threads: int, key: str | None, fallback: bool):
    """The model in ONNX Runtime; with `fallback` (runtime "auto"), the torch model when that fails."""
    from .onnx_runtime import onnx_model

    try:
        return onnx_model(model, int8_layers, threads, key)
    except (RuntimeError, OSError) as err:
        if not fallback:
            raise
        logger.warning("ONNX Runtime could not take %s (%s); using torch instead", type(model).__name__, err)
        return model


def _keep_fp32(name: str, num_layers: int) -> bool:
    """Layers left in fp32 by int8: the pooler, and the feed-forward down-projections
    (BERT's `layer.N.output.dense`) of the first half of the layers, whose inputs are GELU
    outputs with large outliers that per-tensor int8 activations round badly. Chosen on the
    validation texts (docs/performance.md): on the embedded model every linear layer int8 lost
    0.35-0.9 points, this choice none. Changing it: bump onnx_runtime.FORMAT_VERSION."""
    if name.startswith("pooler"):
        return True
    match = re.search(r"layer\.(\d+)\.output\.dense$", name)
    return match is not None and int(match.group(1)) < num_layers // 2


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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


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
    from . import onnx_runtime

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(map(repr, RUNTIMES))}; found {runtime!r}.")
    on_cpu, installed = _device_type(device) == "cpu", onnx_runtime.available()
    if runtime == "onnxruntime" and not on_cpu:
        raise ValueError(f'runtime "onnxruntime" runs on CPU here, but device is {device}. '
                         'Pass runtime="auto" or "torch" on a GPU.')
    if runtime == "onnxruntime" and not installed:
        raise ImportError(f'runtime "onnxruntime" needs onnxruntime and onnx: {onnx_runtime.INSTALL_HINT}.')
    if runtime == "auto" and on_cpu and not installed:
        logger.warning("onnxruntime is not installed, so the engine runs in torch (slower on CPU): %s",
                       onnx_runtime.INSTALL_HINT)
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


def _position_limit(model: PreTrainedModel) -> int:
    """The most tokens the model can take (its position embeddings), capped at MAX_POSITIONS."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return min(limit or MAX_POSITIONS, MAX_POSITIONS)


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad nor an EOS token: expected "
                         "one of them to pad batches. Set tokenizer.pad_token before building the classifier.")
    return pad_id


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, found a single string. Wrap it: [text].")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {type(text).__name__} {text!r}: expected a string. "
                             "Convert the values to text first.")
    return texts
