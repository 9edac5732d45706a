"""Metrics of a classifier on labelled texts: accuracy, F1s, per-class report, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotion_app.analysis.probabilities import check_probabilities
from emotion_app.engine.classifier import Predictor
from emotion_app.labels import EMOTIONS, NEUTRAL, emotion_columns


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], size: int) -> np.ndarray:
    """Counts [size, size]: rows are the true label id, columns the predicted one."""
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def metrics_from_confusion(matrix: np.ndarray, labels: Sequence[str] = EMOTIONS) -> dict:
    """Accuracy, macro/weighted F1 and the per-class report, all derived from the counts (rows and
    columns in `labels` order)."""
    matrix = np.asarray(matrix)
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    n = int(matrix.sum())
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "n": n,
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str] = EMOTIONS) -> dict:
    """All metrics for true ids and predicted probabilities [N, labels], plus the mean log loss."""
    y_true = np.asarray(y_true, dtype=int)
    probs = check_probabilities(probs, len(y_true), len(labels))
    metrics = metrics_from_confusion(confusion_matrix(y_true, probs.argmax(axis=1), len(labels)), labels)
    picked = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    metrics["loss"] = float(-np.log(picked).mean()) if len(y_true) else 0.0
    return metrics


def label_set_metrics(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]) -> dict:
    """classification_metrics over all the model's labels, and, for a model with `neutral` beside
    the six emotions scored on rows that carry no neutral label (dair-ai/emotion), the seed task's
    view too: `six_way` (argmax over the six emotions alone, comparable with six-label models) and
    `called_neutral` (rows whose answer was neutral: wrong in the all-label figures)."""
    metrics = classification_metrics(y_true, probs, labels)
    six = emotion_columns(labels)
    if NEUTRAL not in labels or not six:
        return metrics
    neutral = list(labels).index(NEUTRAL)
    y_true = np.asarray(y_true, dtype=int)
    called = int((np.asarray(probs).argmax(axis=1) == neutral).sum()) if len(y_true) else 0
    metrics["called_neutral"] = {"rows": called, "share": called / len(y_true) if len(y_true) else 0.0}
    if len(y_true) and not (y_true == neutral).any():
        emotions = np.asarray(probs, dtype=float)[:, six]
        position = {column: i for i, column in enumerate(six)}
        metrics["six_way"] = classification_metrics([position[i] for i in y_true],
                                                    emotions / emotions.sum(axis=1, keepdims=True), EMOTIONS)
    return metrics


def evaluate(classifier: Predictor, texts: Sequence[str], ids: Sequence[int]) -> dict:
    """Score `texts` with `classifier` (a Predictor) and compute the metrics in its labels."""
    return label_set_metrics(ids, classifier.predict_proba(list(texts)), classifier.labels)


def format_report(metrics: dict, title: str = "") -> str:
    """A plain-text table of the metrics, for logs and the terminal."""
    lines = [title] if title else []
    if "six_way" in metrics:
        six, called = metrics["six_way"], metrics["called_neutral"]
        lines.append(f"six-way (the six emotions alone): accuracy {six['accuracy']:.4f}  macro-F1 "
                     f"{six['macro_f1']:.4f}; called neutral: {called['rows']} rows ({called['share']:.2%})")
        lines.append("all labels (a neutral answer on an emotional row is wrong):")
    lines.append(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
                 f"weighted-F1 {metrics['weighted_f1']:.4f}  n {metrics['n']}")
    lines.append(f"{'label':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for label, row in metrics["per_class"].items():
        lines.append(f"{label:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                     f"{row['support']:>10d}")
    return "\n".join(lines)
