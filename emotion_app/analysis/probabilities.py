"""The one check of a probability table, wherever one arrives (a model's answer, a split's stored
probabilities): [N, K] rows of non-negative numbers summing to 1, one column per label of the model,
in its order."""

from __future__ import annotations

import numpy as np

ROW_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; logits or counts miss by far more


def check_probabilities(probs, n_rows: int | None = None, n_labels: int | None = None, *,
                        allow_nan: bool = False, what: str = "probabilities") -> np.ndarray:
    """`probs` as a float64 array [n_rows, n_labels], or a ValueError saying what is wrong.

    None for `n_rows` or `n_labels`: any count (at least 2 labels). `allow_nan`: rows holding a
    non-finite value stand for rows that were not scored (an empty text) and are not checked
    further. `what` names the table in the message ("the probabilities predict_proba returned")."""
    p = np.asarray(probs, dtype=np.float64)
    labels_ok = p.ndim == 2 and (p.shape[1] == n_labels if n_labels is not None else p.shape[1] >= 2)
    if not labels_ok or (n_rows is not None and p.shape[0] != n_rows):
        raise ValueError(f"{what} have shape {p.shape}: expected {_expected_shape(n_rows, n_labels)}, one row per "
                         "text with one probability per label of the model, in its order.")
    finite = np.isfinite(p).all(axis=1)
    if not allow_nan and not finite.all():
        raise ValueError(f"{what} hold NaN or infinite values in {int((~finite).sum())} row(s) (the first is row "
                         f"{int(np.argmin(finite))}): expected finite numbers.")
    rows = p[finite]
    bad = (np.abs(rows.sum(axis=1) - 1) > ROW_SUM_TOLERANCE) | (rows < 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(finite)[np.argmax(bad)])
        raise ValueError(f"{what}: row {row} sums to {p[row].sum():.4f} (smallest value {p[row].min():.4f}): "
                         "expected non-negative rows summing to 1. Pass softmax(logits / T), not logits.")
    return p


def _expected_shape(n_rows: int | None, n_labels: int | None) -> str:
    if n_rows is not None and n_labels is not None:
        return f"({n_rows}, {n_labels})"
    rows = "N" if n_rows is None else n_rows
    return f"[{rows}, K] with K >= 2" if n_labels is None else f"[{rows}, {n_labels}]"
