"""The stored out-of-distribution detector, as the engine applies it to every scored text.

Score: relative Mahalanobis distance (Ren et al. 2021) of the head's feature vector
(engine/features.py): `min_k d_k(x) - d_0(x)`, where `d_k` uses class mean k and the shared
within-class precision, and `d_0` one background Gaussian over all training rows. Higher means
more unusual; a row is out of distribution when its score is above `threshold` (the validation
split's 95th percentile). Fitting, the P(correct) model and the per-file estimate live in
analysis/shift.py; the files are named and read in artifacts.py.

Cost: two [N, D] x [D, D] matrix products per batch (D = 384 for MiniLM: about 0.3 MFLOP a row,
against about 1 GFLOP for the model's forward pass), since
`d_k(x) = x'Px - 2 (P mu_k)'x + mu_k'P mu_k` shares `x'P` across the classes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_app.artifacts import (
    SHIFT_ARRAYS,
    read_shift_detector,
    write_shift_detector,
)

DEFAULT_SHRINKAGE = 0.01
DEFAULT_EXPECTED_OOD_SHARE = 0.05


@dataclass(eq=False)  # arrays: compare fields yourself
class ShiftDetector:
    """Arrays (float32): `means` [K, D] class means, `precision` [D, D] shared within-class
    precision, `background_mean` [D] and `background_precision` [D, D] of one Gaussian over all
    training rows. Scalars (NaN until analysis.shift.calibrate_detector sets them): `threshold`
    (scores above it are out of distribution), `score_center`/`score_scale` (validation median and
    q95 - median), the P(correct) logistic model (`intercept`, `coef_confidence`, `coef_ood`),
    `atc_threshold`, `reference_accuracy` (validation accuracy) and `expected_ood_share`."""

    means: np.ndarray
    precision: np.ndarray
    background_mean: np.ndarray
    background_precision: np.ndarray
    shrinkage: float = DEFAULT_SHRINKAGE
    threshold: float = math.nan
    score_center: float = math.nan
    score_scale: float = math.nan
    coef_confidence: float = math.nan
    coef_ood: float = math.nan
    intercept: float = math.nan
    atc_threshold: float = math.nan
    reference_accuracy: float = math.nan
    expected_ood_share: float = DEFAULT_EXPECTED_OOD_SHARE
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in SHIFT_ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        k, d = self.means.shape if self.means.ndim == 2 else (0, 0)
        if not (k >= 1 and d >= 1 and self.precision.shape == (d, d) and self.background_mean.shape == (d,)
                and self.background_precision.shape == (d, d)):
            raise ValueError(f"shift detector arrays have shapes means {self.means.shape}, precision "
                             f"{self.precision.shape}, background mean {self.background_mean.shape}, background "
                             f"precision {self.background_precision.shape}: expected [K, D], [D, D], [D], [D, D]. "
                             "Fit the detector again (python -m emotion_app calibrate).")
        precision = self.precision.astype(np.float64)
        means = self.means.astype(np.float64)
        self._class_terms = (precision, means @ precision, np.einsum("kd,kd->k", means @ precision, means))
        self._background_terms = (self.background_mean.astype(np.float64), self.background_precision.astype(np.float64))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def calibrated(self) -> bool:
        return not (math.isnan(self.threshold) or math.isnan(self.atc_threshold))

    def score(self, features) -> np.ndarray:
        """Relative Mahalanobis score [N] of features [N, D]; higher = more unusual."""
        x = check_features(features, self.dim)
        precision, projected_means, mean_terms = self._class_terms
        xp = x @ precision
        class_distances = np.einsum("nd,nd->n", xp, x)[:, None] - 2 * x @ projected_means.T + mean_terms
        background_mean, background_precision = self._background_terms
        centered = x - background_mean
        background = np.einsum("nd,nd->n", centered @ background_precision, centered)
        return class_distances.min(axis=1) - background

    def is_out_of_distribution(self, scores) -> np.ndarray:
        """Boolean [N]: the score is above the calibrated threshold."""
        if math.isnan(self.threshold):
            raise ValueError("the shift detector has no threshold: expected a calibrated detector. Calibrate it on "
                             "the validation split (analysis.shift.calibrate_detector) before using it.")
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def scalars(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SHIFT_ARRAYS}

    def save(self, directory: str | Path) -> list[Path]:
        """Write shift_detector.safetensors + shift_detector.json into `directory` (atomically)."""
        return write_shift_detector(directory, {name: getattr(self, name) for name in SHIFT_ARRAYS}, self.scalars())

    @classmethod
    def load(cls, directory: str | Path) -> ShiftDetector | None:
        """The adapter directory's detector; None when it has none."""
        stored = read_shift_detector(directory)
        if stored is None:
            return None
        arrays, scalars = stored
        known = {f.name for f in dataclasses.fields(cls)} - set(SHIFT_ARRAYS)
        unknown = sorted(set(scalars) - known)
        if unknown:
            raise ValueError(f"the shift detector in {directory} has unknown entries {unknown}: expected only "
                             f"{sorted(known)}. Fit it again with this version (python -m emotion_app calibrate).")
        return cls(**{name: arrays[name] for name in SHIFT_ARRAYS}, **scalars)


def check_features(features, dim: int | None) -> np.ndarray:
    """Float64 [N, D] (N may be 0), or ValueError saying what was expected."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"[N, {dim}]" if dim is not None else "[N, D]"
        raise ValueError(f"features have shape {x.shape}: expected {want}, one row per text. Pass the features of "
                         "the model the detector was fitted on (EmotionClassifier.logits_and_features).")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x).all(axis=1)).sum())
        raise ValueError(f"features hold non-finite values in {bad} rows: expected finite numbers.")
    return x
