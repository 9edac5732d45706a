"""Plotly figures and tables for the app: label counts, confusion matrix, per-class report.

Every emotion keeps one colour everywhere (EMOTION_COLORS), so a user learns it once; `neutral` is
grey, and labels of other models (a user's own categories) get muted colours (`label_color`). The
functions take plain numbers (dicts, lists, arrays) and the model's labels, and return plotly
figures or pandas frames; nothing here knows about gradio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from emotion_app.analysis.calibration import (
    N_BINS,
    check_curve,
    expected_calibration_error,
    reliability_bins,
)
from emotion_app.labels import NEUTRAL

# One colour per emotion (colour-blind-friendly Okabe-Ito hues where they fit the mood).
EMOTION_COLORS: dict[str, str] = {
    "sadness": "#0072B2",
    "joy": "#E69F00",
    "love": "#CC79A7",
    "anger": "#D55E00",
    "fear": "#6A3D9A",
    "surprise": "#009E73",
    NEUTRAL: "#8C96A0",
}
OTHER_COLORS = ("#5D6D7E", "#A3917B", "#7B8D6F", "#8E7C93", "#6F8F9E", "#A08C6B")  # other labels, muted
UNSCORED = "(not scored)"
UNSCORED_COLOR = "#BDBDBD"
PER_CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]


def label_color(label: str, labels: Sequence[str] = ()) -> str:
    """The label's colour: its emotion's, else a muted one picked by its place in `labels`."""
    if label.lower() in EMOTION_COLORS:
        return EMOTION_COLORS[label.lower()]
    others = [name for name in labels if name.lower() not in EMOTION_COLORS]
    return OTHER_COLORS[others.index(label) % len(OTHER_COLORS)] if label in others else OTHER_COLORS[0]


def sorted_probabilities(probabilities: Mapping[str, float]) -> list[tuple[str, float]]:
    """(label, probability) pairs, most probable first; ties keep the model's label order."""
    pairs = [(str(label), float(p)) for label, p in probabilities.items()]
    if len(pairs) < 2 or not all(np.isfinite(p) for _, p in pairs):
        raise ValueError(f"probabilities {probabilities!r}: expected one finite probability per label of the model.")
    return sorted(pairs, key=lambda pair: -pair[1])


def label_counts(emotions: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """Rows per label in the model's label order, then the rows without a label (empty text) if any."""
    values = ["" if value is None else str(value) for value in emotions]
    unknown = sorted({value for value in values if value and value not in labels})
    if unknown:
        raise ValueError(f"unknown labels {unknown}: expected only {', '.join(labels)} or an empty "
                         "value for a row that was not scored.")
    counts = {label: values.count(label) for label in labels}
    unscored = values.count("")
    if unscored:
        counts[UNSCORED] = unscored
    return counts


def label_count_figure(counts: Mapping[str, int], title: str = "Rows per label") -> go.Figure:
    """Bars of rows per label (in label order, then the unscored rows), with counts and shares."""
    names = list(counts)
    values = [int(counts[name]) for name in names]
    total = sum(values)
    fig = go.Figure(go.Bar(
        x=names, y=values,
        marker_color=[UNSCORED_COLOR if name == UNSCORED else label_color(name, names) for name in names],
        text=[f"{value:,} ({value / total:.0%})" if total else "0" for value in values],
        textposition="auto", hovertemplate="%{x}: %{y:,} rows<extra></extra>",
    ))
    fig.update_layout(title=title, height=340, margin={"l": 10, "r": 10, "t": 40, "b": 30},
                      yaxis={"title": "rows"}, showlegend=False)
    return fig


def row_normalized(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the recall view); rows without examples stay zero."""
    matrix = np.asarray(matrix, dtype=float)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str], normalize: bool = False,
                     title: str = "") -> go.Figure:
    """Heatmap: true label down, predicted across, in label order; counts or row shares written in.
    Every label of the model is a column; a true label no row carries (neutral on dair-ai/emotion)
    has no row, so the matrix shows the file's labels against the model's answers."""
    counts = _check_matrix(matrix, len(labels))
    present = [i for i in range(len(labels)) if counts[i].sum() > 0] or list(range(len(labels)))
    counts = counts[present]
    shares = row_normalized(counts)
    values = shares if normalize else counts
    text = [[f"{v:.0%}" if normalize else f"{int(v):,}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=list(labels), y=[labels[i] for i in present], text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1 if normalize else None,
        customdata=np.dstack([counts, shares]),
        hovertemplate="true %{y}, predicted %{x}<br>%{customdata[0]:,} rows "
                      "(%{customdata[1]:.1%} of this true label)<extra></extra>",
        colorbar={"tickformat": ".0%"} if normalize else None,
    ))
    default_title = "Confusion matrix (share of each true label)" if normalize else "Confusion matrix (rows)"
    fig.update_layout(
        title=title or default_title, height=460, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"title": "predicted", "side": "top", "type": "category"},
        yaxis={"title": "true", "autorange": "reversed", "type": "category"},
    )
    return fig


def per_class_table(metrics: Mapping, labels: Sequence[str]) -> pd.DataFrame:
    """Per-class precision/recall/F1/support (rounded), one row per label of the model, then the
    macro average."""
    per_class = metrics.get("per_class")
    if not isinstance(per_class, Mapping) or any(label not in per_class for label in labels):
        raise ValueError(f"metrics have no per_class entry for every label: expected keys {list(labels)}, "
                         f"found {sorted(per_class) if isinstance(per_class, Mapping) else per_class!r}. "
                         "Evaluate the adapter again to rewrite its metrics.json.")
    rows = [[label, *(round(float(per_class[label][key]), 4) for key in ("precision", "recall", "f1")),
             int(per_class[label]["support"])] for label in labels]
    macro = [round(float(np.mean([row[i] for row in rows])), 4) for i in (1, 2, 3)]
    rows.append(["macro average", *macro, sum(row[4] for row in rows)])
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def _check_matrix(matrix, size: int) -> np.ndarray:
    counts = np.asarray(matrix)
    if counts.shape != (size, size):
        raise ValueError(f"confusion matrix has shape {counts.shape}: expected ({size}, {size}), one row and "
                         "column per label of the model, true labels down and predicted across in label order.")
    return counts.astype(np.int64)


def reliability_figure(probs, labels, n_bins: int = N_BINS):
    """Reliability diagram of probabilities [N, K] against true labels (plotly)."""
    bins = reliability_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    return reliability_figure_from_bins(bins, title=f"Reliability (ECE {ece:.4f})")



def reliability_figure_from_bins(bins: list[dict], before: list[dict] | None = None, title: str = "Reliability"):
    """Reliability diagram from `reliability_bins` output (e.g. metrics.json's calibration entry).

    Bars: accuracy per confidence bin; the diagonal is perfect calibration. `before`, if given,
    adds the uncalibrated bins as markers.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dash", "color": "gray"}))
    fig.add_trace(go.Bar(
        x=[(b["lower"] + b["upper"]) / 2 for b in bins], y=[b["accuracy"] for b in bins],
        width=[b["upper"] - b["lower"] for b in bins], name="accuracy" if before is None else "calibrated",
        customdata=[[b["count"], b["confidence"]] for b in bins],
        hovertemplate="confidence %{customdata[1]:.3f}<br>accuracy %{y:.3f}<br>%{customdata[0]} rows<extra></extra>",
    ))
    if before is not None:
        fig.add_trace(go.Scatter(x=[b["confidence"] for b in before], y=[b["accuracy"] for b in before],
                                 mode="markers", name="uncalibrated",
                                 customdata=[b["count"] for b in before],
                                 hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>"
                                               "%{customdata} rows<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="confidence", yaxis_title="accuracy",
                      xaxis={"range": [0, 1]}, yaxis={"range": [0, 1]}, bargap=0.05)
    return fig



def coverage_figure(curve, threshold: float | None = None):
    """Accuracy against coverage (plotly); hover shows the threshold. Marks `threshold` if given."""
    import plotly.graph_objects as go

    rows = check_curve(curve)
    fig = go.Figure(go.Scatter(
        x=[r[1] for r in rows], y=[r[2] for r in rows], mode="lines+markers", name="kept rows",
        customdata=[r[0] for r in rows],
        hovertemplate="threshold %{customdata:.4f}<br>coverage %{x:.1%}<br>accuracy %{y:.2%}<extra></extra>",
    ))
    if threshold is not None:
        kept = [r for r in rows if r[0] >= threshold]
        if kept:
            _, coverage, accuracy = kept[0]
            fig.add_trace(go.Scatter(x=[coverage], y=[accuracy], mode="markers", name=f"threshold {threshold:.3f}",
                                     marker={"size": 12, "symbol": "x"}))
    fig.update_layout(title="Accuracy vs coverage (rows kept at each confidence threshold)",
                      xaxis_title="coverage (share of rows labelled automatically)",
                      yaxis_title="accuracy of kept rows", xaxis={"tickformat": ".0%"},
                      yaxis={"tickformat": ".0%"})
    return fig



def metrics_figures(metrics: dict):
    """(reliability figure, coverage figure) from a metrics.json dict, or ValueError if uncalibrated."""
    if "calibration" not in metrics or "coverage" not in metrics:
        raise ValueError("metrics.json has no calibration/coverage entries: expected an adapter calibrated "
                         "by training or `python -m emotion_app calibrate --adapter DIR`. Run that first.")
    cal = metrics["calibration"]
    title = (f"Reliability on test: ECE {cal['test_ece_before']:.4f} -> {cal['test_ece_after']:.4f} "
             f"(T = {cal['temperature']:.3f})")
    return (reliability_figure_from_bins(cal["reliability_after"], cal.get("reliability_before"), title),
            coverage_figure(metrics["coverage"]))
