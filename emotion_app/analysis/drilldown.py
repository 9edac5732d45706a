"""Confusion-matrix drill-down: the rows behind one confusion-matrix cell (true label x predicted
label), or all misclassified rows, with their probabilities, most confident first.

Possibly mislabeled: dair-ai/emotion was labelled by distant supervision (hashtags), so some
given labels are wrong. A row is flagged when the model is confident in another label
(confidence > 0.9) and gives its given label a probability < 0.05. These are the rows to read
first; the flag is a hint, not a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.engine.classifier import Predictor
from emotion_app.labels import EMOTIONS, parse_label

MISLABEL_MAX_P_TRUE = 0.05
MISLABEL_MIN_CONFIDENCE = 0.9


def prob_columns(labels: Sequence[str]) -> list[str]:
    return [f"p_{name}" for name in labels]


def _check_rows(texts: Sequence[str], true_ids: Sequence[int], probs,
                labels: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = list(texts)
    probs = check_probabilities(probs, len(texts), len(labels))
    if len(true_ids) != len(texts):
        raise ValueError(f"found {len(true_ids)} true labels for {len(texts)} texts: expected one label per text.")
    true_ids = np.array([parse_label(v, labels) for v in true_ids], dtype=int)
    return texts, true_ids, probs


def possibly_mislabeled(true_ids, probs, max_p_true: float = MISLABEL_MAX_P_TRUE,
                        min_confidence: float = MISLABEL_MIN_CONFIDENCE) -> np.ndarray:
    """Boolean per row: p(given label) < max_p_true and the top probability > min_confidence."""
    probs = np.asarray(probs, dtype=float)
    true_ids = np.asarray(true_ids, dtype=int)
    p_true = probs[np.arange(len(true_ids)), true_ids]
    return (p_true < max_p_true) & (probs.max(axis=1) > min_confidence)


def prediction_frame(texts: Sequence[str], true_ids: Sequence[int], probs,
                     labels: Sequence[str] = EMOTIONS) -> pd.DataFrame:
    """All rows: row (position in the input), text, true, predicted, confidence, p_<label>...,
    possibly_mislabeled. Labels as names; probabilities as given (pass calibrated ones), one
    column per label of the model (`labels`)."""
    texts, true_ids, probs = _check_rows(texts, true_ids, probs, labels)
    predicted = probs.argmax(axis=1)
    frame = pd.DataFrame({
        "row": np.arange(len(texts)),
        "text": texts,
        "true": [labels[i] for i in true_ids],
        "predicted": [labels[i] for i in predicted],
        "confidence": probs.max(axis=1),
    })
    for j, column in enumerate(prob_columns(labels)):
        frame[column] = probs[:, j]
    frame["possibly_mislabeled"] = possibly_mislabeled(true_ids, probs)
    return frame


def drilldown(texts: Sequence[str], true_ids: Sequence[int], probs, true: str | int | None = None,
              predicted: str | int | None = None, labels: Sequence[str] = EMOTIONS) -> pd.DataFrame:
    """The rows of one confusion-matrix cell, most confident first.

    `true` and `predicted` are label names or ids. Both given: that cell (the diagonal cells are
    the right predictions). Either left out (None): any label on that side, misclassified rows
    only, so drilldown(texts, y, p) lists every misclassified row. Columns: see prediction_frame.
    """
    frame = prediction_frame(texts, true_ids, probs, labels)
    keep = np.ones(len(frame), dtype=bool)
    if true is not None:
        keep &= (frame["true"] == labels[parse_label(true, labels)]).to_numpy()
    if predicted is not None:
        keep &= (frame["predicted"] == labels[parse_label(predicted, labels)]).to_numpy()
    if true is None or predicted is None:
        keep &= (frame["true"] != frame["predicted"]).to_numpy()
    rows = frame[keep].sort_values("confidence", ascending=False, kind="stable")
    return rows.reset_index(drop=True)


def score_split(classifier: Predictor, texts: Sequence[str], labels: Sequence[int]) -> pd.DataFrame:
    """prediction_frame of a labelled split, with the classifier's (calibrated) probabilities."""
    return prediction_frame(texts, labels, classifier.predict_proba(list(texts)), classifier.labels)


def cell_rows(frame: pd.DataFrame, true: str | int | None = None, predicted: str | int | None = None) -> pd.DataFrame:
    """drilldown on a prediction_frame already computed (e.g. the test split, scored once)."""
    columns = [str(c) for c in frame.columns if str(c).startswith("p_")]
    labels = [c.removeprefix("p_") for c in columns]
    rows = drilldown(frame["text"].tolist(), frame["true"].tolist(), frame[columns].to_numpy(), true, predicted,
                     labels)
    # keep the caller's row numbers (positions in the original split)
    rows["row"] = frame["row"].to_numpy()[rows["row"].to_numpy()]
    return rows
