"""The classifier: texts -> probabilities [N, 6], in length-sorted batches.

Sorting by length before batching means each batch pads only to its own longest text; on these
short texts that removes most of the padding work. The original order is restored at the end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .labels import LABELS, NUM_LABELS

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"


class EmotionClassifier:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 max_length: int | None = None, batch_size: int = 32, temperature: float = 1.0,
                 info: dict | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, found {batch_size}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, found {temperature}.")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = min(max_length or tokenizer.model_max_length, 512)
        self.batch_size = batch_size
        self.temperature = temperature
        self.info = info or {}
        self.labels = LABELS

    @classmethod
    def from_adapter(cls, adapter: str, base_model: str | None = None, token: str | None = None,
                     batch_size: int = 32) -> EmotionClassifier:
        """Load base + adapter (a directory or a Hub repo id), merged for speed."""
        from .modeling import load_adapter

        loaded = load_adapter(adapter, base_model=base_model, token=token)
        info = {"adapter": adapter, "base_model": loaded.base_model, "directory": str(loaded.directory)}
        return cls(loaded.model, loaded.tokenizer, batch_size=batch_size, info=info,
                   temperature=read_temperature(loaded.directory))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw (uncalibrated) logits [N, 6], in input order."""
        texts = _check_texts(texts)
        out = np.zeros((len(texts), NUM_LABELS), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        features = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
        order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                index = order[start:start + self.batch_size]
                batch = self.tokenizer.pad([features[i] for i in index], return_tensors="pt")
                batch = {k: v.to(self.model.device) for k, v in batch.items()}
                out[index] = self.model(**batch).logits.float().cpu().numpy()
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities [N, 6] (rows sum to 1), columns in `labels.LABELS` order."""
        return softmax(self.logits(texts) / self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]


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
    if temperature <= 0:
        raise ValueError(f"{path} holds temperature {temperature}: expected a positive number. Refit it.")
    return temperature


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, found a single string. Wrap it: [text].")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {type(text).__name__} {text!r}: expected a string. "
                             "Convert the values to text first.")
    return texts
