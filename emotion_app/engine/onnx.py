"""ONNX Runtime for the inference engine: the merged model exported once, its linear layers
quantized to int8 by onnxruntime's dynamic quantization, the result cached on disk.

Why: on the 2-core benchmark machine ONNX Runtime ran the embedded model at about 1.3x torch's
speed in int8 and answered one text 3x faster, at the same accuracy (docs/performance.md).

The export (torch's TorchScript-based exporter: about 1-3 s for MiniLM, names every node after its
module) and the quantization happen on the first load of a model; later loads find the file in
the cache, and with a local base (the bundled MiniLM or a folder) they need neither torch nor
transformers nor peft (`source_key`: a sha256 of the adapter's and the base's files), which saves
seconds of start-up. With a Hub base the key is a sha256 of the merged weights (`weights_key`). Both keys
include the precision, FORMAT_VERSION and the library versions, so a changed adapter, base or
library never reuses a stale file. Each model is `<key>.onnx` plus `<key>.json` (its config and
int8 layers); `<key>.lock` lets one process build it while others wait (`build_lock`). Cache
folder: $EMOTION_APP_CACHE, else $XDG_CACHE_HOME/emotion_app (default ~/.cache/emotion_app).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from emotion_app.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS, file_sha256
from emotion_app.engine.adapters import resolve_base
from emotion_app.engine.features import feature_token

try:
    import fcntl
except ImportError:  # Windows: no build lock; two processes may then build the same model
    fcntl = None

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install onnxruntime onnx (see requirements.txt)"
FORMAT_VERSION = "2"  # bump when the export, the quantization or int8._keep_fp32 changes (2: features output)
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("logits", "features")  # features: what the head reads (engine/features.py), for the OOD score


def available() -> bool:
    """True when onnxruntime and onnx (which its quantizer needs) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def cache_dir() -> Path:
    """The ONNX models' cache: the app's storage root (see emotion_app.storage)."""
    from emotion_app.storage import cache_root

    return cache_root()


class OnnxModel:
    """An ONNX Runtime session on CPU: `model(input_ids, attention_mask)` -> logits [N, C] (numpy);
    `model.run(input_ids, attention_mask, features=True)` -> (logits, features [N, D]) from the
    same run (the graph's second output).

    `config` holds the exported model's config values (for its position limit); `int8_layers`
    names the layers that run in int8 (empty: fp32); `feature_token` which token the features
    output holds. Pickles (for Ray) as the ONNX file's bytes.
    """

    def __init__(self, path: Path, config, int8_layers: Collection[str], num_threads: int,
                 feature_token: str | None = None):
        self.path = Path(path)
        self.feature_token = feature_token  # which token the features output reads (engine/features.py)
        self.config = config
        self.int8_layers = tuple(int8_layers)
        self.num_threads = num_threads
        self._bytes: bytes | None = None  # set when unpickled: the file may be on another machine
        self._session = None
        self._opening = threading.Lock()  # batches may run side by side: open one session, not two

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.run(input_ids, attention_mask)[0]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: bool = False) -> tuple:
        """(logits, features or None) from one session run; threads may call this at once (one
        session serves concurrent runs)."""
        if self._session is None:
            with self._opening:
                if self._session is None:
                    self._session = self._open()
        wanted = list(OUTPUTS) if features else [OUTPUTS[0]]
        results = self._session.run(wanted, {"input_ids": input_ids, "attention_mask": attention_mask})
        return results[0], (results[1] if features else None)

    def set_num_threads(self, num_threads: int) -> None:
        """ONNX Runtime fixes its thread count per session: a new count opens a new session."""
        if num_threads != self.num_threads:
            self.num_threads, self._session = num_threads, None

    def _open(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        source = self._bytes if self._bytes is not None else str(self.path)
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def __getstate__(self) -> dict:
        state = {key: value for key, value in self.__dict__.items() if key != "_opening"}
        state["_session"] = None
        if state["_bytes"] is None:
            state["_bytes"] = self.path.read_bytes()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _opening=threading.Lock())


def source_key(adapter_dir: Path, base_model: str, int8: bool) -> str | None:
    """The cache key from files: the adapter's config and weights and the base's config and
    weights, when the base is a local directory; None for a Hub base (see `weights_key`)."""
    base_dir = Path(resolve_base(base_model))
    if not base_dir.is_dir():
        return None
    files = [adapter_dir / ADAPTER_CONFIG, adapter_dir / ADAPTER_WEIGHTS, base_dir / "config.json",
             *sorted(base_dir.glob("*.safetensors")), *sorted(base_dir.glob("*.bin"))]
    return _digest(int8, *(f"{path.name}:{file_sha256(path)}" for path in files if path.is_file()))


def weights_key(model: PreTrainedModel, int8_layers: list[str]) -> str:
    """The cache key from the merged model itself: its config and every weight."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        # Raw bytes through a uint8 view: works for every dtype (bf16 has no numpy equivalent).
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return _digest(bool(int8_layers), model.config.to_json_string(), ",".join(int8_layers), digest.hexdigest())


def _digest(int8: bool, *parts: str) -> str:
    common = (FORMAT_VERSION, _version("torch"), _version("onnxruntime"), "int8" if int8 else "fp32")
    return hashlib.sha256("\0".join((*common, *parts)).encode()).hexdigest()[:24]


def _version(package: str) -> str:
    """The installed version from the package metadata (importing torch to ask would cost a
    second), else from the module (a distribution of another name, e.g. onnxruntime-gpu)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(package).__version__


def load_cached(key: str, num_threads: int, directory: Path | None = None) -> OnnxModel | None:
    """The cached model for `key`, or None."""
    root = directory or cache_dir()
    path, meta = root / f"{key}.onnx", root / f"{key}.json"
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        config, int8_layers = SimpleNamespace(**info["config"]), info["int8_layers"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        logger.warning("ignoring the unreadable ONNX cache entry %s (%s); building it again", meta, err)
        return None
    logger.info("ONNX Runtime: using the cached %s", path)
    return OnnxModel(path, config, int8_layers, num_threads, info.get("feature_token"))


@contextlib.contextmanager
def build_lock(key: str, directory: Path | None = None):
    """Held by the process that loads or builds `key`: another process that needs the same model
    waits here, then finds it in the cache instead of building it a second time (the app's
    background build, several workers starting at once). A no-op without fcntl or when the
    cache folder is not writable."""
    root, handle = directory or cache_dir(), None
    if fcntl is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            handle = open(root / f"{key}.lock", "a+b")
        except OSError:  # onnx_model then builds in a temporary folder, unlocked
            pass
    if handle is None:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("ONNX Runtime: another process is building this model; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def onnx_model(model: PreTrainedModel, int8_layers: Collection[str], num_threads: int,
               key: str | None = None, directory: Path | None = None) -> OnnxModel:
    """The ONNX Runtime version of `model` (merged, on CPU), from the cache or built into it.

    int8_layers: full module names (e.g. "bert.encoder.layer.1.output.dense") of the linear
    layers to quantize; the other layers stay fp32. An empty list gives an fp32 model.
    key: the cache key (`source_key`); None computes `weights_key`.
    """
    if model.device.type != "cpu":
        raise ValueError(f"ONNX Runtime runs the model on CPU here, but it is on {model.device}. "
                         'Use runtime="torch" on a GPU.')
    int8_layers = sorted(int8_layers)
    key = key or weights_key(model, int8_layers)
    root = directory or cache_dir()
    cached = load_cached(key, num_threads, root)
    if cached is not None:
        return cached
    try:
        root.mkdir(parents=True, exist_ok=True)
        _build(model, int8_layers, root, key)
    except OSError as err:
        # A read-only or odd home (some containers) must not stop the app: use a temp folder.
        logger.warning("cannot write the ONNX cache in %s (%s); using a temporary folder. "
                       "Set EMOTION_APP_CACHE to a writable folder to keep it.", root, err)
        root = Path(tempfile.mkdtemp(prefix="emotion-onnx-"))
        _build(model, int8_layers, root, key)
    return load_cached(key, num_threads, root)


def save_onnx(model: PreTrainedModel, int8_layers: Collection[str], target: Path, key: str | None = None) -> OnnxModel:
    """Write the engine's ONNX model of `model` (what `onnx_model` runs, byte for byte: taken from
    the cache, or built into it first) to `target`, through a temporary file in its folder, so
    that `target` is either the old file or the whole new one. For `python -m emotion_app export`."""
    built = onnx_model(model, int8_layers, 1, key)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out, built.path.open("rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return OnnxModel(target, built.config, built.int8_layers, 1)


def _build(model: PreTrainedModel, int8_layers: list[str], root: Path, key: str) -> None:
    """Export to a temporary file in `root`, quantize, write `<key>.json`, then move the model to
    `<key>.onnx` in one step, so that a killed build or two processes building at once never
    leave a broken entry (an entry counts only once its .onnx exists)."""
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as work:
        exported = Path(work) / "model.onnx"
        export(model, exported)
        if int8_layers:
            quantized = Path(work) / "model-int8.onnx"
            quantize(exported, quantized, int8_layers)
            exported = quantized
        meta = Path(work) / "meta.json"
        meta.write_text(json.dumps({"config": json.loads(model.config.to_json_string()), "int8_layers": int8_layers,
                                    "feature_token": feature_token(model)}), encoding="utf-8")
        os.replace(meta, root / f"{key}.json")
        os.replace(exported, root / f"{key}.onnx")
    logger.info("ONNX Runtime: exported %s (%d int8 layers) to %s", type(model).__name__, len(int8_layers),
                root / f"{key}.onnx")


def export(model: PreTrainedModel, path: Path) -> None:
    """torch.onnx.export of (input_ids, attention_mask) -> (logits, features) with dynamic batch
    and length; features are what the head reads (engine/features.py), for the OOD score.

    The sample batch has padding on purpose: the tracer records Python-level branches as
    constants, and a batch without padding could record "no mask needed".
    """
    import torch

    vocab = model.config.vocab_size
    ids = torch.tensor([[min(i + 5, vocab - 1) for i in range(8)]] * 2)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    dynamic = {**{name: {0: "batch", 1: "tokens"} for name in INPUTS}, **{name: {0: "batch"} for name in OUTPUTS}}
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False  # GPT-2 would also return its key/value cache
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # The TorchScript exporter warns that it is legacy and that tensor-to-bool conversions
            # are traced as constants (see above); neither is actionable for a user.
            warnings.simplefilter("ignore")
            torch.onnx.export(_logits_and_features(model.eval()), (ids, mask), str(path), input_names=list(INPUTS),
                              output_names=list(OUTPUTS), dynamic_axes=dynamic, opset_version=17, dynamo=False)
    finally:
        model.config.use_cache = use_cache


def _logits_and_features(model: PreTrainedModel):
    """model(input_ids, attention_mask) -> (logits, features), by keyword (GPT-2's second positional
    argument is past_key_values). Its nodes are named "/wrapped/<module path>/<op>"."""
    import torch

    from emotion_app.engine.features import logits_and_features

    token = feature_token(model)

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wrapped = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
            return logits_and_features(self.wrapped, input_ids, attention_mask, token)

    return LogitsAndFeatures()


def quantize(source: Path, target: Path, int8_layers: list[str]) -> None:
    """onnxruntime's dynamic int8 (int8 weights, activations quantized per batch) on the MatMul
    nodes of `int8_layers`; every other node stays fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    wanted = set(int8_layers)
    graph = onnx.load(str(source), load_external_data=False).graph
    nodes = [node.name for node in graph.node if node.op_type == "MatMul" and _module_name(node.name) in wanted]
    if len(nodes) != len(wanted):
        raise RuntimeError(f"ONNX export: found {len(nodes)} MatMul nodes for the {len(wanted)} layers to "
                           "quantize; the exporter named its nodes differently than expected. "
                           'Use runtime="torch" for this model.')
    quiet = _BelowError()  # the quantizer logs advice and per-tensor notes on the root logger
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_quantize=nodes)
    finally:
        logging.getLogger().removeFilter(quiet)


class _BelowError(logging.Filter):
    """Drops records under ERROR. On the root logger it sees only what is logged on the root logger
    itself (`logging.info(...)`, as onnxruntime's quantizer does), not our modules' records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _module_name(node_name: str) -> str:
    """"/wrapped/bert/encoder/layer.0/output/dense/MatMul" -> "bert.encoder.layer.0.output.dense"."""
    return node_name.strip("/").rpartition("/")[0].replace("/", ".").removeprefix("wrapped.")
