"""Score a table: every input row and column kept, plus the model's emotion and probabilities.

Output columns, after the input's own (the app's download and the CLI write the same):

    emotion        the most probable label ("" when the row was not scored)
    confidence     the probability of that label
    p_<label>      one probability per label, in `labels.LABELS` order
    needs_review   confidence < threshold (only when a threshold is given)
    note           why a row was not scored or what was done to it ("" otherwise)

An output column whose name the input already uses gets the suffix `_pred` (then `_pred_2`, ...):
input columns are never renamed or overwritten. Rows with an empty or blank text are kept, with an
empty emotion and a note. Very long texts are cut for the model only; the output keeps them whole.

Files offered for download are neutralised against CSV injection (OWASP): a cell starting with
=, +, -, @, a tab or a carriage return gets a leading single quote, so a spreadsheet shows it as
text instead of running it as a formula. `raw=True` writes the cells unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from emotion_app.analysis.review import check_threshold
from emotion_app.data.tables import resolve_column
from emotion_app.engine.classifier import Predictor
from emotion_app.labels import LABELS, NUM_LABELS, check_classifier_labels

logger = logging.getLogger(__name__)

MODEL_MAX_CHARS = 4000  # far beyond any model's 512 tokens; keeps tokenising a huge cell cheap
SCORE_BATCH_ROWS = 256  # rows per call to a classifier that is not the engine (progress after each)
PROB_DECIMALS = 4
NOTE_EMPTY = "empty text: not scored"
NOTE_LONG = "long text: the model read only its first {n:,} characters"


class Classifier(Protocol):
    """Anything with predict_proba(texts) -> [N, 6] in label order (EmotionClassifier, RayClassifier)."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def output_names(input_columns: Sequence[object], threshold: float | None = None) -> dict[str, str]:
    """Plain output name -> the name used in this table (suffixed `_pred` if the input has it)."""
    plain = ["emotion", "confidence", *[f"p_{label}" for label in LABELS]]
    plain += ["needs_review"] if threshold is not None else []
    plain += ["note"]
    taken = {str(column) for column in input_columns}
    names = {}
    for name in plain:
        chosen = name
        if chosen in taken:
            chosen, k = f"{name}_pred", 2
            while chosen in taken:
                chosen, k = f"{name}_pred_{k}", k + 1
        taken.add(chosen)
        names[name] = chosen
    return names


def score_frame(classifier: Classifier, frame: pd.DataFrame, text_column: str,
                threshold: float | None = None, progress: Callable[[int, int], None] | None = None, *,
                batch_rows: int = SCORE_BATCH_ROWS, max_chars: int = MODEL_MAX_CHARS) -> pd.DataFrame:
    """`frame` with the output columns added; same rows, same order, same index."""
    check_classifier_labels(classifier)
    column = resolve_column(str(text_column), [str(c) for c in frame.columns], "the table")
    if threshold is not None:
        check_threshold(threshold)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, found {batch_rows}.")
    texts = [_cell_text(value) for value in frame[_original_label(frame, column)]]
    probs = _probabilities(classifier, texts, progress, batch_rows, max_chars)
    return pd.concat([frame, _output_frame(probs, texts, frame, threshold, max_chars)], axis=1)


def _original_label(frame: pd.DataFrame, name: str) -> object:
    return next(c for c in frame.columns if str(c) == name)


def _cell_text(value: object) -> str:
    """A cell as text: missing values are "", anything else its usual text form."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _probabilities(classifier: Classifier, texts: list[str], progress, batch_rows: int,
                   max_chars: int) -> np.ndarray:
    """[N, 6]; rows with a blank text stay NaN. The engine (a Predictor) gets every text at once:
    it sorts them by length, so its batches carry little padding, and reports progress itself.
    Any other classifier gets `batch_rows` texts per call, with progress after each."""
    probs = np.full((len(texts), NUM_LABELS), np.nan)
    todo = np.array([i for i, text in enumerate(texts) if text.strip()], dtype=np.int64)
    blank = len(texts) - len(todo)
    if progress is not None:
        progress(0, len(texts))
    if len(todo) and isinstance(classifier, Predictor):
        def engine_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(blank + done, len(texts))

        batch = [texts[i][:max_chars] for i in todo]
        probs[todo] = _checked(classifier.predict_proba(batch, engine_progress), len(todo))
    else:
        for start in range(0, len(todo), batch_rows):
            index = todo[start:start + batch_rows]
            probs[index] = _checked(classifier.predict_proba([texts[i][:max_chars] for i in index]), len(index))
            if progress is not None:
                progress(blank + start + len(index), len(texts))
    if progress is not None:
        progress(len(texts), len(texts))
    return probs


def _checked(probs: object, n: int) -> np.ndarray:
    array = np.asarray(probs, dtype=np.float64)
    if array.shape != (n, NUM_LABELS) or not np.isfinite(array).all():
        raise ValueError(f"the classifier returned an array of shape {array.shape} (finite: "
                         f"{bool(np.isfinite(array).all()) if array.size else 'n/a'}), expected ({n}, "
                         f"{NUM_LABELS}) finite probabilities. Check the classifier's predict_proba.")
    return array


def _output_frame(probs: np.ndarray, texts: list[str], frame: pd.DataFrame, threshold: float | None,
                  max_chars: int) -> pd.DataFrame:
    names = output_names(frame.columns, threshold)
    scored = ~np.isnan(probs[:, 0])
    best = np.where(scored, np.nan_to_num(probs).argmax(axis=1), -1)
    confidence = probs.max(axis=1, initial=-np.inf, where=~np.isnan(probs))
    confidence = np.where(scored, confidence, np.nan)
    columns: dict[str, object] = {
        names["emotion"]: [LABELS[i] if i >= 0 else "" for i in best],
        names["confidence"]: np.round(confidence, PROB_DECIMALS),
    }
    for j, label in enumerate(LABELS):
        columns[names[f"p_{label}"]] = np.round(probs[:, j], PROB_DECIMALS)
    if threshold is not None:
        review = [bool(c < threshold) if ok else None for c, ok in zip(confidence, scored)]
        columns[names["needs_review"]] = pd.array(review, dtype="boolean")
    columns[names["note"]] = [_note(text, ok, max_chars) for text, ok in zip(texts, scored)]
    out = pd.DataFrame(columns, index=frame.index)
    out[names["emotion"]] = out[names["emotion"]].astype(object)
    out[names["note"]] = out[names["note"]].astype(object)
    return out


def _note(text: str, scored: bool, max_chars: int) -> str:
    if not scored:
        return NOTE_EMPTY
    if len(text) > max_chars:
        return NOTE_LONG.format(n=max_chars)
    return ""


# ---------------------------------------------------------------------------------------------
# Writing


