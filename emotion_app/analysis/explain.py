"""Word importance by occlusion on the log-odds of the explained label, from both ends:

    L(x) = log(p / (1 - p)), p = p(label | x)
    score(word) = ( [L(text) - L(text without the word)] + [L(the word alone) - L(no evidence)] ) / 2

with L(no evidence) = log((1/K) / (1 - 1/K)) for K labels, the uniform baseline. Positive: the word pushes the model
towards `label`; negative: away from it.

Why both changes from the plain "probability drop when the word is left out":
- probabilities saturate: at p = 0.99 every word's drop is about 0, so the colours showed noise.
  Log-odds do not saturate;
- but log-odds are a monotone function of p, so they keep the sign of every drop: when a text
  says the emotion twice ("so happy and excited, ... a wonderful day"), leaving out one emotion word
  changes little or even raises p (measured: joy rose without "happy"), and "feel" (nearly every
  training text says "i feel ...") took the top score in most clear sentences. Averaging in the
  word's effect on its own (the other end of the Shapley value: the word added to nothing, besides
  the word added to everything else) credits each of several emotion words. Measured on 19 clear
  sentences with the embedded int8 engine: an emotion word has the top score in 18 of 19 (5 of 19
  with the plain probability drop); docs/trust.md and benchmarks/bench_trust.py.

The text and its one-word-shorter variants go to the classifier in one `predict_proba` call (N + 1
texts, N when the caller passes the text's own probabilities), its words alone in a second one,
`predict_words`: a word alone does not depend on the rest of the text, so the engine looks up the
words its word table has (engine/words.py) and runs only the others.
It works on the words of the text, not on tokens, so any base (BERT, GPT-2, ...) gets the same
treatment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.engine.classifier import Predictor
from emotion_app.labels import parse_label

WORD = re.compile(r"\S+")
MAX_WORDS = 256  # two extra texts per word go through the model
P_CLIP = 1e-6  # log-odds of probabilities clipped to [P_CLIP, 1 - P_CLIP]


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


def explain(classifier: Predictor, text: str, label: str | int | None = None, max_words: int = MAX_WORDS,
            full: Sequence[float] | np.ndarray | None = None) -> dict:
    """Occlusion explanation of one text, from one `classifier.predict_proba` call.

    Returns {"label": the explained label's name, "probabilities": {name: p} for the full text,
    "attributions": [(piece, score), ...]}, scores in log-odds of the label (see the module). The
    pieces are the words, each with the whitespace that follows it (the first also with any
    leading whitespace), so "".join(pieces) == text; the list can go straight into
    gr.HighlightedText once scaled to [-1, 1].

    `label` (a name or an id) defaults to the label predicted for the full text. A one-word text
    is its own word alone, and without it there is no text (an empty text is not a valid input):
    its score is L(text) - L(no evidence). `full`, the text's own probabilities when the caller
    already has them (the page shows them), is used instead of running the text again: the
    explanation then explains exactly the probabilities shown, one forward pass cheaper. Raises
    ValueError for a non-string, an empty text, one of more than `max_words` words, or a `full`
    that is not one row of probabilities.
    """
    spans = _check_text(text, max_words)
    labels = tuple(classifier.labels)
    target = None if label is None else parse_label(label, labels)
    given = None if full is None else _check_full(full, len(labels))
    n = len(spans) if len(spans) > 1 else 0
    variants = [without_word(text, spans, i) for i in range(n)]
    alone = [text[start:end] for start, end in spans[:n]]
    texts = variants if given is not None else [text, *variants]
    shown = [given] if given is not None else []
    # the words alone do not depend on the rest of the text: an engine may look them up (engine/words.py)
    probs = np.vstack([*shown, _probabilities(classifier.predict_proba, texts, len(labels)),
                       _probabilities(classifier.predict_words, alone, len(labels))])
    full = probs[0]
    if target is None:
        target = int(full.argmax())
    odds = log_odds(probs[:, target])
    no_evidence = no_evidence_log_odds(len(labels))
    if n:
        scores = ((odds[0] - odds[1:1 + n]) + (odds[1 + n:] - no_evidence)) / 2
    else:
        scores = np.array([odds[0] - no_evidence])
    return {
        "label": labels[target],
        "probabilities": {name: float(p) for name, p in zip(labels, full)},
        "attributions": list(zip(_pieces(text, spans), (float(s) for s in scores))),
    }


def no_evidence_log_odds(num_labels: int) -> float:
    """The log-odds of a label under the uniform guess 1/K: what a word that says nothing scores from."""
    return math.log((1 / num_labels) / (1 - 1 / num_labels))


def _probabilities(predict: Callable[[list[str]], np.ndarray], texts: list[str], width: int) -> np.ndarray:
    """predict(texts) checked: one row of `width` probabilities per text ([0, width] for none)."""
    if not texts:
        return np.empty((0, width))
    return check_probabilities(predict(texts), len(texts), width,
                               what=f"the probabilities {predict.__name__} returned")


def occlusion(classifier: Predictor, text: str, label: str | int | None = None,
              max_words: int = MAX_WORDS) -> list[tuple[str, float]]:
    """[(piece, score), ...] for `text`: see `explain` (this is its "attributions")."""
    return explain(classifier, text, label, max_words)["attributions"]


def log_odds(p) -> np.ndarray:
    """log(p / (1 - p)), with p clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), P_CLIP, 1 - P_CLIP)
    return np.log(p / (1 - p))


def top_words(attributions: list[tuple[str, float]], k: int = 5) -> list[tuple[str, float]]:
    """The k words with the largest scores (stripped of their whitespace), largest first."""
    ranked = sorted(((piece.strip(), score) for piece, score in attributions), key=lambda r: -r[1])
    return ranked[:k]


def _pieces(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """Each word with the whitespace after it; leading whitespace joins the first word."""
    bounds = [0] + [start for start, _ in spans[1:]] + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def _check_full(full, width: int) -> np.ndarray:
    """The text's own probabilities, given as one row of `width` (any shape of that many values)."""
    try:
        return check_probabilities(np.reshape(np.asarray(full, dtype=float), (1, -1)), 1, width, what="full")[0]
    except ValueError as err:
        raise ValueError(f"{err} For `full`, expected the text's {width} finite probabilities in label order (one "
                         "row of predict_proba), or None to compute them here.") from None


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
