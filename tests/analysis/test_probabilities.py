"""The one probability check (analysis/probabilities.py) and the modules that take probabilities
through it: the same table is accepted or refused, for the same reason, wherever it arrives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import FakePredictor, peaked

from emotion_app.analysis.calibration import expected_calibration_error
from emotion_app.analysis.drilldown import prediction_frame
from emotion_app.analysis.metrics import classification_metrics
from emotion_app.analysis.predictions import predict_texts, score_frame
from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.analysis.review import needs_review, threshold_from_labels
from emotion_app.labels import EMOTIONS

GOOD = peaked([0, 1, 2], 0.7)


@pytest.mark.parametrize("probs, n_rows, n_labels, message", [
    (np.ones(6) / 6, None, None, r"shape \(6,\): expected \[N, K\] with K >= 2"),
    (np.ones((3, 1)), None, None, r"shape \(3, 1\): expected \[N, K\] with K >= 2"),
    (GOOD, 2, 6, r"shape \(3, 6\): expected \(2, 6\)"),
    (GOOD, None, 5, r"shape \(3, 6\): expected \[N, 5\]"),
    (np.vstack([GOOD, np.full(6, np.nan)]), None, None, r"NaN or infinite values in 1 row\(s\) \(the first is row 3\)"),
    (GOOD * 2, None, None, "row 0 sums to 2.0000"),
    (np.array([[1.5, -0.5]]), None, None, r"smallest value -0.5000\): expected non-negative rows summing to 1"),
])
def test_bad_tables_say_what_was_expected(probs, n_rows, n_labels, message):
    with pytest.raises(ValueError, match=message):
        check_probabilities(probs, n_rows, n_labels)


def test_good_tables_come_back_as_float64_and_unscored_rows_may_be_nan():
    checked = check_probabilities(GOOD.astype(np.float32), 3, 6)
    assert checked.dtype == np.float64 and np.allclose(checked, GOOD)
    with_blank = np.vstack([GOOD, np.full(6, np.nan)])
    assert np.isnan(check_probabilities(with_blank, 4, 6, allow_nan=True)[3]).all()
    with pytest.raises(ValueError, match="row 0 sums to 2.0000"):  # the scored rows are still checked
        check_probabilities(np.vstack([GOOD * 2, np.full(6, np.nan)]), allow_nan=True)
    with pytest.raises(ValueError, match="^the model's answer have shape"):
        check_probabilities(GOOD, 1, 6, what="the model's answer")


@pytest.mark.parametrize("use", [
    lambda p: classification_metrics([0, 1, 2], p),
    lambda p: expected_calibration_error(p, [0, 1, 2]),
    lambda p: prediction_frame(["a", "b", "c"], [0, 1, 2], p),
    lambda p: needs_review(p, 0.5),
    lambda p: threshold_from_labels(p, [0, 1, 2]),
])
def test_every_module_refuses_logits_with_the_same_reason(use):
    use(GOOD)  # accepted
    with pytest.raises(ValueError, match="row 0 sums to .*Pass softmax\\(logits / T\\), not logits"):
        use(np.log(GOOD))


def test_a_model_answering_other_than_probabilities_stops_scoring():
    logits = FakePredictor(lambda texts: np.log(peaked([0] * len(texts), 0.9)))
    with pytest.raises(ValueError, match="the probabilities the classifier returned: row 0 sums to"):
        score_frame(logits, pd.DataFrame({"text": ["a", "b"]}), "text")
    short = FakePredictor(lambda texts: peaked([0], 0.9))
    with pytest.raises(ValueError, match=r"returned have shape \(1, 6\): expected \(2, 6\)"):
        predict_texts(short, ["a", "b"])


def test_predict_texts_asks_the_model_once_for_every_text():
    fake = FakePredictor(lambda texts: peaked([1] * len(texts), 0.8), EMOTIONS)
    done = []
    probs, scores = predict_texts(fake, ["a", "b", "c"], lambda d, total: done.append((d, total)))
    assert fake.calls == [["a", "b", "c"]] and done == [(3, 3)]
    assert probs.shape == (3, 6) and scores is None  # no shift detector: no scores
    empty, none = predict_texts(fake, [])
    assert empty.shape == (0, 6) and none is None and len(fake.calls) == 1  # nothing to ask
