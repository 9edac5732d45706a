"""Temperature scaling, ECE, the coverage curve / review threshold, and the calibrate CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from support import REPO, SPLIT_ROWS, subprocess_env

from emotion_app.analysis import calibration
from emotion_app.analysis.calibration import (
    calibrate_adapter,
    compact_coverage_curve,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    in_distribution_coverage,
    reliability_bins,
)
from emotion_app.analysis.review import threshold_for_accuracy
from emotion_app.artifacts import read_temperature, write_calibration
from emotion_app.engine.classifier import softmax
from emotion_app.ui.figures import coverage_figure, metrics_figures, reliability_figure


def overconfident_logits(n=3000, true_temperature=3.0, seed=0):
    """Labels drawn from softmax(z), logits reported as true_temperature * z: overconfident by 3x."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6)) * 1.5
    p = softmax(z)
    labels = np.array([rng.choice(6, p=row) for row in p])
    return z * true_temperature, labels


def test_fit_temperature_lowers_nll_and_recovers_the_true_temperature():
    logits, labels = overconfident_logits()
    temperature = fit_temperature(logits, labels)
    assert 2.6 < temperature < 3.4
    before = negative_log_likelihood(logits, labels)
    after = negative_log_likelihood(logits, labels, temperature)
    assert after < before - 0.1
    # it is the minimum: nudging T either way does not lower the NLL
    for factor in (0.97, 1.03):
        assert negative_log_likelihood(logits, labels, temperature * factor) >= after
    assert fit_temperature(logits, labels) == temperature  # deterministic


def test_fit_temperature_underconfident_gets_t_below_one():
    logits, labels = overconfident_logits(true_temperature=0.5, seed=1)
    temperature = fit_temperature(logits, labels)
    assert 0.4 < temperature < 0.6


def test_calibration_lowers_ece_and_keeps_argmax():
    logits, labels = overconfident_logits(seed=2)
    temperature = fit_temperature(logits[:1500], labels[:1500])
    before, after = softmax(logits[1500:]), softmax(logits[1500:] / temperature)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    assert expected_calibration_error(after, labels[1500:]) < expected_calibration_error(before, labels[1500:]) / 2


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.55 (right), 0.35 (wrong) with 5 bins of width 0.2:
    # bin (0.8, 1.0]: 2 rows, accuracy 0.5, confidence 0.9 -> |0.5 - 0.9| = 0.4
    # bin (0.4, 0.6]: 1 row, accuracy 1, confidence 0.55 -> 0.45
    # bin (0.2, 0.4]: 1 row, accuracy 0, confidence 0.35 -> 0.35
    probs = np.array([
        [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
        [0.02, 0.9, 0.02, 0.02, 0.02, 0.02],
        [0.55, 0.09, 0.09, 0.09, 0.09, 0.09],
        [0.35, 0.13, 0.13, 0.13, 0.13, 0.13],
    ])
    labels = [0, 0, 0, 1]
    expected = 2 / 4 * 0.4 + 1 / 4 * 0.45 + 1 / 4 * 0.35
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(expected)
    bins = reliability_bins(probs, labels, n_bins=5)
    assert [(b["lower"], b["count"]) for b in bins] == [(0.2, 1), (0.4, 1), (0.8, 2)]
    assert bins[2]["accuracy"] == 0.5 and bins[2]["confidence"] == pytest.approx(0.9)


def test_ece_of_a_perfectly_calibrated_split_is_zero():
    # 4 rows at confidence 0.75, 3 right
    probs = np.tile([0.75, 0.05, 0.05, 0.05, 0.05, 0.05], (4, 1))
    assert expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 6)), "empty"),
    (np.ones((3, 6)), "sums to"),
    (np.full((3, 6), np.nan), "NaN"),
    (np.ones(6) / 6, "expected \\[N, K\\]"),
])
def test_ece_rejects_bad_probabilities(bad, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(bad, [0] * len(bad) if bad.ndim == 2 else [0])


def test_labels_out_of_range_or_wrong_length_are_rejected():
    logits = np.zeros((2, 6))
    with pytest.raises(ValueError, match="out of range"):
        fit_temperature(logits, [0, 6])
    with pytest.raises(ValueError, match="one label per row"):
        fit_temperature(logits, [0])
    with pytest.raises(ValueError, match="integer class ids"):
        fit_temperature(logits, ["joy", "fear"])


def _hand_probs():
    """Five rows: confidences 0.95 (right), 0.9 (right), 0.8 (wrong), 0.7 (right), 0.5 (wrong)."""
    def row(top, label):
        p = np.full(6, (1 - top) / 5)
        p[label] = top
        return p

    probs = np.array([row(0.95, 0), row(0.9, 1), row(0.8, 2), row(0.7, 3), row(0.5, 4)])
    labels = np.array([0, 1, 0, 3, 5])
    return probs, labels


def test_coverage_curve_by_hand():
    probs, labels = _hand_probs()
    curve = coverage_curve(probs, labels)
    expected = [(0.5, 1.0, 3 / 5), (0.7, 0.8, 3 / 4), (0.8, 0.6, 2 / 3), (0.9, 0.4, 1.0), (0.95, 0.2, 1.0)]
    assert len(curve) == len(expected)
    for got, want in zip(curve, expected):
        assert got == pytest.approx(want)


def test_coverage_curve_on_given_thresholds_skips_those_that_keep_nothing():
    probs, labels = _hand_probs()
    curve = coverage_curve(probs, labels, thresholds=[0.0, 0.75, 0.99])
    assert curve == pytest.approx([(0.0, 1.0, 0.6), (0.75, 0.6, 2 / 3)])


def test_threshold_for_accuracy_picks_the_lowest_threshold_that_reaches_the_target():
    curve = coverage_curve(*_hand_probs())
    assert threshold_for_accuracy(curve, 0.6) == pytest.approx(0.5)
    assert threshold_for_accuracy(curve, 0.7) == pytest.approx(0.7)
    assert threshold_for_accuracy(curve, 0.99) == pytest.approx(0.9)
    # works on the JSON form (lists) too, in any order
    stored = json.loads(json.dumps(curve))[::-1]
    assert threshold_for_accuracy(stored, 0.7) == pytest.approx(0.7)


def test_threshold_for_accuracy_unreachable_or_bad_target():
    curve = [(0.5, 1.0, 0.6), (0.9, 0.3, 0.8)]
    with pytest.raises(ValueError, match="no confidence threshold reaches accuracy 90.00%.*best is 80.00%"):
        threshold_for_accuracy(curve, 0.9)
    for bad in (0, 1.5, 95, "0.9", True):
        with pytest.raises(ValueError, match="target accuracy"):
            threshold_for_accuracy(curve, bad)
    with pytest.raises(ValueError, match="empty"):
        threshold_for_accuracy([], 0.5)


def test_the_in_distribution_curve_of_a_split_all_in_distribution_is_the_compact_curve():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(500, 6)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 6, 500)
    assert in_distribution_coverage(probs, labels, np.ones(500, bool)) == compact_coverage_curve(probs, labels)
    half = in_distribution_coverage(probs, labels, np.arange(500) % 2 == 0)
    assert half[0][1] == pytest.approx(0.5) and all(coverage <= 0.5 for _, coverage, _ in half)
    with pytest.raises(ValueError, match="must mark 500 rows, some of them true"):
        in_distribution_coverage(probs, labels, np.zeros(500, bool))


def test_compact_curve_rows_are_exact_and_few():
    rng = np.random.default_rng(3)
    probs = softmax(rng.normal(size=(2000, 6)) * 3)
    labels = rng.integers(0, 6, size=2000)
    compact = compact_coverage_curve(probs, labels)
    assert 50 <= len(compact) <= 100
    assert compact[0][1] == 1.0  # the lowest threshold keeps every row
    for threshold, coverage, accuracy in compact:
        kept = probs.max(axis=1) >= threshold
        assert coverage == pytest.approx(kept.mean(), abs=1e-6)
        assert accuracy == pytest.approx((probs.argmax(axis=1) == labels)[kept].mean(), abs=1e-6)


def test_figures_have_the_data():
    probs, labels = _hand_probs()
    fig = reliability_figure(probs, labels, n_bins=4)
    bars = [t for t in fig.data if t.type == "bar"][0]
    # bins of width 0.25: (0.25, 0.5] holds 0.5 (wrong), (0.5, 0.75] 0.7 (right),
    # (0.75, 1] 0.8 (wrong), 0.9 and 0.95 (right)
    assert list(bars.x) == pytest.approx([0.375, 0.625, 0.875])
    assert list(bars.y) == pytest.approx([0.0, 1.0, 2 / 3])
    curve = coverage_curve(probs, labels)
    fig = coverage_figure(curve, threshold=0.75)
    assert list(fig.data[0].x) == pytest.approx([r[1] for r in curve])
    assert list(fig.data[1].x) == pytest.approx([0.6])  # the 0.75 marker sits at the 0.8 row


def test_write_calibration_is_read_by_the_classifier_loader(tmp_path):
    write_calibration(tmp_path, 1.7)
    assert read_temperature(tmp_path) == 1.7
    with pytest.raises(ValueError, match="positive finite"):
        write_calibration(tmp_path, 0)


def test_calibrate_adapter_adds_entries_and_keeps_the_rest(tmp_path):
    logits, labels = overconfident_logits(n=600, seed=4)
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5}, "name": "x"}))
    added = calibrate_adapter(tmp_path, logits[:300], labels[:300], logits[300:], labels[300:])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == {"accuracy": 0.5} and metrics["name"] == "x"
    cal = metrics["calibration"]
    assert cal == added["calibration"] and cal["fitted_on"] == "validation"
    assert read_temperature(tmp_path) == pytest.approx(cal["temperature"])
    assert cal["test_nll_after"] < cal["test_nll_before"]
    assert cal["test_ece_after"] < cal["test_ece_before"]
    assert cal["test_nll_before"] == pytest.approx(negative_log_likelihood(logits[300:], labels[300:]))
    # the stored coverage curve is the calibrated one
    after = softmax(logits[300:] / cal["temperature"])
    assert metrics["coverage"][0][2] == pytest.approx((after.argmax(1) == labels[300:]).mean(), abs=1e-6)
    reliability, coverage = metrics_figures(metrics)
    assert "ECE" in reliability.layout.title.text and len(coverage.data[0].x) == len(metrics["coverage"])


def test_calibrate_adapter_rejects_a_missing_directory(tmp_path):
    logits, labels = overconfident_logits(n=20)
    with pytest.raises(ValueError, match="does not exist"):
        calibrate_adapter(tmp_path / "nope", logits, labels, logits, labels)


def test_temperature_at_the_search_edge_warns(caplog):
    logits = np.eye(6)[[0, 1, 2, 3, 4, 5] * 3] * 50.0  # all right by huge margins: T -> 0
    with caplog.at_level("WARNING"):
        temperature = fit_temperature(logits, [0, 1, 2, 3, 4, 5] * 3)
    assert temperature == pytest.approx(calibration.MIN_TEMPERATURE, rel=0.02)
    assert "edge of the search range" in caplog.text


def test_calibrate_cli_on_a_trained_adapter(trained_adapter, data_dir, tmp_path):
    import shutil

    from emotion_app.engine.classifier import EmotionClassifier

    adapter = tmp_path / "adapter"
    shutil.copytree(trained_adapter, adapter)
    before_metrics = json.loads((adapter / "metrics.json").read_text())
    done = subprocess.run([sys.executable, "-m", "emotion_app", "calibrate", "--adapter", str(adapter),
                           "--data_dir", str(data_dir)], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=900)  # a hang guard on a busy machine
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test ECE (15 bins)  before" in done.stdout
    metrics = json.loads((adapter / "metrics.json").read_text())
    temperature = json.loads((adapter / "calibration.json").read_text())["temperature"]
    assert metrics["calibration"]["temperature"] == temperature
    assert metrics["test"] == before_metrics["test"]  # accuracy etc. of the argmax: untouched
    # the figures match what the classifier computes from the files the CLI wrote
    classifier = EmotionClassifier.from_adapter(str(adapter))
    assert classifier.temperature == temperature
    texts = [t for t, _ in SPLIT_ROWS["test"]]
    labels = [y for _, y in SPLIT_ROWS["test"]]
    logits = classifier.logits(texts)
    assert metrics["calibration"]["test_nll_after"] == pytest.approx(
        negative_log_likelihood(logits, labels, temperature), rel=1e-4)
    assert metrics["calibration"]["test_ece_after"] == pytest.approx(
        expected_calibration_error(classifier.predict_proba(texts), labels), abs=1e-5)
    assert math.isclose(sum(metrics["calibration"]["reliability_after"][i]["count"]
                            for i in range(len(metrics["calibration"]["reliability_after"]))), len(texts))


def test_calibrate_cli_rejects_a_hub_id(tmp_path, capsys):
    from emotion_app.cli.calibrate import main

    assert main(["--adapter", "user/name", "--data_dir", str(tmp_path)]) == 2
    assert "expected a local adapter directory" in capsys.readouterr().err


def test_training_stores_the_temperature_and_the_curve(trained_adapter, split_rows):
    from emotion_app.engine.classifier import EmotionClassifier

    metrics = json.loads((trained_adapter / "metrics.json").read_text())
    temperature = read_temperature(trained_adapter)
    assert metrics["calibration"]["temperature"] == temperature
    assert metrics["calibration"]["fitted_on"] == "validation"
    assert metrics["coverage"][0][1] == 1.0
    classifier = EmotionClassifier.from_adapter(str(trained_adapter))
    texts = [t for t, _ in split_rows["test"]]
    labels = np.array([y for _, y in split_rows["test"]])
    logits = classifier.logits(texts)
    # test accuracy is the argmax's; the stored NLL before is the T = 1 loss
    assert metrics["test"]["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())
    assert metrics["calibration"]["test_nll_before"] == pytest.approx(metrics["test"]["loss"], rel=1e-4)
    # the fit minimises the validation NLL, so it is never above the uncalibrated one
    assert metrics["calibration"]["validation_nll_after"] <= metrics["calibration"]["validation_nll_before"] + 1e-9


def test_calibrate_cli_takes_the_extra_files_cap_train_py_took(trained_adapter, data_dir, tmp_path, capsys):
    import shutil

    from emotion_app.cli.calibrate import main

    adapter = shutil.copytree(trained_adapter, tmp_path / "adapter")  # the shared fixture is never written
    extra = tmp_path / "extra.csv"
    extra.write_text("text,label\nso happy,joy\n", encoding="utf-8")
    assert main(["--adapter", str(adapter), "--data_dir", str(data_dir), "--detector_only",
                 "--extra_train_files", str(extra), "--extra_train_max_per_label", "0"]) == 2
    assert "--extra_train_max_per_label is 0: expected a positive number" in capsys.readouterr().err
