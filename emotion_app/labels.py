"""Label sets. A model's labels are a property of the model (an adapter records them in
labels.json); this module holds the seed task's six emotions, the `neutral` outcome, the rule that
orders the labels found in training data, and parsing a label cell against a label list.

The rule (train.py, `label_order`): `--labels` when given; else the six emotions in the seed's
order when the training labels are ids, or names among the six; then `neutral` after them when
rows carry it; any other set of names is sorted alphabetically.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

# The six emotions of `dair-ai/emotion`, in the data set's id order: the seed task, and the labels
# of every adapter that records none.
EMOTIONS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")
NEUTRAL = "neutral"  # no emotion: an outcome like the others, named so the app can say it plainly
# One short sentence per label: what a sentence-embedding base compares a text with to guess its
# label without training (the zero-shot prior of train/prior.py).
PROMPTS: dict[str, str] = {"sadness": "I feel sad", "joy": "I feel happy", "love": "I feel loving",
                           "anger": "I feel angry", "fear": "I feel afraid", "surprise": "I feel surprised",
                           NEUTRAL: "This is a plain statement of fact"}
# Several phrasings per emotion (a feeling, a remark about something, a stronger word): the prior
# scores a label by its mean cosine over them, so one wording's quirks weigh less. Neutral keeps its
# one prompt: the others tried picked out fewer emotionless comments (docs/training.md, run G).
PROMPT_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "one": {name: (prompt,) for name, prompt in PROMPTS.items()},
    "several": {
        "sadness": ("I feel sad", "This is sad", "I am grieving, heartbroken and lonely"),
        "joy": ("I feel happy", "This is great news", "I am delighted and proud"),
        "love": ("I feel loving", "I love you so much", "I care deeply about someone"),
        "anger": ("I feel angry", "This is outrageous", "I am furious and annoyed"),
        "fear": ("I feel afraid", "This is scary", "I am terrified and anxious"),
        "surprise": ("I feel surprised", "I did not expect that", "I am amazed and shocked"),
        NEUTRAL: (PROMPTS[NEUTRAL],),
    },
}


def check_labels(labels: Sequence[object], source: str) -> tuple[str, ...]:
    """The label list as a tuple of names, or ValueError naming what is wrong: fewer than two,
    an empty or non-text name, or a name twice (case and surrounding spaces ignored)."""
    found = list(labels) if not isinstance(labels, str) else [labels]
    if len(found) < 2:
        raise ValueError(f"{source} has labels {found}: expected at least two distinct label names. "
                         "A classifier needs two or more outcomes; add rows of another label.")
    bad = [name for name in found if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"{source} has labels {found}: expected non-empty names, found {bad!r}. "
                         "Name every label.")
    keys = [name.strip().lower() for name in found]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"{source} has labels {found}: expected each name once, found {twice} more than once "
                         "(case is ignored). Remove the duplicates.")
    return tuple(name.strip() for name in found)


def label_order(names: Iterable[str]) -> tuple[str, ...]:
    """The label list for a set of label names found in training data (the module's rule)."""
    found = {name.strip().lower() for name in names}
    if found <= {*EMOTIONS, NEUTRAL}:
        return EMOTIONS + ((NEUTRAL,) if NEUTRAL in found else ())
    return tuple(sorted(found))


def parse_label(value: object, labels: Sequence[str] = EMOTIONS) -> int:
    """Turn a label name (any case) or an id (int or digit string) into its id in `labels`.

    Raises ValueError saying what was expected and what was found.
    """
    if isinstance(value, bool):
        raise ValueError(_label_error(value, labels))
    if isinstance(value, numbers.Integral):  # numpy's integers too
        if 0 <= value < len(labels):
            return int(value)
        raise ValueError(_label_error(value, labels))
    if isinstance(value, float) and value.is_integer():
        return parse_label(int(value), labels)
    if isinstance(value, str):
        key = value.strip().lower()
        for i, name in enumerate(labels):
            if name.lower() == key:
                return i
        if key.isdigit():
            return parse_label(int(key), labels)
    raise ValueError(_label_error(value, labels))


def _label_error(value: object, labels: Sequence[str]) -> str:
    return (f"unknown label {value!r}: expected one of {', '.join(labels)} (any case) "
            f"or an id 0-{len(labels) - 1}")


def emotion_ids_in(labels: Sequence[str]) -> list[int]:
    """Where each of the six emotions (seed ids 0-5) sits in `labels`, so six-emotion rows can be
    read by a model with more labels (neutral); ValueError naming the emotions `labels` lacks."""
    ids = emotion_columns(labels)
    if not ids:
        missing = [name for name in EMOTIONS if name not in {n.lower() for n in labels}]
        raise ValueError(f"the labels {list(labels)} lack {', '.join(missing)}: expected all six emotions to read "
                         "rows of dair-ai/emotion. Use data with the model's own labels.")
    return ids


def emotion_columns(labels: Sequence[str]) -> list[int]:
    """The positions of the seed's six emotions in `labels` (the six-way view of a larger model);
    empty unless all six are there."""
    lowered = [name.lower() for name in labels]
    return [lowered.index(name) for name in EMOTIONS] if set(EMOTIONS) <= set(lowered) else []

