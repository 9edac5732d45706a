"""The six emotions of `dair-ai/emotion`, in the data set's id order. Spelled here only."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

LABELS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")
NUM_LABELS = len(LABELS)
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}
# One short sentence per label, in LABELS' order: what a sentence-embedding base compares a text
# with to guess its emotion without training (the zero-shot prior of train/prior.py).
PROMPTS: tuple[str, ...] = ("I feel sad", "I feel happy", "I feel loving", "I feel angry", "I feel afraid",
                            "I feel surprised")


def parse_label(value: object) -> int:
    """Turn a label name (any case) or an id 0-5 (int or digit string) into its id.

    Raises ValueError saying what was expected and what was found.
    """
    if isinstance(value, bool):
        raise ValueError(_label_error(value))
    if isinstance(value, numbers.Integral):  # numpy's integers too
        if 0 <= value < NUM_LABELS:
            return int(value)
        raise ValueError(_label_error(value))
    if isinstance(value, float) and value.is_integer():
        return parse_label(int(value))
    if isinstance(value, str):
        key = value.strip().lower()
        if key in LABEL2ID:
            return LABEL2ID[key]
        if key.isdigit():
            return parse_label(int(key))
    raise ValueError(_label_error(value))


def _label_error(value: object) -> str:
    return (
        f"unknown label {value!r}: expected one of {', '.join(LABELS)} (any case) "
        f"or an id 0-{NUM_LABELS - 1}"
    )


def check_classifier_labels(classifier: object) -> None:
    """Raise ValueError unless the classifier's `labels` (when it has them) are ours, in order."""
    labels = getattr(classifier, "labels", None)
    if labels is not None:
        check_label_maps(dict(enumerate(labels)), "the classifier")


def check_label_maps(id2label: Mapping[object, str], source: str) -> None:
    """Raise ValueError unless `id2label` (from a model config) is exactly our labels in order."""
    found = [id2label.get(i, id2label.get(str(i))) for i in range(len(id2label))]
    if found != list(LABELS):
        raise ValueError(
            f"{source} has labels {found}, expected {list(LABELS)} in that order. "
            "Use an adapter trained on dair-ai/emotion with this project's label order."
        )
