"""The Evaluation tab: the adapter's stored figures, a live evaluation on a labelled file or the
Hub test split, and the rows behind each cell of the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from emotion_app.analysis.drilldown import prob_columns
from emotion_app.engine.classifier import Predictor
from emotion_app.ui import figures
from emotion_app.ui.common import (
    BATCH_CONCURRENCY,
    UPLOAD_TYPES,
    Limits,
    bullets,
    metrics_summary,
)
from emotion_app.ui.sessions import SessionModels

ANY = "any"


def row_columns(labels: Sequence[str]) -> list[str]:
    """The drill-down table: the row, its labels, one probability per label, and the label-noise flag."""
    return ["row", "text", "true", "predicted", "confidence", *prob_columns(labels), "possibly_mislabeled"]


CONFUSION_VIEWS = ("counts", "share of true label")


def load_hub_test():
    """dair-ai/emotion test split from the Hub (a datasets.Dataset with text and label)."""
    from emotion_app.constants import DEFAULT_DATASET, DEFAULT_DATASET_CONFIG
    from emotion_app.data.labelled import load_hub_splits

    return load_hub_splits(DEFAULT_DATASET, DEFAULT_DATASET_CONFIG, ("test",))["test"]


class EvaluationHandlers:
    """The Evaluation tab's event functions for one classifier."""

    def __init__(self, models: SessionModels, limits: Limits, metrics: dict | None = None, metrics_note: str = "",
                 hub_loader: Callable | None = None):
        self.models = models
        self.limits = limits
        self.metrics = metrics
        self.metrics_note = metrics_note
        self.hub_loader = hub_loader or load_hub_test

    @property
    def labels(self) -> tuple[str, ...]:
        """The app's model's labels (an adapted model keeps its parent's)."""
        return tuple(self.models.default.labels)

    def stored_evaluation(self) -> tuple:
        """The Evaluation tab's start: the adapter's test figures from metrics.json."""
        test = (self.metrics or {}).get("test")
        empty = {"matrix": None, "rows": None, "labels": list(self.labels)}
        if not isinstance(test, dict) or "confusion_matrix" not in test:
            note = self.metrics_note or "The adapter's metrics.json has no test figures."
            return f"{note} Run an evaluation below.", None, None, empty
        title = f"Stored test figures of this adapter (metrics.json, {test.get('n', '?'):,} rows)"
        return (metrics_summary(test, title), figures.per_class_table(test, self.labels),
                figures.confusion_figure(test["confusion_matrix"], self.labels),
                {**empty, "matrix": test["confusion_matrix"]})

    def stored_calibration(self) -> tuple:
        """(reliability figure, coverage figure) from metrics.json, or (None, None) if uncalibrated."""
        from emotion_app.ui.figures import metrics_figures

        try:
            return metrics_figures(self.metrics or {})
        except (ValueError, KeyError, TypeError):
            return None, None

    def evaluate_file(self, path: str | None, progress=gr.Progress(), request: gr.Request = None) -> tuple:
        """Evaluate on an uploaded labelled file: any table the Batch tab reads, with a label column."""
        from emotion_app.data.labelled import read_labeled_file

        if not path:
            raise gr.Error("No file: upload a labelled file (.txt `text;label` lines, or a CSV/TSV/JSON "
                           "Lines/Excel/Parquet table with a text and a label column) first.")
        labels = self.models.classifier(request).labels
        try:  # the file's labels are read as the model's: one it does not have is an error naming the row
            data = read_labeled_file(path, labels=labels, max_bytes=self.limits.max_bytes,
                                     max_rows=self.limits.max_rows)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return self._evaluate(data["text"], data["label"], Path(path).name, progress, request)

    def evaluate_hub(self, progress=gr.Progress(), request: gr.Request = None) -> tuple:
        """Evaluate on dair-ai/emotion test from the Hub."""
        progress(None, desc="Loading dair-ai/emotion test from the Hub")
        from emotion_app.data.labelled import relabel

        try:
            data = self.hub_loader()
        except (OSError, ValueError) as err:
            raise gr.Error(f"Could not load dair-ai/emotion test from the Hugging Face Hub: {err}. "
                           "Check the network, or upload a labelled file instead.") from None
        try:
            data = relabel(data, self.models.classifier(request).labels)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return self._evaluate(data["text"], data["label"], "dair-ai/emotion test (Hub)", progress, request)

    def _evaluate(self, texts: Sequence[str], labels: Sequence[int], source: str, progress, request=None) -> tuple:
        from emotion_app.analysis.calibration import coverage_curve
        from emotion_app.analysis.drilldown import prediction_frame
        from emotion_app.analysis.metrics import label_set_metrics
        from emotion_app.analysis.predictions import predict_texts
        from emotion_app.ui.figures import coverage_figure, reliability_figure

        texts, labels = list(texts), list(labels)
        if len(texts) > self.limits.max_rows:
            raise gr.Error(f"{source} has {len(texts):,} rows, over the limit of {self.limits.max_rows:,} "
                           "here. Evaluate a sample, or use python -m emotion_app evaluate.")
        classifier = self.models.classifier(request)
        progress((0, len(texts)), desc="Evaluating", unit="rows")
        probs, scores = predict_texts(classifier, texts,
                                      lambda done, total: progress((done, total), desc="Evaluating", unit="rows"))
        metrics = label_set_metrics(labels, probs, classifier.labels)
        rows = prediction_frame(texts, labels, probs, classifier.labels)
        summary = metrics_summary(metrics, f"Live evaluation on {source} ({len(texts):,} rows)")
        summary += "\n\n" + bullets(self._trust_lines(probs, labels, scores, metrics["accuracy"], classifier))
        state = {"matrix": metrics["confusion_matrix"], "rows": rows, "labels": list(classifier.labels)}
        return (summary, figures.per_class_table(metrics, classifier.labels), state, reliability_figure(probs, labels),
                coverage_figure(coverage_curve(probs, labels)))

    def refresh(self, state: dict | None, view: str, true: str | None, predicted: str | None) -> tuple:
        """(confusion figure, row count, rows) for the current evaluation and choices."""
        picked = self._cell(state, true, predicted)
        return (self.show_confusion(state, view), self._count_text(picked, true, predicted),
                self._shown_rows(picked))

    def _trust_lines(self, probs: np.ndarray, labels: list, scores: np.ndarray | None, accuracy: float,
                     classifier: Predictor) -> list[str]:
        """Labels the user gave beat estimates: the review threshold chosen on these rows, and the
        unlabelled estimate next to the measured accuracy (when the adapter has a shift detector)."""
        from emotion_app.analysis.review import threshold_from_labels
        from emotion_app.analysis.shift import CHECK_UNAVAILABLE, estimate_file_accuracy
        from emotion_app.constants import DEFAULT_TARGET_ACCURACY

        if not len(probs):
            return []
        detector = classifier.detector
        inside = None if scores is None else ~detector.is_out_of_distribution(scores)
        review = threshold_from_labels(probs, labels, DEFAULT_TARGET_ACCURACY, inside, classifier.labels)
        lines = [f"Review threshold from your labels: {review.describe('labelled')} Use it for files like this one "
                 "rather than the test split's."]
        if scores is None:
            return [*lines, CHECK_UNAVAILABLE]
        estimate = estimate_file_accuracy(detector, probs, scores)
        lines.append(f"Without the labels the estimate would have been {estimate['estimated_accuracy']:.1%} "
                     f"({estimate['estimated_accuracy_low']:.1%}-{estimate['estimated_accuracy_high']:.1%}); "
                     f"measured with them: {accuracy:.1%}. {estimate['out_of_distribution_share']:.1%} of the rows "
                     "are unlike the training data" + (" (a shift warning)." if estimate["shift_warning"] else "."))
        return lines

    def show_confusion(self, state: dict | None, view: str):
        matrix = (state or {}).get("matrix")
        if matrix is None:
            return None
        labels = (state or {}).get("labels") or self.labels
        return figures.confusion_figure(matrix, labels, normalize=view == CONFUSION_VIEWS[1])

    def filter_rows(self, state: dict | None, true: str | None, predicted: str | None) -> pd.DataFrame:
        """Rows of the last live evaluation: misclassified ones, or one confusion-matrix cell when
        both labels are chosen (the diagonal cells are the right predictions)."""
        return self._shown_rows(self._cell(state, true, predicted))

    def count_rows(self, state: dict | None, true: str | None, predicted: str | None) -> str:
        return self._count_text(self._cell(state, true, predicted), true, predicted)

    @staticmethod
    def _cell(state: dict | None, true: str | None, predicted: str | None) -> pd.DataFrame | None:
        from emotion_app.analysis.drilldown import cell_rows

        rows = (state or {}).get("rows")
        if rows is None:
            return None
        return cell_rows(rows, None if true in (None, ANY) else true, None if predicted in (None, ANY) else predicted)

    def _shown_rows(self, picked: pd.DataFrame | None) -> pd.DataFrame:
        if picked is None:
            return pd.DataFrame(columns=row_columns(self.labels))
        columns = row_columns([str(c).removeprefix("p_") for c in picked.columns if str(c).startswith("p_")])
        shown = picked.loc[:, columns].head(self.limits.listed_rows).copy()
        shown["row"] += 1  # people count from 1
        shown[columns[4:-1]] = shown[columns[4:-1]].round(4)
        return shown

    def _count_text(self, picked: pd.DataFrame | None, true: str | None, predicted: str | None) -> str:
        if picked is None:
            return "Run a live evaluation (upload a labelled file, or the Hub test split) to list its rows."
        what = "rows" if true not in (None, ANY) and predicted not in (None, ANY) else "misclassified rows"
        shown = min(len(picked), self.limits.listed_rows)
        return (f"{len(picked):,} {what} (true {true or ANY}, predicted {predicted or ANY}); showing {shown:,}, "
                "most confident first.")


def build(handlers: EvaluationHandlers) -> None:
    """The Evaluation tab's components and events (inside a gr.Tab)."""
    summary_value, table_value, figure_value, state_value = handlers.stored_evaluation()
    reliability_value, coverage_value = handlers.stored_calibration()
    state = gr.State(state_value)
    summary = gr.Markdown(summary_value, elem_id="eval-summary")
    with gr.Row():
        with gr.Column():
            view = gr.Radio(list(CONFUSION_VIEWS), value=CONFUSION_VIEWS[0], label="Confusion matrix shows")
            confusion = gr.Plot(figure_value, label="Confusion matrix", elem_id="eval-confusion")
        with gr.Column():
            per_class = gr.Dataframe(table_value, label="Per label", interactive=False, elem_id="eval-per-class")
    with gr.Row():
        reliability = gr.Plot(reliability_value, label="Reliability (calibration)", elem_id="eval-reliability")
        coverage = gr.Plot(coverage_value, label="Accuracy vs coverage", elem_id="eval-coverage")
    gr.Markdown("### Evaluate again, live\nUpload a labelled file (`text;label` lines, or a CSV/TSV/JSON "
                "Lines/Excel/Parquet table with a text and a label column; labels as the model's names or its ids), "
                "or use the "
                "`dair-ai/emotion` test split from the Hugging Face Hub (needs the network).")
    with gr.Row():
        labelled = gr.File(label="Labelled file", file_types=list(UPLOAD_TYPES),
                           elem_id="eval-file")
        with gr.Column():
            file_button = gr.Button("Evaluate the uploaded file", variant="primary", elem_id="eval-file-button")
            hub_button = gr.Button("Evaluate on dair-ai/emotion test (Hub)", elem_id="eval-hub-button")
    gr.Markdown("### Rows behind the figures")
    with gr.Row():
        true = gr.Dropdown([ANY, *handlers.labels], value=ANY, label="True label", elem_id="eval-true")
        predicted = gr.Dropdown([ANY, *handlers.labels], value=ANY, label="Predicted label", elem_id="eval-predicted")
    count = gr.Markdown(handlers.count_rows(state_value, ANY, ANY))
    rows = gr.Dataframe(handlers.filter_rows(state_value, ANY, ANY), label="Rows", interactive=False,
                        wrap=True, elem_id="eval-rows")
    refresh = {"fn": handlers.refresh, "inputs": [state, view, true, predicted], "outputs": [confusion, count, rows],
               "api_visibility": "private"}
    for trigger, fn, inputs in ((file_button.click, handlers.evaluate_file, [labelled]),
                                (hub_button.click, handlers.evaluate_hub, [])):
        trigger(fn, inputs=inputs, outputs=[summary, per_class, state, reliability, coverage],
                api_visibility="private", concurrency_id="batch",
                concurrency_limit=BATCH_CONCURRENCY).success(**refresh)
    gr.on([view.change, true.change, predicted.change], **refresh)
