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
from collections.abc import Sequence

import numpy as np
import pandas as pd

from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.analysis.review import check_threshold, needs_review
from emotion_app.analysis.shift import FileEstimate
from emotion_app.data.tables import resolve_column
from emotion_app.engine.classifier import Predictor, Progress
from emotion_app.labels import EMOTIONS

logger = logging.getLogger(__name__)

MODEL_MAX_CHARS = 4000  # far beyond any model's 512 tokens; keeps tokenising a huge cell cheap
PROB_DECIMALS = 4
SCORE_DECIMALS = 2
NOTE_EMPTY = "empty text: not scored"
NOTE_LONG = "long text: the model read only its first {n:,} characters"


def output_names(input_columns: Sequence[object], threshold: float | None = None,
                 ood: bool = False, labels: Sequence[str] = EMOTIONS) -> dict[str, str]:
    """Plain output name -> the name used in this table (suffixed `_pred` if the input has it).
    `ood`: the model has a shift detector (`classifier.detector`), so in_distribution and ood_score too;
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


def score_frame(classifier: Predictor, frame: pd.DataFrame, text_column: str,
                threshold: float | None = None, progress: Progress | None = None, *,
                max_chars: int = MODEL_MAX_CHARS, estimate: FileEstimate | None = None) -> pd.DataFrame:
    """`frame` with the output columns added; same rows, same order, same index. `estimate`
    (with a shift detector) accumulates the rows for the file's accuracy estimate."""
    labels = tuple(classifier.labels)
    column = resolve_column(str(text_column), [str(c) for c in frame.columns], "the table")
    if threshold is not None:
        check_threshold(threshold)
    texts = [_cell_text(value) for value in frame[_original_label(frame, column)]]
    probs, scores = _probabilities(classifier, texts, progress, max_chars)
    if estimate is not None and scores is not None:
        estimate.add(probs, scores)
    outputs = _output_frame(probs, scores, classifier.detector, texts, frame, threshold, max_chars, labels)
    return pd.concat([frame, outputs], axis=1)


def predict_texts(classifier: Predictor, texts: Sequence[str],
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities [N, labels], checked; OOD scores [N], or None without a shift detector) of
    `texts`, in one call: the engine sorts them by length, so its batches carry little padding, and
    reports progress itself; with a detector the scores come from the same forward pass. The one
    way scoring, the Batch tab and evaluation ask the model."""
    texts = list(texts)
    width = len(classifier.labels)
    if not texts:
        return np.zeros((0, width)), None if classifier.detector is None else np.zeros(0)
    details = classifier.predict_details(texts, progress)
    probs = check_probabilities(details.probabilities, len(texts), width,
                                what="the probabilities the classifier returned")
    if classifier.detector is None:
        return probs, None
    return probs, np.asarray(details.ood_scores, dtype=np.float64)


def _original_label(frame: pd.DataFrame, name: str) -> object:
    return next(c for c in frame.columns if str(c) == name)


def _cell_text(value: object) -> str:
    """A cell as text: missing values are "", anything else its usual text form."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _probabilities(classifier: Predictor, texts: list[str], progress: Progress | None,
                   max_chars: int) -> tuple[np.ndarray, np.ndarray | None]:
    """predict_texts of the texts that are not blank, cut to `max_chars`, with progress counted over
    all rows; the rows with a blank text stay NaN."""
    probs = np.full((len(texts), len(classifier.labels)), np.nan)
    scores = None if classifier.detector is None else np.full(len(texts), np.nan)
    todo = np.array([i for i, text in enumerate(texts) if text.strip()], dtype=np.int64)
    blank = len(texts) - len(todo)
    if progress is not None:
        progress(0, len(texts))

    def rows_done(done: int, _total: int) -> None:
        if progress is not None:
            progress(blank + done, len(texts))

    found, found_scores = predict_texts(classifier, [texts[i][:max_chars] for i in todo], rows_done)
    probs[todo] = found
    if scores is not None:
        scores[todo] = found_scores
    if progress is not None:
        progress(len(texts), len(texts))
    return probs, scores


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


def _note(text: str, scored: bool, max_chars: int) -> str:
    if not scored:
        return NOTE_EMPTY
    if len(text) > max_chars:
        return NOTE_LONG.format(n=max_chars)
    return ""
