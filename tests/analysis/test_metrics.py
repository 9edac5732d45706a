import math

import numpy as np
import pytest
from support import FakePredictor

from emotion_app.analysis.metrics import (
    classification_metrics,
    confusion_matrix,
    evaluate,
    format_report,
    metrics_from_confusion,
)
from emotion_app.labels import EMOTIONS

# Ten examples worked through by hand (ids: 0 sadness .. 5 surprise).
Y_TRUE = [0, 0, 0, 1, 1, 2, 3, 4, 5, 5]
Y_PRED = [0, 0, 1, 1, 1, 2, 3, 5, 5, 0]
EXPECTED_MATRIX = [
    [2, 1, 0, 0, 0, 0],
    [0, 2, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0, 1],
]
# precision = tp / column sum, recall = tp / row sum, f1 = 2pr / (p + r); 0 where undefined
EXPECTED_PER_CLASS = {
    "sadness": (2 / 3, 2 / 3, 2 / 3, 3),
    "joy": (2 / 3, 1.0, 0.8, 2),
    "love": (1.0, 1.0, 1.0, 1),
    "anger": (1.0, 1.0, 1.0, 1),
    "fear": (0.0, 0.0, 0.0, 1),  # never predicted, never right
    "surprise": (0.5, 0.5, 0.5, 2),
}
EXPECTED_ACCURACY = 7 / 10
EXPECTED_MACRO_F1 = (2 / 3 + 0.8 + 1 + 1 + 0 + 0.5) / 6
EXPECTED_WEIGHTED_F1 = (3 * 2 / 3 + 2 * 0.8 + 1 + 1 + 0 + 2 * 0.5) / 10


def _probs() -> np.ndarray:
    """0.5 on the predicted label; 0.2 on the true one when it differs; the rest spread evenly."""
    rows = []
    for true, pred in zip(Y_TRUE, Y_PRED):
        row = np.full(6, 0.1 if true == pred else 0.075)
        row[pred] = 0.5
        if true != pred:
            row[true] = 0.2
        rows.append(row)
    return np.array(rows)


def test_confusion_matrix_rows_true_columns_predicted():
    assert confusion_matrix(Y_TRUE, Y_PRED, 6).tolist() == EXPECTED_MATRIX


def test_metrics_from_confusion_match_hand_computed_values():
    metrics = metrics_from_confusion(np.array(EXPECTED_MATRIX))
    assert metrics["n"] == 10
    assert metrics["accuracy"] == pytest.approx(EXPECTED_ACCURACY)
    assert metrics["macro_f1"] == pytest.approx(EXPECTED_MACRO_F1)
    assert metrics["weighted_f1"] == pytest.approx(EXPECTED_WEIGHTED_F1)
    assert list(metrics["per_class"]) == list(EMOTIONS)
    for label, (precision, recall, f1, support) in EXPECTED_PER_CLASS.items():
        row = metrics["per_class"][label]
        assert row["precision"] == pytest.approx(precision), label
        assert row["recall"] == pytest.approx(recall), label
        assert row["f1"] == pytest.approx(f1), label
        assert row["support"] == support, label
    assert metrics["confusion_matrix"] == EXPECTED_MATRIX


def test_classification_metrics_from_probabilities_with_log_loss():
    probs = _probs()
    assert np.allclose(probs.sum(axis=1), 1.0)
    metrics = classification_metrics(Y_TRUE, probs)
    assert metrics["confusion_matrix"] == EXPECTED_MATRIX
    assert metrics["accuracy"] == pytest.approx(EXPECTED_ACCURACY)
    assert metrics["macro_f1"] == pytest.approx(EXPECTED_MACRO_F1)
    assert metrics["loss"] == pytest.approx(-(7 * math.log(0.5) + 3 * math.log(0.2)) / 10)


def test_metrics_are_plain_json_types():
    import json

    metrics = classification_metrics(Y_TRUE, _probs())
    assert json.loads(json.dumps(metrics)) == metrics


def test_a_zero_probability_on_the_true_label_gives_a_finite_loss():
    probs = np.zeros((1, 6))
    probs[0, 1] = 1.0
    loss = classification_metrics([0], probs)["loss"]
    assert math.isfinite(loss)
    assert loss == pytest.approx(-math.log(1e-12))


def test_perfect_predictions():
    y = list(range(6)) * 2
    metrics = classification_metrics(y, np.eye(6)[y])
    assert metrics["accuracy"] == metrics["macro_f1"] == metrics["weighted_f1"] == 1.0
    assert metrics["confusion_matrix"] == (2 * np.eye(6, dtype=int)).tolist()


def test_no_examples():
    metrics = classification_metrics([], np.zeros((0, 6)))
    assert metrics["n"] == 0
    assert metrics["accuracy"] == 0.0
    assert metrics["loss"] == 0.0


def test_probability_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shape \(3, 6\): expected \(2, 6\)"):
        classification_metrics([0, 1], np.full((3, 6), 1 / 6))
    with pytest.raises(ValueError, match=r"shape \(2, 5\): expected \(2, 6\)"):
        classification_metrics([0, 1], np.full((2, 5), 0.2))


def test_evaluate_scores_texts_in_order_with_the_classifier():
    classifier = FakePredictor(lambda texts: _probs(), EMOTIONS)
    texts = [f"text {i}" for i in range(10)]
    metrics = evaluate(classifier, tuple(texts), Y_TRUE)
    assert classifier.calls == [texts]
    assert metrics["confusion_matrix"] == EXPECTED_MATRIX


def test_format_report_lists_every_label_with_its_figures():
    report = format_report(metrics_from_confusion(np.array(EXPECTED_MATRIX)), "test:")
    lines = report.splitlines()
    assert lines[0] == "test:"
    assert "accuracy 0.7000" in lines[1]
    assert f"macro-F1 {EXPECTED_MACRO_F1:.4f}" in lines[1]
    assert "n 10" in lines[1]
    joy = next(line for line in lines if line.startswith("joy"))
    assert joy.split() == ["joy", "0.6667", "1.0000", "0.8000", "2"]
    assert len(lines) == 3 + len(EMOTIONS)
