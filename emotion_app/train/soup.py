"""Weight-space ensembles of LoRA adapters on one base (WiSE-FT, model soups), as one plain adapter.

A soup of adapters i with weights w_i (summing to 1) is the model with W0 + sum_i w_i * dW_i in every
adapted layer, dW_i = (alpha_i / r_i) * B_i @ A_i, and the head sum_i w_i * head_i. It is written as
a single LoRA adapter of rank sum_i r_i, A = [A_1; A_2; ...] and B = [w_1 s_1 B_1, w_2 s_2 B_2, ...]
with lora_alpha = rank (scale 1), so it loads with plain transformers + peft and merges like any
other. Why: fine-tuning on dair-ai/emotion alone forgets what the base knew about emotions; the soup
of that adapter with one trained on the base's zero-shot prior (train/prior.py) keeps most of the
benchmark and much of the prior's gain on real text (docs/training.md).

Adapters may have different label lists when one holds every label of the others (a six-emotion
adapter in a seven-label soup): each head row is then the weighted mean over the adapters that have
that label. Mixing dilutes the features a row only one adapter learned (neutral), so its logit
shrinks; a neutral margin m, written into the head's bias, moves that row back. How far it shrinks
differs from run to run, so train.py can fit m per run (`fit_neutral_margin`): the margin at which
the soup calls a chosen share of held-out neutral rows neutral.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotion_app.artifacts import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    file_sha256,
    read_metrics,
    write_json,
    write_labels,
)
from emotion_app.labels import EMOTIONS, NEUTRAL

NEUTRAL_MARGIN_HELP = ("With a neutral label: the soup calls a text neutral only when the neutral logit beats the "
                       "best emotion's by more than this (written into the head's bias; negative: neutral more "
                       "often). Mixing in an adapter without neutral weakens that logit; choose the margin on "
                       "held-out real text (experiments/neutral_margin.py).")
NEUTRAL_RECALL_HELP = ("With a neutral label, instead of a fixed margin: fit the margin after training so that the "
                       "soup calls this share of held-out neutral rows neutral (rows labelled neutral the run does "
                       "not train on: validation's, and those --extra_train_max_per_label sets aside). How much "
                       "mixing weakens the neutral logit differs from run to run; a share of neutral rows does not.")

# adapter_config.json keys the mix must find equal in every adapter (anything else is a different model)
SHARED_KEYS = ("peft_type", "task_type", "base_model_name_or_path", "fan_in_fan_out", "modules_to_save")
# ... and these at their plain-LoRA values: a pattern or variant would change what a rank means
PLAIN = {"use_dora": False, "use_rslora": False, "bias": "none", "rank_pattern": {}, "alpha_pattern": {}}


@dataclass
class Ingredient:
    """One adapter of the soup: its name (for messages), adapter_config.json and weights."""
    name: str
    config: dict
    weights: dict  # tensor name -> torch.Tensor, as in adapter_model.safetensors
    labels: tuple[str, ...] = EMOTIONS  # its labels.json (absent: the six emotions)


def check_weights(weights: Sequence[float], count: int) -> list[float]:
    weights = [float(w) for w in weights]
    if len(weights) != count or count < 2:
        raise ValueError(f"a soup needs at least two adapters and one weight per adapter; found {count} adapters "
                         f"and {len(weights)} weights. Pass e.g. --adapters A B --weights 0.5 0.5.")
    if any(not 0 <= w <= 1 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise ValueError(f"soup weights must each be in [0, 1] and sum to 1 (an interpolation); found {weights}. "
                         "E.g. 0.5 0.5, or 0.7 0.3.")
    return weights


def soup_labels(ingredients: Sequence[Ingredient]) -> tuple[str, ...]:
    """The soup's labels: the longest list, which must hold every other adapter's labels."""
    labels = max((item.labels for item in ingredients), key=len)
    for item in ingredients:
        extra = [label for label in item.labels if label not in labels]
        if extra:
            raise ValueError(f"adapter {item.name} has labels {', '.join(extra)} that the soup's labels "
                             f"({', '.join(labels)}) lack. A soup mixes heads row by row: every adapter's labels "
                             "must be among those of the adapter with the most labels.")
    return labels


def mix(ingredients: Sequence[Ingredient], weights: Sequence[float],
        neutral_margin: float = 0.0) -> tuple[dict, dict]:
    """(adapter_config, tensors) of the soup as one LoRA adapter of the summed rank."""
    import torch

    weights = check_weights(weights, len(ingredients))
    first = ingredients[0]
    for item in ingredients[1:]:
        _check_compatible(first, item)
    labels = soup_labels(ingredients)
    heads = tuple(first.config.get("modules_to_save") or ())
    rank = sum(int(item.config["r"]) for item in ingredients)
    tensors = {}
    for key in first.weights:
        parts = [item.weights[key] for item in ingredients]
        if key.endswith(".lora_A.weight"):
            tensors[key] = torch.cat(parts, dim=0)
        elif key.endswith(".lora_B.weight"):
            tensors[key] = torch.cat([w * _scale(item.config) * part
                                      for w, item, part in zip(weights, ingredients, parts)], dim=1)
        elif _is_head(key, heads):
            tensors[key] = _mix_head(parts, ingredients, weights, labels)
        else:
            raise ValueError(f"adapter {first.name} holds {key}, neither a LoRA matrix nor the head: a soup "
                             "mixes plain LoRA adapters with their classification head only.")
    if neutral_margin:
        _shift_neutral(tensors, heads, labels, neutral_margin)
    config = {**first.config, "r": rank, "lora_alpha": rank}
    return config, {key: value.contiguous() for key, value in tensors.items()}


def _mix_head(parts, ingredients: Sequence[Ingredient], weights: Sequence[float], labels: tuple[str, ...]):
    """A head tensor's rows: the weighted sum, or with different label lists the weighted mean of each
    row over the adapters that have its label."""
    import torch

    if all(item.labels == labels for item in ingredients):
        return sum(w * part for w, part in zip(weights, parts))
    mixed = torch.zeros((len(labels), *parts[0].shape[1:]), dtype=parts[0].dtype)
    total = torch.zeros(len(labels), dtype=parts[0].dtype)
    for w, item, part in zip(weights, ingredients, parts):
        rows = [labels.index(label) for label in item.labels]
        mixed[rows] += w * part
        total[rows] += w
    if not total.all():
        missing = [label for label, share in zip(labels, total) if not share]
        raise ValueError(f"no adapter with a weight above 0 has the labels {', '.join(missing)}: give the "
                         "adapter that has them a weight.")
    return mixed / total.view(-1, *([1] * (mixed.dim() - 1)))


def _shift_neutral(tensors: dict, heads: tuple[str, ...], labels: tuple[str, ...], margin: float) -> None:
    """Subtract `margin` from the neutral logit: a row is then neutral only when that logit beats the
    best emotion's by more than the margin (a negative margin says neutral more often)."""
    if NEUTRAL not in labels:
        raise ValueError(f"a neutral margin needs a `{NEUTRAL}` label; the soup's labels are {', '.join(labels)}. "
                         "Leave the margin at 0.")
    biases = [key for key in tensors if key.endswith(".bias") and _is_head(key, heads)]
    if not biases:
        raise ValueError("a neutral margin is written into the head's bias, and these adapters' head has none "
                         "(e.g. GPT-2's score layer). Leave the margin at 0.")
    for key in biases:
        tensors[key] = tensors[key].clone()
        tensors[key][labels.index(NEUTRAL)] -= margin


def check_neutral_recall(recall: float) -> float:
    if not 0 < recall < 1:
        raise ValueError(f"--soup_neutral_recall is {recall}: expected the share of held-out neutral rows the soup "
                         "should call neutral, in (0, 1), e.g. 0.65.")
    return float(recall)


def fit_neutral_margin(logits, neutral: int, recall: float) -> float:
    """The neutral margin at which a soup whose logits on neutral rows are `logits` (at margin 0)
    calls `recall` of them neutral: the (1 - recall) quantile of neutral logit minus best emotion's."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    lead = logits[:, neutral] - np.delete(logits, neutral, axis=1).max(axis=1)
    return float(np.quantile(lead, 1 - check_neutral_recall(recall)))


def read_ingredient(adapter: str) -> tuple[Ingredient, object]:
    """(the Ingredient, its engine.adapters.AdapterSource) of an adapter directory or Hub id."""
    from safetensors.torch import load_file

    from emotion_app.engine.adapters import read_adapter

    source = read_adapter(adapter)
    return Ingredient(adapter, source.config, load_file(str(source.directory / ADAPTER_WEIGHTS)),
                      tuple(source.labels)), source


def load_mix(ingredients: Sequence[Ingredient], weights: Sequence[float], tokenizer, neutral_margin: float = 0.0):
    """(the soup loaded for measuring, as engine.adapters.load_adapter gives it unmerged, its
    adapter config): written with `tokenizer` to a scratch directory and read back exactly as a
    user would."""
    from safetensors.torch import save_file

    from emotion_app.engine.adapters import load_adapter

    config, tensors = mix(ingredients, weights, neutral_margin)
    with tempfile.TemporaryDirectory() as scratch:
        mixed = Path(scratch)
        write_json(mixed / ADAPTER_CONFIG, config)
        write_labels(mixed, soup_labels(ingredients))
        save_file(tensors, str(mixed / ADAPTER_WEIGHTS))
        tokenizer.save_pretrained(str(mixed))
        return load_adapter(str(mixed), merge=False), config


def recorded_accuracy(directory: Path) -> float | None:
    """The validation accuracy in an adapter's metrics.json, None when it has none."""
    return ((read_metrics(Path(directory)) or {}).get("validation") or {}).get("accuracy")


def check_soup_weight(weight: float) -> float:
    """train.py's --soup_weight: the partner adapter's share, strictly between 0 and 1."""
    if not 0 < weight < 1:
        raise ValueError(f"--soup_weight is {weight}: expected the weight of the --soup_with adapter, in (0, 1) "
                         "(this run's adapter gets 1 minus it), e.g. 0.5.")
    return float(weight)


def lineage(name: str, weight: float, directory: Path, validation_accuracy: float | None) -> dict:
    """One ingredient's entry in metrics.json's "soup": what it was, its weight and its sha256."""
    return {"adapter": name, "weight": weight, "sha256": file_sha256(Path(directory) / ADAPTER_WEIGHTS),
            "validation_accuracy": validation_accuracy}


def _is_head(key: str, heads: tuple[str, ...]) -> bool:
    """Whether a tensor belongs to the classification head (a module of modules_to_save)."""
    return any(f".{head}." in f".{key}" for head in heads)


def _scale(config: dict) -> float:
    return config["lora_alpha"] / config["r"]


def _check_compatible(first: Ingredient, other: Ingredient) -> None:
    for key in SHARED_KEYS:
        if _normal(first.config.get(key)) != _normal(other.config.get(key)):
            raise ValueError(f"adapters {first.name} and {other.name} differ in {key}: "
                             f"{first.config.get(key)!r} against {other.config.get(key)!r}. A soup needs "
                             "adapters of the same base, task and head, trained by the same train.py.")
    for item in (first, other):
        for key, plain in PLAIN.items():
            if item.config.get(key, plain) not in (plain, None):
                raise ValueError(f"adapter {item.name} has {key} = {item.config.get(key)!r}: a soup mixes plain "
                                 f"LoRA adapters ({key} = {plain!r}).")
    if set(first.weights) != set(other.weights):
        missing = sorted(set(first.weights) ^ set(other.weights))[:3]
        raise ValueError(f"adapters {first.name} and {other.name} adapt different layers (e.g. {missing}): "
                         "train both with the same target_modules.")
    for key, value in first.weights.items():
        shape, found = tuple(value.shape), tuple(other.weights[key].shape)
        if not key.endswith((".lora_A.weight", ".lora_B.weight")) and shape[1:] != found[1:]:
            raise ValueError(f"{key} is {shape} in {first.name} but {found} in {other.name}.")


def _normal(value):
    return sorted(set(value)) if isinstance(value, (list, set, tuple)) else value
