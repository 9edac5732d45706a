"""Honest confidence on unfamiliar text: fitting the out-of-distribution (OOD) detector, the per-row
P(correct) and the per-file accuracy estimate, with the shift warning the review rule acts on.

Why: temperature-scaled confidence is calibrated on dair-ai/emotion, but on other text (Reddit
comments from GoEmotions) the embedded model stays confident (mean 0.74) while right 42% of the
time. What the classifier "sees" still tells that the text is unfamiliar (docs/trust.md has the
measurements and the candidates compared):

* Row score (engine/ood.py, `ShiftDetector.score`): relative Mahalanobis distance of the features
  the head reads (engine/features.py), fitted here on training rows (`fit_detector`). Both
  covariances get the same shrinkage toward a scaled identity: unequal shrinkage makes the
  difference of the two distances noisy (measured: AUROC 0.44 with Ledoit-Wolf's separate weights).
* Threshold and P(correct) (`calibrate_detector`, on the validation split, never the file judged):
  the threshold keeps 95% of validation in distribution; P(correct) is a two-input logistic model
  on logit(calibrated confidence) and the validation-scaled OOD score (clipped at 0). Its slopes
  are fitted on validation and three shifted copies of it (`shifted_copies`: words dropped, the
  "i feel" opening removed, words shuffled), because validation alone holds too few unfamiliar
  rows to say how fast accuracy falls with the score; its intercept on validation alone.
* File estimate (`FileEstimate`, `estimate_file_accuracy`): ATC (Garg et al. 2022) on P(correct):
  the share of rows above the threshold that, on validation, leaves exactly the validation
  accuracy above it. Interval: a Wilson 95% interval on that share (the limit of a bootstrap over
  rows), widened by |ATC - mean P(correct)|, which is 0 on validation by construction and grows
  as a file moves away from it. Shift warning: more OOD rows than an in-distribution file of this
  size would show (expected share + 3 binomial s.d.), or the interval's top over 5 points below
  the validation accuracy. Everything it needs is four running sums, so a stream of any size
  costs no memory.
* Review: the rule that uses these (OOD rows always need review; with a threshold, a file with a
  shift warning sends every row to review) is analysis/review.py's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion_app.analysis.calibration import in_distribution_coverage
from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.artifacts import METRICS_FILE, SHIFT_FILES, read_metrics, write_json
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.engine.ood import (
    DEFAULT_EXPECTED_OOD_SHARE,
    DEFAULT_SHRINKAGE,
    ShiftDetector,
    check_features,
)

logger = logging.getLogger(__name__)

DEFAULT_FIT_ROWS = 6000  # training rows the detector is fitted on (a seeded sample)
DEFAULT_IN_DISTRIBUTION_SHARE = 0.95  # the threshold keeps this share of validation in distribution
WARNING_SDS = 3.0  # OOD share above expected + this many binomial s.d. -> shift warning
WARNING_ACCURACY_DROP = 0.05  # interval top this far below the validation accuracy -> shift warning
Z_95 = 1.959964
SHIFT_WARNING = "Warning: this file is unlike the training data"
REVIEW_ALL = "Every row needs review"
SHIFTED = "validation_shifted"  # fit_from_passes: the pass over shifted_copies of validation
SHIFT_DROP = 0.3  # share of the words each dropped copy leaves out
# the dair-ai opening "i feel ...", "i am feeling like ...", "im feeling ..." (shifted_copies)
OPENING = re.compile(r"^(i\s+(am|was|m|have been|ve been|had been|just|really|still|always|do|did|also)?\s*"
                     r"(feel|feeling|felt)(\s+like|\s+so|\s+really|\s+very|\s+a bit)?\s+|im\s+(feel|feeling)\s+(like\s+)?)")
CHECK_UNAVAILABLE = ("The check for text unlike the training data is unavailable: this adapter has no shift "
                     "detector (fit one with python -m emotion_app calibrate).")


# --- fitting ---------------------------------------------------------------------------------------

def fit_detector(features, labels, num_classes: int | None = None,
                 shrinkage: float = DEFAULT_SHRINKAGE) -> ShiftDetector:
    """Class means, shared within-class covariance and a background Gaussian from training rows.
    Both covariances get `shrinkage` x (mean eigenvalue) on the diagonal."""
    x = check_features(features, None)
    if num_classes is None:  # the classes the labels name (pass the model's count when some have no row)
        num_classes = int(np.max(labels)) + 1 if len(labels) else 0
    y = _check_labels(labels, len(x), num_classes)
    counts = np.bincount(y, minlength=num_classes)
    if counts.min() < 2:
        raise ValueError(f"every class needs at least 2 training rows to estimate its mean, found counts "
                         f"{counts.tolist()}. Fit on more rows (a few thousand) covering all {num_classes} classes.")
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not 0 < shrinkage < 1:
        raise ValueError(f"shrinkage must be a number in (0, 1), found {shrinkage!r}. {DEFAULT_SHRINKAGE} is a good start.")
    if len(x) < x.shape[1]:
        logger.warning("fitting a %d-dimensional detector on only %d rows: the covariance rests mostly on "
                       "shrinkage; use a few thousand rows", x.shape[1], len(x))
    means = np.stack([x[y == c].mean(axis=0) for c in range(num_classes)])
    within, centered = x - means[y], x - x.mean(axis=0)
    return ShiftDetector(means=means, precision=_shrunk_precision(within.T @ within / len(x), shrinkage),
                         background_mean=x.mean(axis=0),
                         background_precision=_shrunk_precision(centered.T @ centered / len(x), shrinkage),
                         shrinkage=float(shrinkage))


def calibrate_detector(detector: ShiftDetector, features, probs, labels,
                       in_distribution_share: float = DEFAULT_IN_DISTRIBUTION_SHARE,
                       shifted: tuple | None = None) -> ShiftDetector:
    """A copy with the threshold, the P(correct) model and the ATC threshold fitted on held-out
    in-distribution rows (the validation split; never the file to be judged). `probs` are the
    calibrated probabilities the engine returns for those rows.

    `shifted`, (features, probs, labels) of the same rows made unfamiliar (`shifted_copies`), teaches
    P(correct) how accuracy falls as the OOD score grows: validation alone holds few unfamiliar rows,
    so its OOD slope is nearly flat and a file of real text got an estimate far too high (docs/trust.md).
    The slopes are then fitted on both; the intercept, and the threshold and ATC, on validation alone,
    so that an in-distribution file keeps its estimate."""
    if isinstance(in_distribution_share, bool) or not isinstance(in_distribution_share, (int, float)) \
            or not 0.5 <= in_distribution_share < 1:
        raise ValueError(f"in_distribution_share must be a number in [0.5, 1), found {in_distribution_share!r}. "
                         "Use e.g. 0.95 to flag 5% of in-distribution rows.")
    scores, p, correct = _scored_rows(detector, features, probs, labels)
    if len(scores) < 2 or correct.min() == correct.max():
        raise ValueError(f"the {len(scores)} calibration rows are all predicted right or all wrong: expected both, "
                         "to fit P(correct). Calibrate on the whole validation split.")
    center, q = np.quantile(scores, [0.5, in_distribution_share])
    scale = float(q - center) if q > center else 1.0
    design = _design(p, scores, center, scale)
    if shifted is None:
        coef = _fit_logistic(design, correct)
    else:
        if not isinstance(shifted, tuple) or len(shifted) != 3:
            raise ValueError(f"shifted is {type(shifted).__name__}: expected (features, probs, labels) of the shifted "
                             "copies of the validation rows (shifted_copies), or None.")
        shifted_scores, shifted_p, shifted_correct = _scored_rows(detector, *shifted)
        x = _design(shifted_p, shifted_scores, center, scale)
        coef = _fit_logistic(np.vstack([design, x]), np.concatenate([correct, shifted_correct]))
        coef[0] = _fit_intercept(design @ coef[1:], correct, coef[0])
    fitted = dataclasses.replace(detector, threshold=float(q), score_center=float(center), score_scale=scale,
                                 intercept=float(coef[0]), coef_confidence=float(coef[1]), coef_ood=float(coef[2]),
                                 expected_ood_share=1 - float(in_distribution_share),
                                 reference_accuracy=float(correct.mean()))
    # ATC: the share of calibration rows above the threshold equals their accuracy
    fitted.atc_threshold = float(np.quantile(_linear(fitted, p, scores), 1 - correct.mean()))
    logger.info("shift detector calibrated on %d rows: accuracy %.4f, OOD threshold %.4g, P(correct) coefficients "
                "confidence %.3f, OOD %.3f", len(scores), correct.mean(), q, fitted.coef_confidence, fitted.coef_ood)
    return fitted


def shifted_copies(texts: Sequence[str], labels: Sequence[int], seed: int = 0) -> tuple[list[str], list[int]]:
    """Three copies of labelled in-distribution rows made unlike them, labels kept, for
    `calibrate_detector(shifted=...)`: SHIFT_DROP of the words left out at random; the opening
    "i feel (like) ..." / "i am feeling ..." removed where there is one (43 % of dair-ai validation
    starts so, real text seldom does); the words in random order. Generic changes, chosen so that
    none is the style of one real-text set. Seeded: the same rows give the same copies."""
    rng = random.Random(seed)
    texts = [str(text) for text in texts]

    def drop(text: str) -> str:
        words = text.split()
        return " ".join([w for w in words if rng.random() > SHIFT_DROP] or words[:1]) or text

    def shuffle(text: str) -> str:
        words = text.split()
        rng.shuffle(words)
        return " ".join(words) or text

    dropped = [drop(text) for text in texts]
    without_opening = [OPENING.sub("", text) or text for text in texts]
    shuffled = [shuffle(text) for text in texts]
    return [*dropped, *without_opening, *shuffled], [int(label) for label in labels] * 3


def sample_rows(n: int, rows: int = DEFAULT_FIT_ROWS, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded sample of `rows` of `n` rows (all of them when n <= rows)."""
    if n <= rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))


# --- per-row P(correct) and the per-file estimate -----------------------------------------------------

def p_correct(detector: ShiftDetector, probs, scores) -> np.ndarray:
    """P(prediction correct | calibrated confidence, OOD score) [N], from the validation fit."""
    _require_calibrated(detector, "p_correct")
    scores = _check_vector(scores, "scores")
    return _sigmoid(_linear(detector, check_probabilities(probs, len(scores), detector.num_classes), scores))


class FileEstimate:
    """Running sums for one file's accuracy estimate: `add(probs, scores)` per chunk (rows with
    NaN, e.g. empty texts, are counted as rows but not scored), `result()` at the end."""

    def __init__(self, detector: ShiftDetector):
        _require_calibrated(detector, "FileEstimate")
        self.detector = detector
        self.rows = self.scored = self.above = self.out_of_distribution = 0
        self.p_correct_sum = 0.0

    def add(self, probs, scores) -> None:
        scores = _check_vector(scores, "scores", allow_nan=True)
        p = check_probabilities(probs, len(scores), self.detector.num_classes, allow_nan=True)
        usable = np.isfinite(scores) & np.isfinite(p).all(axis=1)
        self.rows += len(scores)
        if not usable.any():
            return
        linear = _linear(self.detector, p[usable], scores[usable])
        self.scored += int(usable.sum())
        self.above += int((linear > self.detector.atc_threshold).sum())
        self.p_correct_sum += float(_sigmoid(linear).sum())
        self.out_of_distribution += int((scores[usable] > self.detector.threshold).sum())

    def result(self) -> dict:
        """rows, scored, estimated_accuracy (+ _low, _high), out_of_distribution_share, shift_warning,
        threshold (the OOD score threshold), reference_accuracy; None figures when nothing was scored."""
        d = self.detector
        if self.scored == 0:
            return {"rows": self.rows, "scored": 0, "estimated_accuracy": None, "estimated_accuracy_low": None,
                    "estimated_accuracy_high": None, "out_of_distribution_share": None, "shift_warning": False,
                    "threshold": float(d.threshold), "reference_accuracy": float(d.reference_accuracy)}
        n = self.scored
        estimate = self.above / n
        gap = abs(estimate - self.p_correct_sum / n)
        low, high = wilson_interval(self.above, n)
        low, high = max(0.0, low - gap), min(1.0, high + gap)
        ood_share = self.out_of_distribution / n
        expected = d.expected_ood_share
        ood_limit = expected + WARNING_SDS * math.sqrt(expected * (1 - expected) / n)
        warning = bool(ood_share > ood_limit or high < d.reference_accuracy - WARNING_ACCURACY_DROP)
        return {"rows": self.rows, "scored": n, "estimated_accuracy": estimate, "estimated_accuracy_low": low,
                "estimated_accuracy_high": high, "out_of_distribution_share": ood_share, "shift_warning": warning,
                "threshold": float(d.threshold), "reference_accuracy": float(d.reference_accuracy)}


def estimate_file_accuracy(detector: ShiftDetector, probs, scores) -> dict:
    """`FileEstimate.result()` for one file's probabilities [N, 6] and OOD scores [N] at once."""
    estimate = FileEstimate(detector)
    estimate.add(probs, scores)
    return estimate.result()


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% with the default z)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"expected 0 <= successes <= n and n >= 1, found successes {successes}, n {n}.")
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def describe_estimate(result: dict | None, reviewing: bool = False, all_reviewed: bool = False) -> list[str]:
    """Plain sentences for a file's estimate (the Batch tab's summary, the score CLI's last line):
    the estimate and the share unlike the training data, the shift warning when it fires, or that
    the check is unavailable (`result` None: the adapter has no shift detector). `reviewing`: a
    review threshold is set, whose promise a shifted file breaks; `all_reviewed`: every row was sent
    to review for it (review.review_whole_file)."""
    if result is None:
        return [CHECK_UNAVAILABLE]
    if not result["scored"]:
        return []
    lines = [f"Estimated accuracy on this file: {result['estimated_accuracy']:.1%} "
             f"({result['estimated_accuracy_low']:.1%}-{result['estimated_accuracy_high']:.1%}); "
             f"{result['out_of_distribution_share']:.1%} of its rows are unlike the training data "
             f"(in-distribution files: about {DEFAULT_EXPECTED_OOD_SHARE:.0%})."]
    if result["shift_warning"]:
        promise = (" and the review threshold's promise do not hold" if reviewing else " do not hold")
        lines.append(f"{SHIFT_WARNING}: the figures measured on held-out data like the training data (about "
                     f"{result['reference_accuracy']:.0%} accuracy){promise} for this file. Check its labels by hand, "
                     "or label a sample and evaluate it.")
        if all_reviewed:
            lines.append(f"{REVIEW_ALL}: no confidence threshold keeps its promise on such a file. A threshold "
                         "from your own labels does: label a sample of its rows and evaluate them (the "
                         "Evaluation tab, or python -m emotion_app evaluate), then use the threshold they give.")
    return lines


# --- what training and calibrate store -------------------------------------------------------------

def fit_for_classifier(classifier: EmotionClassifier, train: tuple[Sequence[str], Sequence[int]],
                       validation: tuple[Sequence[str], Sequence[int]],
                       test: tuple[Sequence[str], Sequence[int]] | None = None, *,
                       rows: int = DEFAULT_FIT_ROWS, seed: int = 0) -> tuple[ShiftDetector, dict]:
    """(calibrated detector, entries for metrics.json) from the classifier's own features, one
    pass per split: fitted on a seeded sample of `rows` training rows, calibrated on validation,
    checked on test. `classifier.temperature` must be the calibrated one."""
    index = sample_rows(len(train[0]), rows, seed)
    splits = {"train": ([train[0][i] for i in index], np.asarray(train[1])[index]), "validation": validation,
              SHIFTED: shifted_copies(*validation, seed=seed)}
    if test is not None:
        splits["test"] = test
    passes = {name: (*classifier.logits_and_features(list(texts)), labels) for name, (texts, labels) in splits.items()}
    info = classifier.info
    metadata = {"feature": f"last hidden state at the {classifier.feature_token} token "
                           "(what the classification head reads)", "seed": seed,
                "engine": " ".join(str(info[k]) for k in ("runtime", "precision") if k in info)}
    return fit_from_passes(passes, classifier.temperature, metadata)


def fit_from_passes(passes: dict, temperature: float, metadata: dict | None = None) -> tuple[ShiftDetector, dict]:
    """The detector from forward passes already made: {"train": (logits, features, labels),
    "validation": ..., optionally SHIFTED (shifted_copies of validation) and "test"}, raw logits
    (divided by `temperature` here). Returns (calibrated detector, {"shift_detector": summary,
    "coverage_in_distribution": test curve})."""
    probs = {name: softmax(np.asarray(logits) / temperature) for name, (logits, _, _) in passes.items()}
    _, train_features, train_labels = passes["train"]
    _, val_features, val_labels = passes["validation"]
    shifted = (passes[SHIFTED][1], probs[SHIFTED], passes[SHIFTED][2]) if SHIFTED in passes else None
    num_classes = np.shape(passes["train"][0])[1]
    detector = calibrate_detector(fit_detector(train_features, train_labels, num_classes), val_features,
                                  probs["validation"], val_labels, shifted=shifted)
    detector.metadata = {**(metadata or {}), "fit_split": "train", "fit_rows": len(train_labels),
                         "calibrated_on": "validation" + (" and its shifted copies (P(correct) slopes)" if shifted else "")}
    summary = {"files": list(SHIFT_FILES), **detector.metadata, "method": "relative Mahalanobis",
               "shrinkage": detector.shrinkage, "threshold": detector.threshold,
               "validation_accuracy": detector.reference_accuracy,
               "validation_flagged": float(detector.is_out_of_distribution(detector.score(val_features)).mean())}
    entries = {"shift_detector": summary}
    if "test" in passes:
        _, test_features, test_labels = passes["test"]
        scores = detector.score(test_features)
        ind = ~detector.is_out_of_distribution(scores)
        summary["test_flagged"] = float(1 - ind.mean())
        summary["test_estimate"] = estimate_file_accuracy(detector, probs["test"], scores)
        entries["coverage_in_distribution"] = in_distribution_coverage(probs["test"], test_labels, ind)
    return detector, entries


def store_detector(adapter_dir: str | Path, detector: ShiftDetector, entries: dict) -> list[Path]:
    """Add `entries` to the adapter's metrics.json, then write the detector's files (what changes
    the engine's behaviour comes last). Other metrics.json entries are kept."""
    adapter_dir = Path(adapter_dir)
    metrics = read_metrics(adapter_dir) or {}
    metrics.update(entries)
    write_json(adapter_dir / METRICS_FILE, metrics)
    return detector.save(adapter_dir)


# --- helpers -----------------------------------------------------------------------------------------

def _linear(detector: ShiftDetector, probs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    design = _design(probs, scores, detector.score_center, detector.score_scale)
    return detector.intercept + design @ np.array([detector.coef_confidence, detector.coef_ood])


def _design(probs, scores, center: float, scale: float) -> np.ndarray:
    confidence = np.clip(np.asarray(probs, dtype=np.float64).max(axis=1), 1e-6, 1 - 1e-6)
    ood = np.maximum((np.asarray(scores, dtype=np.float64) - center) / scale, 0.0)
    return np.column_stack([np.log(confidence / (1 - confidence)), ood])


def _scored_rows(detector: ShiftDetector, features, probs, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(OOD scores, checked probabilities, 1.0 where the prediction is right) of labelled rows."""
    scores = detector.score(features)
    p = check_probabilities(probs, len(scores), detector.num_classes)
    correct = (p.argmax(axis=1) == _check_labels(labels, len(scores), detector.num_classes)).astype(np.float64)
    return scores, p, correct


def _fit_intercept(offset: np.ndarray, y: np.ndarray, start: float, iterations: int = 50) -> float:
    """The intercept b of sigmoid(b + offset) by Newton's method: mean P(correct) = mean of y."""
    b = float(start)
    for _ in range(iterations):
        p = _sigmoid(b + offset)
        step = float((p - y).sum() / max((p * (1 - p)).sum(), 1e-12))
        b -= step
        if abs(step) < 1e-10:
            break
    return b


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """[intercept, coefficients] by Newton's method with a small L2 penalty (not on the intercept)."""
    design = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(design.shape[1])
    penalty = np.diag([0.0] + [l2 * len(x)] * x.shape[1])
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, design.T @ (p - y) + penalty @ w)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def _shrunk_precision(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    ridge = shrinkage * np.trace(cov) / cov.shape[0]
    if not ridge > 0:
        raise ValueError("the training features have zero variance: expected varied feature vectors. "
                         "Check that they are the model's hidden states, not a constant.")
    return np.linalg.inv(cov + ridge * np.eye(cov.shape[0]))


def _sigmoid(z) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def _require_calibrated(detector: ShiftDetector, what: str) -> None:
    if not detector.calibrated:
        raise ValueError(f"{what} needs a calibrated shift detector, found one without thresholds. Call "
                         "calibrate_detector(detector, validation_features, validation_probs, validation_labels).")


def _check_vector(values, name: str, allow_nan: bool = False) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} have shape {v.shape}: expected a 1-D array, one value per row.")
    if not allow_nan and not np.isfinite(v).all():
        raise ValueError(f"{name} hold {int((~np.isfinite(v)).sum())} non-finite values: expected finite numbers.")
    return v


def _check_labels(labels, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels have shape {y.shape}: expected ({n},), one class id per row.")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise ValueError(f"labels have dtype {y.dtype}: expected integer class ids. Map names to ids first "
                         "(emotion_app.labels.parse_label).")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels range over {int(y.min())}..{int(y.max())}: expected ids 0..{num_classes - 1}.")
    return y
