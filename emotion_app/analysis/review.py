"""Confusion-matrix drill-down and the review threshold.

Drill-down: the rows behind one confusion-matrix cell (true label x predicted label), or all
misclassified rows, with their probabilities, most confident first.

Possibly mislabeled: dair-ai/emotion was labelled by distant supervision (hashtags), so some
given labels are wrong. A row is flagged when the model is confident in another label
(confidence > 0.9) and gives its given label a probability < 0.05. These are the rows to read
first; the flag is a hint, not a verdict.

Review threshold: a row needs review when its confidence (largest calibrated probability) is
below the threshold, or (with a shift detector) when it lies outside the training distribution;
`resolve_threshold` turns a target accuracy into a threshold with the test coverage curve stored
in metrics.json (`coverage_in_distribution`, the honest rule's curve, when the adapter has a
detector). Labels the user gave beat both: `threshold_from_labels` chooses the threshold on the
user's own labelled (or corrected) rows, the same rule on their coverage curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emotion_app.analysis.calibration import threshold_for_accuracy
from emotion_app.analysis.shift import check_target, review_threshold_for_accuracy
from emotion_app.labels import EMOTIONS, parse_label

MISLABEL_MAX_P_TRUE = 0.05
MISLABEL_MIN_CONFIDENCE = 0.9


def prob_columns(labels: Sequence[str]) -> list[str]:
    return [f"p_{name}" for name in labels]


def _check_rows(texts: Sequence[str], true_ids: Sequence[int], probs,
                labels: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = list(texts)
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (len(texts), len(labels)):
        raise ValueError(f"probabilities have shape {probs.shape}: expected ({len(texts)}, {len(labels)}), "
                         "one row per text in the model's label order.")
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


def needs_review(probs, threshold: float, in_distribution=None) -> np.ndarray:
    """Boolean per row: its confidence (largest probability) is below `threshold`, or, given the
    shift detector's `in_distribution` flags, it is out of distribution. A row that was not scored
    (NaN probabilities) is not."""
    threshold = check_threshold(threshold)
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probabilities have shape {probs.shape}: expected [N, labels], one row per text.")
    review = np.nan_to_num(probs.max(axis=1), nan=1.0) < threshold
    return review if in_distribution is None else review | ~np.asarray(in_distribution, dtype=bool)


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"review threshold must be a confidence between 0 and 1, found {threshold!r}: rows whose "
                         "top probability is below it need review (0 reviews nothing).")
    return float(threshold)


def resolve_threshold(metrics: dict | None, threshold: float | None = None,
                      target_accuracy: float | None = None, in_distribution_only: bool = False) -> float | None:
    """The review threshold from either a threshold or a target accuracy (not both).

    A target accuracy is turned into the lowest threshold that reaches it on the test split,
    using metrics.json's `coverage` curve (so the adapter must be calibrated), or with
    `in_distribution_only` (OOD rows always reviewed) its `coverage_in_distribution` curve when it
    has one. None if neither.
    """
    if threshold is not None and target_accuracy is not None:
        raise ValueError(f"got both a review threshold ({threshold}) and a target accuracy ({target_accuracy}): "
                         "expected one of them. Drop one.")
    if threshold is not None:
        return check_threshold(threshold)
    if target_accuracy is None:
        return None
    curve = (metrics or {}).get("coverage_in_distribution") if in_distribution_only else None
    curve = curve or (metrics or {}).get("coverage")
    if not curve:
        raise ValueError("a target accuracy needs the test coverage curve, but the adapter's metrics.json has no "
                         "`coverage` entry. Calibrate it (python -m emotion_app calibrate --adapter DIR) "
                         "or pass a threshold instead.")
    return threshold_for_accuracy(curve, target_accuracy)


@dataclass
class LabelledReview:
    """What the user's own labelled rows say about the review threshold for `target`."""

    rows: int
    accuracy: float  # of all these rows
    target: float
    threshold: float | None  # None: no threshold reaches the target on these rows
    kept_share: float  # share of the rows kept automatically at that threshold (0 when None)
    kept_accuracy: float | None
    out_of_distribution: int | None  # rows the detector flags (always reviewed); None: no detector

    def describe(self, what: str = "labelled") -> str:
        """e.g. "On your 120 labelled rows, confidence >= 0.80 kept 40% at 91.0% (target 97%)"."""
        start = f"On your {self.rows:,} {what} rows (accuracy {self.accuracy:.1%})"
        ood = (f"; the {self.out_of_distribution:,} unlike the training data always need review"
               if self.out_of_distribution else "")
        if self.threshold is None:
            return (f"{start}, no confidence threshold reaches {self.target:.0%}{ood}: review every row, "
                    "or lower the target.")
        return (f"{start}, confidence >= {self.threshold:.2f} kept {self.kept_share:.0%} at "
                f"{self.kept_accuracy:.1%} (target {self.target:.0%}){ood}.")


def threshold_from_labels(probs, labels: Sequence[int], target: float = 0.97,
                          in_distribution=None, names: Sequence[str] = EMOTIONS) -> LabelledReview:
    """The review threshold for `target` chosen on the user's own labelled rows (their coverage
    curve: the lowest confidence threshold whose kept rows reach the target), with what it keeps.
    With `in_distribution` (the detector's flags), OOD rows are never kept, as in `needs_review`.
    Labels the user gave beat any estimate: use this whenever corrected rows of the file exist."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(names) or len(probs) == 0:
        raise ValueError(f"probabilities have shape {probs.shape}: expected [N, {len(names)}] with N >= 1, one row "
                         "per labelled text.")
    if len(labels) != len(probs):
        raise ValueError(f"found {len(labels)} labels for {len(probs)} rows: expected one label per row.")
    true_ids = np.array([parse_label(v, names) for v in labels], dtype=int)
    correct = probs.argmax(axis=1) == true_ids
    ind = np.ones(len(probs), dtype=bool) if in_distribution is None else np.asarray(in_distribution, dtype=bool)
    confidence = probs.max(axis=1)
    check_target(target)
    try:
        threshold = review_threshold_for_accuracy(confidence, correct, ind, target)
    except ValueError:  # no threshold reaches the target on these rows (or none is in distribution)
        threshold = None
    kept = ind & (confidence >= threshold) if threshold is not None else np.zeros(len(probs), dtype=bool)
    return LabelledReview(rows=len(probs), accuracy=float(correct.mean()), target=float(target),
                          threshold=threshold, kept_share=float(kept.mean()),
                          kept_accuracy=float(correct[kept].mean()) if kept.any() else None,
                          out_of_distribution=None if in_distribution is None else int((~ind).sum()))


def review_summary(probs, threshold: float) -> dict:
    """{"rows", "needs_review", "share"} for a batch at this threshold."""
    flags = needs_review(probs, threshold)
    n = int(len(flags))
    return {"rows": n, "needs_review": int(flags.sum()), "share": float(flags.mean()) if n else 0.0}


def score_split(classifier, texts: Sequence[str], labels: Sequence[int]) -> pd.DataFrame:
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
