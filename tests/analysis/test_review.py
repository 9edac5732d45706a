"""Confusion-matrix drill-down and the possibly-mislabeled flag (analysis/drilldown.py), and the review
threshold (analysis/review.py)."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_app.analysis.calibration import coverage_curve
from emotion_app.analysis.drilldown import (
    cell_rows,
    drilldown,
    possibly_mislabeled,
    prediction_frame,
    prob_columns,
)
from emotion_app.analysis.metrics import confusion_matrix
from emotion_app.analysis.review import needs_review, resolve_threshold, review_summary
from emotion_app.labels import EMOTIONS


def row(top: float, label: int, second: int | None = None, p_second: float = 0.0) -> np.ndarray:
    """Probabilities with `top` on `label`, optionally `p_second` on `second`, the rest spread evenly."""
    p = np.zeros(6)
    p[label] = top
    if second is not None:
        p[second] = p_second
    rest = [i for i in range(6) if p[i] == 0]
    p[rest] = (1 - p.sum()) / len(rest)
    return p


# text, true id, probabilities
ROWS = [
    ("a", 0, row(0.97, 1, 0, 0.01)),   # sadness -> joy, confident: p(true) 0.01 -> possibly mislabeled
    ("b", 0, row(0.6, 1, 0, 0.3)),     # sadness -> joy, unsure
    ("c", 0, row(0.8, 0)),             # sadness, right
    ("d", 1, row(0.9, 1)),             # joy, right
    ("e", 3, row(0.95, 4, 3, 0.04)),   # anger -> fear, p(true) 0.04 but confidence 0.95 -> flagged
    ("f", 3, row(0.85, 4, 3, 0.01)),   # anger -> fear, confidence 0.85 -> not flagged
    ("g", 1, row(0.7, 0)),             # joy -> sadness
    ("h", 0, row(0.75, 1)),            # sadness -> joy
]
TEXTS = [r[0] for r in ROWS]
TRUE = [r[1] for r in ROWS]
PROBS = np.array([r[2] for r in ROWS])


def test_prediction_frame_columns_and_values():
    frame = prediction_frame(TEXTS, TRUE, PROBS)
    assert list(frame.columns) == ["row", "text", "true", "predicted", "confidence", *prob_columns(EMOTIONS),
                                   "possibly_mislabeled"]
    assert frame["true"].tolist()[:2] == ["sadness", "sadness"]
    assert frame["predicted"].tolist() == ["joy", "joy", "sadness", "joy", "fear", "fear", "sadness", "joy"]
    assert frame["confidence"].tolist() == pytest.approx([0.97, 0.6, 0.8, 0.9, 0.95, 0.85, 0.7, 0.75])
    np.testing.assert_allclose(frame[prob_columns(EMOTIONS)].to_numpy(), PROBS)
    assert frame["possibly_mislabeled"].tolist() == [True, False, False, False, True, False, False, False]


def test_a_cell_lists_its_rows_most_confident_first():
    cell = drilldown(TEXTS, TRUE, PROBS, true="sadness", predicted="joy")
    assert cell["text"].tolist() == ["a", "h", "b"]
    assert cell["row"].tolist() == [0, 7, 1]
    # as many rows as the confusion matrix counts in that cell
    assert len(cell) == confusion_matrix(TRUE, PROBS.argmax(axis=1), 6)[0, 1]
    # ids work as well as names; a diagonal cell lists the right predictions
    assert drilldown(TEXTS, TRUE, PROBS, true=3, predicted=4)["text"].tolist() == ["e", "f"]
    assert drilldown(TEXTS, TRUE, PROBS, true=0, predicted=0)["text"].tolist() == ["c"]
    assert drilldown(TEXTS, TRUE, PROBS, true="love", predicted="joy").empty


def test_leaving_a_side_open_lists_misclassified_rows_only():
    everything = drilldown(TEXTS, TRUE, PROBS)
    assert everything["text"].tolist() == ["a", "e", "f", "h", "g", "b"]
    assert (everything["true"] != everything["predicted"]).all()
    assert drilldown(TEXTS, TRUE, PROBS, true="sadness")["text"].tolist() == ["a", "h", "b"]
    assert drilldown(TEXTS, TRUE, PROBS, predicted="sadness")["text"].tolist() == ["g"]


def test_cell_rows_on_a_scored_frame_keeps_the_split_row_numbers():
    frame = prediction_frame(TEXTS, TRUE, PROBS).iloc[2:]  # e.g. a filtered view
    cell = cell_rows(frame, "anger", "fear")
    assert cell["row"].tolist() == [4, 5]
    assert cell["text"].tolist() == ["e", "f"]


def test_possibly_mislabeled_thresholds_are_strict():
    probs = np.array([row(0.9, 1, 0, 0.05), row(0.91, 1, 0, 0.049)])
    assert possibly_mislabeled([0, 0], probs).tolist() == [False, True]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match=r"shape \(8, 5\): expected \(8, 6\)"):
        drilldown(TEXTS, TRUE, PROBS[:, :5])
    with pytest.raises(ValueError, match="found 7 true labels for 8 texts"):
        drilldown(TEXTS, TRUE[:7], PROBS)
    with pytest.raises(ValueError, match="unknown label 'bored'"):
        drilldown(TEXTS, TRUE, PROBS, true="bored")


def test_needs_review_and_summary():
    flags = needs_review(PROBS, 0.8)
    assert flags.tolist() == [False, True, False, False, False, False, True, True]
    assert review_summary(PROBS, 0.8) == {"rows": 8, "needs_review": 3, "share": 3 / 8}
    assert not needs_review(PROBS, 0.0).any()
    for bad in (-0.1, 1.5, "0.8", None):
        with pytest.raises(ValueError, match="review threshold must be a confidence between 0 and 1"):
            needs_review(PROBS, bad)


def test_resolve_threshold_from_a_target_accuracy():
    metrics = {"coverage": coverage_curve(PROBS, TRUE)}
    # kept at 0.8: rows with confidence >= 0.8 are a, c, d, e, f -> 2 right of 5; at 0.9: a, d, e -> 1/3
    assert resolve_threshold(metrics, threshold=0.5) == 0.5
    assert resolve_threshold(metrics) is None
    # accuracy 0.4 is first reached at threshold 0.8 (2 of 5), not at lower thresholds (2 of 8 ... 2 of 6)
    assert resolve_threshold(metrics, target_accuracy=0.4) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no confidence threshold reaches"):
        resolve_threshold(metrics, target_accuracy=0.9)
    with pytest.raises(ValueError, match="expected one of them"):
        resolve_threshold(metrics, threshold=0.5, target_accuracy=0.9)
    with pytest.raises(ValueError, match="no `coverage` entry"):
        resolve_threshold({}, target_accuracy=0.9)
