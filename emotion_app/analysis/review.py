"""The review rule: which rows get needs_review = true, in one place.

A row needs review when its confidence (largest calibrated probability) is below the review
threshold, or, when the adapter has a shift detector, when it lies outside the training
distribution (`needs_review`). Rows that were not scored (an empty text) never do.

The threshold comes from one of:
* the user, as a number (`check_threshold`);
* a target accuracy, read on the test split's coverage curve stored in metrics.json
  (`resolve_threshold`, `threshold_for_accuracy`): `coverage`, or with a shift detector
  `coverage_in_distribution`, the curve of this very rule (rows unlike the training data are never
  kept; analysis/calibration.py computes both curves);
* the user's own labelled (or corrected) rows, the same rule on their coverage curve
  (`threshold_from_labels`, `review_threshold_for_accuracy`). Labels the user gave beat both.

And a whole file: the threshold's promise was measured on text like the training data. A file with
a shift warning (analysis/shift.py's file estimate) breaks it for every row: no per-row rule reaches
97 % on Reddit text (docs/trust.md), so with a threshold every scored row of such a file needs review
(`review_whole_file`, `review_every_row`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emotion_app.analysis.calibration import check_curve
from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.labels import EMOTIONS, parse_label

# --- the inputs ----------------------------------------------------------------------------------


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"review threshold must be a confidence between 0 and 1, found {threshold!r}: rows whose "
                         "top probability is below it need review (0 reviews nothing).")
    return float(threshold)


def check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise ValueError(f"target accuracy must be a number in (0, 1], found {target!r}. Give it as a fraction, "
                         "e.g. 0.97 for 97%.")
    return float(target)


# --- rows ------------------------------------------------------------------------------------------

def needs_review(probs, threshold: float, in_distribution=None) -> np.ndarray:
    """Boolean per row: its confidence (largest probability) is below `threshold`, or, given the
    shift detector's `in_distribution` flags, it is out of distribution. A row that was not scored
    (NaN probabilities) is not."""
    threshold = check_threshold(threshold)
    probs = check_probabilities(probs, allow_nan=True)
    review = np.nan_to_num(probs.max(axis=1), nan=1.0) < threshold
    return review if in_distribution is None else review | ~np.asarray(in_distribution, dtype=bool)


def review_summary(probs, threshold: float) -> dict:
    """{"rows", "needs_review", "share"} for a batch at this threshold."""
    flags = needs_review(probs, threshold)
    n = int(len(flags))
    return {"rows": n, "needs_review": int(flags.sum()), "share": float(flags.mean()) if n else 0.0}


# --- the whole file --------------------------------------------------------------------------------

def review_whole_file(result: dict | None, threshold: float | None) -> bool:
    """True when every scored row of the file needs review: a review threshold is set and the
    file has a shift warning (`result`: shift.FileEstimate.result(), None without a detector). On a
    shifted file even the most familiar, most confident rows fall far short of the threshold's
    promise (GoEmotions dev: 69.6 % at a 97 % target), so no row is kept automatically. Labels the
    user gives for some rows (threshold_from_labels) are what can set a threshold for such a file."""
    return threshold is not None and result is not None and bool(result["shift_warning"])


def review_every_row(scored: pd.DataFrame, names: dict) -> None:
    """needs_review = true on every scored row of `scored` (in place; when review_whole_file says
    so). Rows without a text stay empty. `names`: predictions.output_names of the table."""
    column = names["needs_review"]
    scored.loc[scored[column].notna(), column] = True


# --- the threshold from a target accuracy ----------------------------------------------------------

def threshold_for_accuracy(curve, target: float) -> float:
    """The lowest threshold whose kept rows reach accuracy >= `target` on a stored coverage curve
    (rows [threshold, coverage, accuracy], as calibration.coverage_curve returns them).

    Lowest, so that as many rows as possible keep their label. Raises ValueError when no
    threshold reaches the target.
    """
    check_target(target)
    rows = check_curve(curve)
    for threshold, _, accuracy in rows:
        if accuracy >= target:
            return threshold
    best = max(rows, key=lambda r: (r[2], r[1]))
    raise ValueError(f"no confidence threshold reaches accuracy {target:.2%}: the best is "
                     f"{best[2]:.2%} (threshold {best[0]:.4f}, coverage {best[1]:.2%}). "
                     "Lower the target accuracy or pass a threshold directly.")


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


# --- the threshold from the user's labels ----------------------------------------------------------

def review_threshold_for_accuracy(confidence, correct, in_distribution, target: float) -> float:
    """Lowest confidence threshold whose kept rows (in distribution AND confidence >= it) reach
    `target` accuracy on labelled rows. OOD rows always need review, so the promise never rests on
    rows unlike those it was measured on. ValueError when no threshold reaches the target."""
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 1 or not np.isfinite(conf).all():
        raise ValueError(f"confidence has shape {conf.shape}: expected a 1-D array of finite numbers, one per row.")
    ok, ind = np.asarray(correct, dtype=bool), np.asarray(in_distribution, dtype=bool)
    if ok.shape != conf.shape or ind.shape != conf.shape:
        raise ValueError(f"confidence, correct and in_distribution must have one value per row, found shapes "
                         f"{conf.shape}, {ok.shape}, {ind.shape}.")
    check_target(target)
    c, k = conf[ind], ok[ind]
    if c.size == 0:
        raise ValueError("no row is in distribution: expected some, to choose a confidence threshold on. "
                         "Every row of this file needs review.")
    order = np.argsort(-c, kind="stable")
    running = np.cumsum(k[order]) / np.arange(1, len(order) + 1)
    last_of_tie = np.r_[c[order][1:] != c[order][:-1], True]  # a threshold keeps every row tied at it
    good = np.flatnonzero(last_of_tie & (running >= target))
    if good.size == 0:
        raise ValueError(f"no confidence threshold reaches accuracy {target:.2%} on the in-distribution rows "
                         f"(best {running.max():.2%}). Lower the target or review every row.")
    return float(c[order][good[-1]])


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
    probs = check_probabilities(probs, None, len(names))
    if len(probs) == 0:
        raise ValueError(f"probabilities have shape {probs.shape}: expected at least one labelled row.")
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
