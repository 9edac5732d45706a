"""Calibrated confidence: temperature scaling, expected calibration error and the coverage curves.

A classifier's softmax confidence is usually too high. Temperature scaling divides the logits by
one number T, fitted on the validation split to minimise the negative log-likelihood (NLL); it
never changes the argmax, so accuracy and the confusion matrix stay as they are.

What the adapter directory holds after `calibrate_adapter` (or training):
    calibration.json   {"temperature": T}  (read by EmotionClassifier.from_adapter)
    metrics.json       gains
        calibration: {temperature, fitted_on: "validation", n_bins, test_ece_before, test_ece_after,
                      test_nll_before, test_nll_after, validation_nll_before, validation_nll_after,
                      reliability_before, reliability_after}
                      (reliability_*: the test split's 15 confidence bins, see `reliability_bins`)
        coverage:     the test split's coverage curve with calibrated probabilities, a list of
                      [threshold, coverage, accuracy] rows (see `coverage_curve`)
    The `loss` inside metrics.json's validation/test entries stays the uncalibrated one (T = 1);
    their accuracy and F1 are those of the argmax, which temperature does not change.

Coverage: a row keeps its label automatically when its confidence (largest calibrated probability)
is >= a threshold (analysis/review.py has the whole review rule). `coverage_curve` gives, for each
threshold, the share of rows kept (coverage) and the accuracy on those rows;
`in_distribution_coverage` the same when rows unlike the training data are never kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.artifacts import (
    METRICS_FILE,
    read_metrics,
    write_calibration,
    write_json,
)
from emotion_app.engine.classifier import softmax

logger = logging.getLogger(__name__)

N_BINS = 15
# The temperature search range; a fit at either end means the logits are degenerate.
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0
SEARCH_STEPS = 100  # golden-section steps: the bracket shrinks to ~1e-20 of its width
COVERAGE_POINTS = 100  # rows of the stored (compact) coverage curve
THRESHOLD_DECIMALS = 6


# --- checks -------------------------------------------------------------------------------------

def _check_scores(scores, labels, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Float [N, K] scores and int [N] labels in 0..K-1, or a ValueError saying what is wrong."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"{what} have shape {scores.shape}: expected [N, K] with K >= 2 classes "
                         "(one row per example).")
    if len(scores) == 0:
        raise ValueError(f"{what} are empty: expected at least one example.")
    if labels.shape != (len(scores),):
        raise ValueError(f"labels have shape {labels.shape}: expected ({len(scores)},), one label per row "
                         f"of the {what}.")
    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0)):
        raise ValueError(f"labels have dtype {labels.dtype}: expected integer class ids. "
                         "Convert names with labels.parse_label.")
    labels = labels.astype(int)
    bad = (labels < 0) | (labels >= scores.shape[1])
    if bad.any():
        raise ValueError(f"label {labels[bad][0]} at row {int(np.argmax(bad))} is out of range: "
                         f"expected ids 0-{scores.shape[1] - 1}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{what} contain NaN or infinite values (first at row "
                         f"{int(np.argmax(~np.isfinite(scores).all(axis=1)))}): expected finite numbers.")
    return scores, labels


def _check_probs(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (the one check) of at least one row, and their labels."""
    return _check_scores(check_probabilities(probs), labels, "probabilities")


# --- temperature --------------------------------------------------------------------------------

def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean -log p(true label) of softmax(logits / temperature)."""
    logits, labels = _check_scores(logits, labels, "logits")
    return _nll(logits, labels, temperature)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    logp = log_softmax(logits / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on (logits, labels).

    Deterministic: a golden-section search on log T over [0.01, 100]. The NLL is convex in
    1/T, so it has a single minimum there and the search finds it. Logits are the raw,
    uncalibrated ones (EmotionClassifier.logits).
    """
    logits, labels = _check_scores(logits, labels, "logits")
    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return _nll(logits, labels, math.exp(log_t))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(SEARCH_STEPS):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    temperature = math.exp((low + high) / 2)
    if temperature < MIN_TEMPERATURE * 1.01 or temperature > MAX_TEMPERATURE * 0.99:
        logger.warning("The fitted temperature %.4g is at the edge of the search range [%g, %g]: the "
                       "logits are all right (or all wrong) with large margins, so calibration is "
                       "unreliable; fit it on a larger, harder split.", temperature, MIN_TEMPERATURE,
                       MAX_TEMPERATURE)
    return temperature


# --- expected calibration error -----------------------------------------------------------------

def reliability_bins(probs, labels, n_bins: int = N_BINS) -> list[dict]:
    """Confidence bins of equal width: bin i holds rows with confidence in (i/n, (i+1)/n].

    One dict per non-empty bin: lower, upper, count, accuracy (share of those rows whose argmax is
    the true label), confidence (their mean confidence). Confidence = the largest probability.
    """
    probs, labels = _check_probs(probs, labels)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, found {n_bins!r}.")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        members = index == i
        if members.any():
            bins.append({"lower": i / n_bins, "upper": (i + 1) / n_bins, "count": int(members.sum()),
                         "accuracy": float(correct[members].mean()),
                         "confidence": float(confidence[members].mean())})
    return bins


def expected_calibration_error(probs, labels, n_bins: int = N_BINS) -> float:
    """ECE: sum over confidence bins of (rows in bin / N) * |accuracy(bin) - mean confidence(bin)|."""
    bins = reliability_bins(probs, labels, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins))


# --- coverage -----------------------------------------------------------------------------------

def coverage_curve(probs, labels, thresholds: Sequence[float] | None = None) -> list[tuple[float, float, float]]:
    """Rows (threshold, coverage, accuracy), thresholds ascending.

    For each threshold, the rows kept are those whose confidence is >= threshold; coverage is
    their share of all rows and accuracy the share of them predicted right. With no `thresholds`,
    every distinct confidence is one (the exact curve); thresholds that keep no row are left out.
    """
    probs, labels = _check_probs(probs, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    correct_so_far = np.cumsum(correct[order])
    if thresholds is None:
        grid = np.unique(confidence)
    else:
        grid = np.unique(np.asarray(thresholds, dtype=float))
        if grid.size and (not np.all(np.isfinite(grid)) or grid.min() < 0 or grid.max() > 1):
            raise ValueError(f"thresholds must lie in [0, 1], found {grid.min()}..{grid.max()}.")
    # kept[i] = rows with confidence >= grid[i], read off the descending sort
    kept = np.searchsorted(-sorted_conf, -grid, side="right")
    n = len(labels)
    return [(float(t), k / n, float(correct_so_far[k - 1] / k)) for t, k in zip(grid, kept) if k > 0]


def compact_coverage_curve(probs, labels, points: int = COVERAGE_POINTS) -> list[list[float]]:
    """About `points` rows of the coverage curve, evenly spaced in coverage, for metrics.json.

    Each threshold is a confidence rounded down to 6 decimals and each row is exact for that
    threshold; coverage and accuracy are rounded to 6 decimals. Rows are [threshold, coverage, accuracy].
    """
    probs, labels = _check_probs(probs, labels)
    thresholds = np.round(_picked_thresholds(probs.max(axis=1), points), THRESHOLD_DECIMALS)
    return [[t, round(c, 6), round(a, 6)] for t, c, a in coverage_curve(probs, labels, thresholds)]


def in_distribution_coverage(probs, labels, in_distribution, points: int = COVERAGE_POINTS) -> list[list[float]]:
    """About `points` rows [threshold, coverage, accuracy] when rows unlike the training data are never
    kept: kept = in distribution and confidence >= threshold; coverage is the kept share of ALL rows.
    Stored in metrics.json as `coverage_in_distribution` (the curve a target accuracy is read on when
    the adapter has a shift detector)."""
    probs, labels = _check_probs(probs, labels)
    ind = np.asarray(in_distribution, dtype=bool)
    if ind.shape != (len(probs),) or not ind.any():
        raise ValueError(f"in_distribution must mark {len(probs)} rows, some of them true; found shape {ind.shape}.")
    thresholds = _picked_thresholds(probs[ind].max(axis=1), points)
    share = ind.mean()
    curve = coverage_curve(probs[ind], labels[ind], thresholds)
    return [[round(t, 6), round(c * share, 6), round(a, 6)] for t, c, a in curve]


def _picked_thresholds(confidence: np.ndarray, points: int) -> np.ndarray:
    """About `points` confidences evenly spaced in rank, rounded down to THRESHOLD_DECIMALS, so that
    each threshold still keeps the row it was picked from."""
    confidence = np.sort(confidence)
    picks = confidence[np.unique(np.linspace(0, len(confidence) - 1, points).round().astype(int))]
    return np.floor(picks * 10**THRESHOLD_DECIMALS) / 10**THRESHOLD_DECIMALS


def check_curve(curve) -> list[tuple[float, float, float]]:
    rows = []
    for i, row in enumerate(curve or []):
        try:
            threshold, coverage, accuracy = (float(v) for v in row[:3])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"coverage curve row {i} is {row!r}: expected (threshold, coverage, accuracy) "
                             "numbers, as coverage_curve returns.") from None
        rows.append((threshold, coverage, accuracy))
    if not rows:
        raise ValueError("the coverage curve is empty: expected rows (threshold, coverage, accuracy). "
                         "Compute it with coverage_curve or calibrate the adapter.")
    return sorted(rows)


# --- storing it with the adapter ----------------------------------------------------------------

def calibration_metrics(val_logits, val_labels, test_logits, test_labels, n_bins: int = N_BINS) -> dict:
    """Fit T on validation; {"calibration": {...}, "coverage": [...]} to add to metrics.json."""
    val_logits, val_labels = _check_scores(val_logits, val_labels, "validation logits")
    test_logits, test_labels = _check_scores(test_logits, test_labels, "test logits")
    temperature = fit_temperature(val_logits, val_labels)
    before, after = softmax(test_logits), softmax(test_logits / temperature)
    calibration = {
        "temperature": temperature,
        "fitted_on": "validation",
        "n_bins": n_bins,
        "test_ece_before": expected_calibration_error(before, test_labels, n_bins),
        "test_ece_after": expected_calibration_error(after, test_labels, n_bins),
        "test_nll_before": _nll(test_logits, test_labels, 1.0),
        "test_nll_after": _nll(test_logits, test_labels, temperature),
        "validation_nll_before": _nll(val_logits, val_labels, 1.0),
        "validation_nll_after": _nll(val_logits, val_labels, temperature),
        "reliability_before": reliability_bins(before, test_labels, n_bins),
        "reliability_after": reliability_bins(after, test_labels, n_bins),
    }
    return {"calibration": calibration, "coverage": compact_coverage_curve(after, test_labels)}


def calibrate_adapter(adapter_dir: str | Path, val_logits, val_labels, test_logits, test_labels) -> dict:
    """Fit T on validation, write calibration.json and add calibration/coverage to metrics.json.

    `*_logits` are the classifier's raw logits (EmotionClassifier.logits). Other metrics.json
    entries are kept as they are; a missing metrics.json is created. Returns the added entries.
    """
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise ValueError(f"adapter directory {adapter_dir} does not exist: expected a local adapter "
                         "directory (calibration is written into it).")
    added = calibration_metrics(val_logits, val_labels, test_logits, test_labels)
    metrics_path = adapter_dir / METRICS_FILE
    metrics = read_metrics(adapter_dir)
    if metrics is None:
        logger.info("%s does not exist; creating it with the calibration entries only", metrics_path)
        metrics = {}
    metrics.update(added)
    # metrics.json first: calibration.json is what changes the app's probabilities.
    write_json(metrics_path, metrics)
    write_calibration(adapter_dir, added["calibration"]["temperature"])
    return added


