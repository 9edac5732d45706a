"""Word importance by occlusion: drop one word at a time and see how the probability moves.

score(word) = p(label | text) - p(label | text without that word)

Positive: the word pushed the model towards `label`; negative: away from it. The text and all
its one-word-shorter variants go to the classifier in a single `predict_proba` call (one list,
batched inside the classifier). It works on the words of the text, not on tokens, so any base
(BERT, GPT-2, ...) gets the same treatment.
"""

from __future__ import annotations

import re

import numpy as np

from emotion_app.labels import LABELS, NUM_LABELS, parse_label

WORD = re.compile(r"\S+")
MAX_WORDS = 256  # one extra text per word goes through the model


def split_words(text: str) -> list[tuple[int, int]]:
    """(start, end) of each whitespace-separated word in `text`."""
    return [m.span() for m in WORD.finditer(text)]


def without_word(text: str, spans: list[tuple[int, int]], i: int) -> str:
    """`text` minus word i and the whitespace that joined it to the text, the rest untouched.

    Dropping the whitespace before the word (after it, for the first word) keeps single spaces
    single, which matters to GPT-2's tokenizer, where a double space is a token of its own.
    """
    start, end = spans[i]
    if i > 0:
        start = spans[i - 1][1]
    elif len(spans) > 1:
        end = spans[1][0]
    return text[:start] + text[end:]


def explain(classifier, text: str, label: str | int | None = None, max_words: int = MAX_WORDS) -> dict:
    """Occlusion explanation of one text, from one `classifier.predict_proba` call.

    Returns {"label": the explained label's name, "probabilities": {name: p} for the full text,
    "attributions": [(piece, score), ...]}. The pieces are the words, each with the whitespace
    that follows it (the first also with any leading whitespace), so "".join(pieces) == text;
    the list can go straight into gr.HighlightedText (scores lie in [-1, 1]).

    `label` (a name or an id) defaults to the label predicted for the full text. A one-word
    text has no shorter text to compare with (an empty text is not a valid input), so its word is
    scored against the no-evidence baseline of 1/6 for every label. Raises ValueError for a
    non-string, an empty text or one of more than `max_words` words.
    """
    spans = _check_text(text, max_words)
    target = None if label is None else parse_label(label)
    variants = [without_word(text, spans, i) for i in range(len(spans))] if len(spans) > 1 else []
    probs = np.asarray(classifier.predict_proba([text, *variants]), dtype=float)
    if probs.shape != (1 + len(variants), NUM_LABELS):
        raise ValueError(f"predict_proba returned shape {probs.shape}: expected ({1 + len(variants)}, "
                         f"{NUM_LABELS}), one row of {NUM_LABELS} probabilities per text.")
    full = probs[0]
    if target is None:
        target = int(full.argmax())
    occluded = probs[1:, target] if variants else np.array([1.0 / NUM_LABELS])
    scores = full[target] - occluded
    return {
        "label": LABELS[target],
        "probabilities": {name: float(p) for name, p in zip(LABELS, full)},
        "attributions": list(zip(_pieces(text, spans), (float(s) for s in scores))),
    }


def occlusion(classifier, text: str, label: str | int | None = None,
              max_words: int = MAX_WORDS) -> list[tuple[str, float]]:
    """[(piece, score), ...] for `text`: see `explain` (this is its "attributions")."""
    return explain(classifier, text, label, max_words)["attributions"]


def top_words(attributions: list[tuple[str, float]], k: int = 5) -> list[tuple[str, float]]:
    """The k words with the largest scores (stripped of their whitespace), largest first."""
    ranked = sorted(((piece.strip(), score) for piece, score in attributions), key=lambda r: -r[1])
    return ranked[:k]


def _pieces(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """Each word with the whitespace after it; leading whitespace joins the first word."""
    bounds = [0] + [start for start, _ in spans[1:]] + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def _check_text(text: str, max_words: int) -> list[tuple[int, int]]:
    if not isinstance(text, str):
        raise ValueError(f"text is {type(text).__name__} {text!r}: expected a string.")
    spans = split_words(text)
    if not spans:
        raise ValueError("the text is empty: expected at least one word to explain. Type a sentence.")
    if len(spans) > max_words:
        raise ValueError(f"the text has {len(spans)} words: occlusion explains at most {max_words} (each word "
                         "costs one more text through the model). Shorten the text or raise max_words.")
    return spans
