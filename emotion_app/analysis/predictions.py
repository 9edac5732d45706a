"""Score a table: every input row and column kept, plus the model's emotion and probabilities.

Output columns, after the input's own (the app's download and the CLI write the same):

    emotion          the most probable label ("" when the row was not scored)
    confidence       the probability of that label
    p_<label>        one probability per label of the model, in its order (classifier.labels)
    in_distribution  whether the text is like the training data (only when the adapter has a
                     shift detector; see analysis/shift.py)
    ood_score        its out-of-distribution score (higher = more unusual; out of distribution
                     above the detector's threshold), from the same forward pass (same condition)
    needs_review     confidence < threshold, or not in_distribution (only when a threshold is given)
    note             why a row was not scored or what was done to it ("" otherwise)

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

from emotion_app.analysis.review import check_threshold, needs_review
from emotion_app.analysis.shift import FileEstimate
from emotion_app.data.tables import resolve_column
from emotion_app.engine.classifier import Predictor
from emotion_app.labels import EMOTIONS

logger = logging.getLogger(__name__)

MODEL_MAX_CHARS = 4000  # far beyond any model's 512 tokens; keeps tokenising a huge cell cheap
SCORE_BATCH_ROWS = 256  # rows per call to the classifier (progress is reported after each)
PROB_DECIMALS = 4
SCORE_DECIMALS = 2
NOTE_EMPTY = "empty text: not scored"
NOTE_LONG = "long text: the model read only its first {n:,} characters"


class Classifier(Protocol):
    """Anything with predict_proba(texts) -> [N, labels] in the order of its `labels`."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def detector_of(classifier: object):
    """The classifier's shift detector when it can score texts with it (predict_details), else None:
    then the out-of-distribution check is unavailable and the outputs are as before."""
    detector = getattr(classifier, "detector", None)
    return detector if detector is not None and hasattr(classifier, "predict_details") else None


def output_names(input_columns: Sequence[object], threshold: float | None = None,
                 ood: bool = False, labels: Sequence[str] = EMOTIONS) -> dict[str, str]:
    """Plain output name -> the name used in this table (suffixed `_pred` if the input has it).
    `ood`: the adapter has a shift detector (`detector_of`), so in_distribution and ood_score too;
    one p_<label> column per label of the model."""
    plain = ["emotion", "confidence", *[f"p_{label}" for label in labels]]
    plain += ["in_distribution", "ood_score"] if ood else []
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
                batch_rows: int = SCORE_BATCH_ROWS, max_chars: int = MODEL_MAX_CHARS,
                estimate: FileEstimate | None = None) -> pd.DataFrame:
    """`frame` with the output columns added; same rows, same order, same index. `estimate`
    (with a shift detector) accumulates the rows for the file's accuracy estimate."""
    labels = tuple(classifier.labels)
    column = resolve_column(str(text_column), [str(c) for c in frame.columns], "the table")
    if threshold is not None:
        check_threshold(threshold)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, found {batch_rows}.")
    texts = [_cell_text(value) for value in frame[_original_label(frame, column)]]
    probs, scores = _probabilities(classifier, texts, progress, batch_rows, max_chars, len(labels))
    if estimate is not None and scores is not None:
        estimate.add(probs, scores)
    outputs = _output_frame(probs, scores, detector_of(classifier), texts, frame, threshold, max_chars, labels)
    return pd.concat([frame, outputs], axis=1)


def _original_label(frame: pd.DataFrame, name: str) -> object:
    return next(c for c in frame.columns if str(c) == name)


def _cell_text(value: object) -> str:
    """A cell as text: missing values are "", anything else its usual text form."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _probabilities(classifier: Classifier, texts: list[str], progress, batch_rows: int,
                   max_chars: int, width: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities [N, width], OOD scores [N] or None without a detector); rows with a blank text
    stay NaN. The engine (a Predictor) gets every text at once: it sorts them by length, so its
    batches carry little padding, and reports progress itself; with a detector the scores come
    from the same forward pass (`predict_details`). Any other classifier gets `batch_rows` texts
    per call, with progress after each."""
    probs = np.full((len(texts), width), np.nan)
    detector = detector_of(classifier)
    scores = None if detector is None else np.full(len(texts), np.nan)
    todo = np.array([i for i, text in enumerate(texts) if text.strip()], dtype=np.int64)
    blank = len(texts) - len(todo)
    if progress is not None:
        progress(0, len(texts))
    if len(todo) and isinstance(classifier, Predictor):
        def engine_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(blank + done, len(texts))

        details = classifier.predict_details([texts[i][:max_chars] for i in todo], engine_progress)
        probs[todo] = _checked(details.probabilities, len(todo), width)
        if scores is not None:
            scores[todo] = details.ood_scores
    else:
        for start in range(0, len(todo), batch_rows):
            index = todo[start:start + batch_rows]
            batch = [texts[i][:max_chars] for i in index]
            if detector is None:
                probs[index] = _checked(classifier.predict_proba(batch), len(batch), width)
            else:
                details = classifier.predict_details(batch)
                probs[index] = _checked(details.probabilities, len(batch), width)
                scores[index] = details.ood_scores
            if progress is not None:
                progress(blank + start + len(index), len(texts))
    if progress is not None:
        progress(len(texts), len(texts))
    return probs, scores


def _checked(probs: object, n: int, width: int) -> np.ndarray:
    array = np.asarray(probs, dtype=np.float64)
    if array.shape != (n, width) or not np.isfinite(array).all():
        raise ValueError(f"the classifier returned an array of shape {array.shape} (finite: "
                         f"{bool(np.isfinite(array).all()) if array.size else 'n/a'}), expected ({n}, "
                         f"{width}) finite probabilities, one per label. Check the classifier's predict_proba.")
    return array


def _output_frame(probs: np.ndarray, scores: np.ndarray | None, detector, texts: list[str], frame: pd.DataFrame,
                  threshold: float | None, max_chars: int, labels: tuple[str, ...]) -> pd.DataFrame:
    names = output_names(frame.columns, threshold, ood=scores is not None, labels=labels)
    scored = ~np.isnan(probs[:, 0])
    best = np.where(scored, np.nan_to_num(probs).argmax(axis=1), -1)
    confidence = probs.max(axis=1, initial=-np.inf, where=~np.isnan(probs))
    confidence = np.where(scored, confidence, np.nan)
    columns: dict[str, object] = {
        names["emotion"]: [labels[i] if i >= 0 else "" for i in best],
        names["confidence"]: np.round(confidence, PROB_DECIMALS),
    }
    for j, label in enumerate(labels):
        columns[names[f"p_{label}"]] = np.round(probs[:, j], PROB_DECIMALS)
    inside = None
    if scores is not None:
        inside = ~detector.is_out_of_distribution(np.nan_to_num(scores, nan=-np.inf))
        columns[names["in_distribution"]] = pd.array([bool(v) if ok else None for v, ok in zip(inside, scored)],
                                                     dtype="boolean")
        columns[names["ood_score"]] = np.round(scores, SCORE_DECIMALS)
    if threshold is not None:
        review = needs_review(probs, threshold, inside)
        columns[names["needs_review"]] = pd.array([bool(r) if ok else None for r, ok in zip(review, scored)],
                                                  dtype="boolean")
    columns[names["note"]] = [_note(text, ok, max_chars) for text, ok in zip(texts, scored)]
    out = pd.DataFrame(columns, index=frame.index)
    out[names["emotion"]] = out[names["emotion"]].astype(object)
    out[names["note"]] = out[names["note"]].astype(object)
    return out


def review_every_row(scored: pd.DataFrame, names: dict) -> None:
    """needs_review = true on every scored row of `scored` (in place; see shift.review_whole_file).
    Rows without a text stay empty."""
    column = names["needs_review"]
    scored.loc[scored[column].notna(), column] = True


def _note(text: str, scored: bool, max_chars: int) -> str:
    if not scored:
        return NOTE_EMPTY
    if len(text) > max_chars:
        return NOTE_LONG.format(n=max_chars)
    return ""


# ---------------------------------------------------------------------------------------------
# Writing


