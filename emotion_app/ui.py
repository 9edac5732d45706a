"""The Gradio app: Predict, Batch CSV and Evaluation tabs around one classifier.

The only module that imports gradio. `Handlers` holds the event functions as plain methods (text
and file paths in, values and figures out), so tests can call them with a fake classifier;
`build_demo` lays out the page and wires the events. Bad input raises gr.Error with a message
saying what was expected, what was found and how to fix it.

Concurrency (a free Space has 2 vCPUs): short model calls (predict, explain) run two at a time;
long jobs (batch scoring, evaluation) one at a time in their own lane, so a big file does not
block single predictions. Waiting requests queue up to QUEUE_SIZE, then new ones are refused.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from . import figures
from .labels import LABELS

logger = logging.getLogger(__name__)

PREDICT_CONCURRENCY = 2
BATCH_CONCURRENCY = 1
QUEUE_SIZE = 64
ANY = "any"
# The drill-down table: the row, its labels, all six probabilities, and the label-noise flag.
ROW_COLUMNS = ["row", "text", "true", "predicted", "confidence", *[f"p_{label}" for label in LABELS],
               "possibly_mislabeled"]
HEADER_CHOICES = ("detect", "yes", "no")
CONFUSION_VIEWS = ("counts", "share of true label")
PROGRESS_ROWS = 256  # rows per classifier call in a live evaluation (progress is reported after each)
EXAMPLES = [
    "i feel so happy and grateful for all the support from my friends today",
    "i am so angry that they cancelled my flight without any notice",
    "i feel lonely and miserable since she moved away",
    "i was shocked and amazed when i saw the final results",
    "i feel nervous and scared about the surgery tomorrow",
    "i love the way he cares for me, he is so sweet and tender",
]


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; all configurable (see app.py)."""

    max_bytes: int = 50 * 1024 * 1024  # an uploaded table or labelled file
    max_rows: int = 100_000  # rows of an uploaded table or labelled file
    max_text_chars: int = 5_000  # one text in the Predict tab
    preview_rows: int = 50
    listed_rows: int = 500  # rows shown in the misclassified-rows table

    def __post_init__(self):
        for name in ("max_bytes", "max_rows", "max_text_chars", "preview_rows", "listed_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {name} must be a positive whole number, found {value!r}.")


def read_metrics(directory: str | Path | None) -> tuple[dict | None, str]:
    """(metrics.json of the adapter or None, a note for the user when it is missing or broken)."""
    if not directory:
        return None, "This model has no directory, so no stored test figures."
    path = Path(directory) / "metrics.json"
    if not path.is_file():
        return None, f"The adapter has no metrics.json ({path}), so no stored test figures."
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path} could not be read ({err}); stored test figures are not shown."
    if not isinstance(metrics, dict):
        return None, f"{path} holds {type(metrics).__name__}, expected a JSON object; not shown."
    return metrics, ""


def load_hub_test():
    """dair-ai/emotion test split from the Hub (a datasets.Dataset with text and label)."""
    from .config import DEFAULT_DATASET
    from .data import load_hub_splits

    return load_hub_splits(DEFAULT_DATASET, "split", ("test",))["test"]


class Handlers:
    """The app's event functions for one classifier (anything with predict_proba and labels)."""

    def __init__(self, classifier, limits: Limits | None = None, metrics: dict | None = None,
                 metrics_note: str = "", hub_loader: Callable | None = None,
                 output_dir: str | Path | None = None):
        labels = tuple(getattr(classifier, "labels", LABELS))
        if labels != LABELS:
            raise ValueError(f"the classifier has labels {list(labels)}, expected {list(LABELS)} in that "
                             "order. Use an adapter trained with this project's labels.")
        self.classifier = classifier
        self.limits = limits or Limits()
        self.metrics = metrics
        self.metrics_note = metrics_note
        self.hub_loader = hub_loader or load_hub_test
        self.output_dir = Path(output_dir) if output_dir else None

    # --- Predict -------------------------------------------------------------------------------

    def predict(self, text: str | None) -> dict[str, float]:
        """{label: probability}, most probable first (the `predict` API)."""
        text = self._check_text(text)
        probs = np.asarray(self.classifier.predict_proba([text]), dtype=float)
        if probs.shape != (1, len(LABELS)):
            raise gr.Error(f"The model returned probabilities of shape {probs.shape}, expected (1, "
                           f"{len(LABELS)}). The adapter does not fit this app.")
        return dict(figures.sorted_probabilities(dict(zip(LABELS, probs[0].tolist()))))

    def show_prediction(self, probabilities: dict | None) -> tuple:
        """(bar chart, top emotion in words) from predict's output."""
        if not probabilities:
            return None, ""
        top, confidence = figures.sorted_probabilities(probabilities)[0]
        summary = f"### {top} · {confidence:.1%}\nTop emotion and its probability."
        if confidence < 0.5:
            summary += " Below 50 %: the model is unsure, read the text yourself."
        return figures.probability_figure(probabilities), summary

    def explain(self, text: str | None) -> tuple[list, str]:
        """(word importances for gr.HighlightedText, a note) for the predicted emotion."""
        from .explain import explain

        if not text or not text.strip() or len(text) > self.limits.max_text_chars:
            return [], ""
        try:
            result = explain(self.classifier, text)
        except ValueError as err:
            return [], f"No word importances: {err}"
        attributions = result["attributions"]
        strongest = max((abs(score) for _, score in attributions), default=0.0)
        top = max(attributions, key=lambda pair: pair[1])
        note = (f"Red words pushed the model towards **{result['label']}**, purple ones away from it: "
                "how much its probability drops when the word is left out (strongest word fully "
                f"coloured; here **{top[0].strip()}**, {top[1]:+.1%}).")
        # gr.HighlightedText colours by the score in [-1, 1]; scale so the strongest word shows clearly
        scale = 1.0 / strongest if strongest > 0 else 1.0
        return [(piece, round(score * scale, 4)) for piece, score in attributions], note

    def _check_text(self, text: str | None) -> str:
        if text is None or not str(text).strip():
            raise gr.Error("The text is empty: type a sentence (in English) to classify.")
        if len(text) > self.limits.max_text_chars:
            raise gr.Error(f"The text has {len(text):,} characters, over the limit of "
                           f"{self.limits.max_text_chars:,} here: the model reads only its first few "
                           "hundred words anyway. Shorten it, or use the Batch CSV tab for long texts.")
        return text

    # --- Batch CSV -----------------------------------------------------------------------------

    def read_upload(self, path: str | None, header: str = "detect") -> tuple:
        """(text-column dropdown, notes, preview) for a freshly uploaded table (or a new header choice)."""
        if not path:
            return gr.update(choices=[], value=None), "", None
        table = self._read_table(path, header)
        columns = [str(c) for c in table.frame.columns]
        notes = [f"{len(table.frame):,} rows and {len(columns)} columns; the text column looks like "
                 f"**{table.text_column}** (change it below if not).", *table.notes]
        preview = table.frame.head(self.limits.preview_rows)
        return gr.update(choices=columns, value=table.text_column), _bullets(notes), preview

    def score_csv(self, path: str | None, text_column: str | None = None, header: str = "detect",
                  threshold: float | None = 0.0, progress=gr.Progress()) -> tuple:
        """(summary, preview, label-count chart, result file) for an uploaded table (the `score_csv` API).

        `text_column` empty means the detected one; `threshold` 0 (or None) means no review column.
        """
        from .scoring import output_names, score_frame, to_safe_csv

        if not path:
            raise gr.Error("No file: upload a CSV, TSV or `text;label` .txt file first.")
        threshold = self._check_threshold(threshold)
        table = self._read_table(path, header)
        column = text_column or table.text_column
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Scoring", unit="rows")

        try:
            scored = score_frame(self.classifier, table.frame, column, threshold=threshold, progress=report)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        seconds = time.perf_counter() - started
        if len(scored) != len(table.frame):  # the scorer promises this; a broken promise must not pass
            raise gr.Error(f"Scoring returned {len(scored)} rows for {len(table.frame)} input rows; "
                           "nothing was written. Please report this.")
        names = output_names(table.frame.columns, threshold)
        result_path = self._result_path(path)
        to_safe_csv(scored, result_path, excel_bom=True)
        counts = figures.label_counts(scored[names["emotion"]].tolist())
        summary = self._score_summary(scored, names, table, column, threshold, seconds)
        preview = self._score_preview(scored, names, column, threshold)
        return summary, preview, figures.label_count_figure(counts), str(result_path)

    def review_hint(self, threshold: float | None) -> str:
        """What a review threshold does on the stored test split (from metrics.json's coverage)."""
        curve = (self.metrics or {}).get("coverage")
        if not threshold:
            return "Threshold 0: no `needs_review` column."
        if not curve:
            return (f"Rows with confidence below {threshold:.2f} get `needs_review` = true "
                    "(this adapter has no test coverage curve to say how many).")
        kept = [row for row in curve if row[0] >= threshold]
        if not kept:
            return f"At {threshold:.2f} every test row would need review."
        _, coverage, accuracy = kept[0]
        return (f"At {threshold:.2f}, on the test split {coverage:.0%} of the rows keep their label "
                f"automatically, with {accuracy:.1%} accuracy; {1 - coverage:.0%} need review.")

    def _read_table(self, path: str, header: str):
        from .tabular import read_table

        if header not in HEADER_CHOICES:
            raise gr.Error(f"header is {header!r}: expected one of {', '.join(HEADER_CHOICES)}.")
        try:
            return read_table(path, max_bytes=self.limits.max_bytes, max_rows=self.limits.max_rows,
                              header={"detect": None, "yes": True, "no": False}[header])
        except ValueError as err:
            raise gr.Error(str(err)) from None

    @staticmethod
    def _check_threshold(threshold: float | None) -> float | None:
        if threshold is None or threshold == 0:
            return None
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise gr.Error(f"The review threshold is {threshold!r}: expected a number from 0 to 1 "
                           "(0 turns the needs_review column off).")
        return float(threshold)

    def _result_path(self, upload: str) -> Path:
        """A fresh directory per request, so two users never share (or overwrite) a result."""
        base = self.output_dir or Path(tempfile.gettempdir()) / "emotion-app"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=base)) / f"{Path(upload).stem}-emotions.csv"

    @staticmethod
    def _score_summary(scored: pd.DataFrame, names: dict, table, column: str,
                       threshold: float | None, seconds: float) -> str:
        n = len(scored)
        unscored = int((scored[names["emotion"]] == "").sum())
        lines = [f"Scored **{n - unscored:,}** of {n:,} rows in {seconds:.1f} s (text column **{column}**). "
                 "The file below keeps every row and column in order and adds emotion, confidence and "
                 "one probability per emotion."]
        if unscored:
            lines.append(f"{unscored:,} row(s) have an empty text: kept, with an empty emotion and a note.")
        if threshold is not None:
            review = int(scored[names["needs_review"]].fillna(False).astype(bool).sum())
            lines.append(f"**{review:,}** row(s) ({review / max(n, 1):.1%}) have confidence below "
                         f"{threshold:.2f} and need review (`needs_review` column).")
        lines.append("The preview below shows the first rows; the download has every row and column. "
                     "Cells that a spreadsheet would run as a formula start with ' there.")
        return _bullets([*lines, *table.notes])

    def _score_preview(self, scored: pd.DataFrame, names: dict, column: str,
                       threshold: float | None) -> pd.DataFrame:
        wanted = [column, names["emotion"], names["confidence"]]
        wanted += [names["needs_review"]] if threshold is not None else []
        wanted += [names["note"]]
        preview = scored.loc[:, wanted].head(self.limits.preview_rows).copy()
        preview.insert(0, "row", range(1, len(preview) + 1))
        return preview

    # --- Evaluation ----------------------------------------------------------------------------

    def stored_evaluation(self) -> tuple:
        """The Evaluation tab's start: the adapter's test figures from metrics.json."""
        test = (self.metrics or {}).get("test")
        if not isinstance(test, dict) or "confusion_matrix" not in test:
            note = self.metrics_note or "The adapter's metrics.json has no test figures."
            return f"{note} Run an evaluation below.", None, None, {"matrix": None, "rows": None}
        title = f"Stored test figures of this adapter (metrics.json, {test.get('n', '?'):,} rows)"
        return (_metrics_summary(test, title), figures.per_class_table(test),
                figures.confusion_figure(test["confusion_matrix"]),
                {"matrix": test["confusion_matrix"], "rows": None})

    def stored_calibration(self) -> tuple:
        """(reliability figure, coverage figure) from metrics.json, or (None, None) if uncalibrated."""
        from .calibration import metrics_figures

        try:
            return metrics_figures(self.metrics or {})
        except (ValueError, KeyError, TypeError):
            return None, None

    def evaluate_file(self, path: str | None, progress=gr.Progress()) -> tuple:
        """Evaluate on an uploaded labelled file (text + label)."""
        from .data import read_labeled_file

        if not path:
            raise gr.Error("No file: upload a labelled file (.txt `text;label` lines, or .csv/.tsv/"
                           ".jsonl/.parquet with text and label columns) first.")
        size = Path(path).stat().st_size
        if size > self.limits.max_bytes:
            raise gr.Error(f"{Path(path).name} is {size:,} bytes, over the limit of {self.limits.max_bytes:,} "
                           "bytes here. Evaluate a sample, or use python -m emotion_app.evaluate --file.")
        try:
            data = read_labeled_file(path)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return self._evaluate(data["text"], data["label"], Path(path).name, progress)

    def evaluate_hub(self, progress=gr.Progress()) -> tuple:
        """Evaluate on dair-ai/emotion test from the Hub."""
        progress(None, desc="Loading dair-ai/emotion test from the Hub")
        try:
            data = self.hub_loader()
        except (OSError, ValueError) as err:
            offline = os.environ.get("HF_HUB_OFFLINE", "")
            hint = (" The app runs with HF_HUB_OFFLINE=1 (set because the model is local);"
                    " start it with HF_HUB_OFFLINE=0 to allow Hub downloads." if offline in ("1", "true", "True")
                    else "")
            raise gr.Error(f"Could not load dair-ai/emotion test from the Hugging Face Hub: {err}.{hint} "
                           "Or upload a labelled file instead.") from None
        return self._evaluate(data["text"], data["label"], "dair-ai/emotion test (Hub)", progress)

    def _evaluate(self, texts: Sequence[str], labels: Sequence[int], source: str, progress) -> tuple:
        from .calibration import coverage_curve, coverage_figure, reliability_figure
        from .evaluation import classification_metrics
        from .review import prediction_frame

        texts, labels = list(texts), list(labels)
        if len(texts) > self.limits.max_rows:
            raise gr.Error(f"{source} has {len(texts):,} rows, over the limit of {self.limits.max_rows:,} "
                           "here. Evaluate a sample, or use python -m emotion_app.evaluate.")
        probs = self._probabilities(texts, progress)
        metrics = classification_metrics(labels, probs)
        rows = prediction_frame(texts, labels, probs)
        summary = _metrics_summary(metrics, f"Live evaluation on {source} ({len(texts):,} rows)")
        state = {"matrix": metrics["confusion_matrix"], "rows": rows}
        return (summary, figures.per_class_table(metrics), state, reliability_figure(probs, labels),
                coverage_figure(coverage_curve(probs, labels)))

    def refresh(self, state: dict | None, view: str, true: str | None, predicted: str | None) -> tuple:
        """(confusion figure, row count, rows) for the current evaluation and choices."""
        return (self.show_confusion(state, view), self.count_rows(state, true, predicted),
                self.filter_rows(state, true, predicted))

    def _probabilities(self, texts: list[str], progress) -> np.ndarray:
        parts = []
        progress((0, len(texts)), desc="Evaluating", unit="rows")
        for start in range(0, len(texts), PROGRESS_ROWS):
            parts.append(np.asarray(self.classifier.predict_proba(texts[start:start + PROGRESS_ROWS]), dtype=float))
            progress((min(start + PROGRESS_ROWS, len(texts)), len(texts)), desc="Evaluating", unit="rows")
        return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)))

    def show_confusion(self, state: dict | None, view: str):
        matrix = (state or {}).get("matrix")
        if matrix is None:
            return None
        return figures.confusion_figure(matrix, normalize=view == CONFUSION_VIEWS[1])

    def filter_rows(self, state: dict | None, true: str | None, predicted: str | None) -> pd.DataFrame:
        """Rows of the last live evaluation: misclassified ones, or one confusion-matrix cell when
        both labels are chosen (the diagonal cells are the right predictions)."""
        from .review import cell_rows

        rows = (state or {}).get("rows")
        if rows is None:
            return pd.DataFrame(columns=ROW_COLUMNS)
        picked = cell_rows(rows, None if true in (None, ANY) else true,
                           None if predicted in (None, ANY) else predicted)
        shown = picked.loc[:, ROW_COLUMNS].head(self.limits.listed_rows).copy()
        shown["row"] += 1  # people count from 1
        shown[ROW_COLUMNS[4:-1]] = shown[ROW_COLUMNS[4:-1]].round(4)
        return shown

    def count_rows(self, state: dict | None, true: str | None, predicted: str | None) -> str:
        rows = (state or {}).get("rows")
        if rows is None:
            return "Run a live evaluation (upload a labelled file, or the Hub test split) to list its rows."
        from .review import cell_rows

        n = len(cell_rows(rows, None if true in (None, ANY) else true, None if predicted in (None, ANY) else predicted))
        what = "rows" if true not in (None, ANY) and predicted not in (None, ANY) else "misclassified rows"
        shown = min(n, self.limits.listed_rows)
        return f"{n:,} {what} (true {true or ANY}, predicted {predicted or ANY}); showing {shown:,}, most confident first."


def model_info(classifier, metrics: dict | None) -> str:
    """The model panel: base, adapter, labels and the stored test figures."""
    info = getattr(classifier, "info", {}) or {}
    lines = [f"**Base model:** `{info.get('base_model', 'unknown')}`",
             f"**Adapter:** `{info.get('adapter', 'unknown')}`",
             f"**Labels:** {', '.join(LABELS)}"]
    temperature = getattr(classifier, "temperature", 1.0)
    if temperature != 1.0:
        lines.append(f"**Calibration:** temperature {temperature:.3f} (probabilities are calibrated)")
    test = (metrics or {}).get("test")
    if isinstance(test, dict) and "accuracy" in test:
        lines.append(f"**Test set:** accuracy {test['accuracy']:.1%}, macro-F1 {test['macro_f1']:.3f} "
                     f"on {test.get('n', 0):,} rows")
    return " · ".join(lines)


def _metrics_summary(metrics: dict, title: str) -> str:
    text = (f"**{title}**\n\naccuracy **{metrics['accuracy']:.1%}** · macro-F1 **{metrics['macro_f1']:.3f}** · "
            f"weighted-F1 {metrics.get('weighted_f1', float('nan')):.3f} · {metrics.get('n', 0):,} rows")
    return text


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines if line)


def build_demo(classifier, *, limits: Limits | None = None, metrics: dict | None = None,
               hub_loader: Callable | None = None, output_dir: str | Path | None = None,
               title: str = "Emotion classifier") -> gr.Blocks:
    """The app around `classifier` (queue configured). metrics: the adapter's metrics.json, read
    from classifier.info["directory"] unless given."""
    note = ""
    if metrics is None:
        metrics, note = read_metrics((getattr(classifier, "info", {}) or {}).get("directory"))
    handlers = Handlers(classifier, limits, metrics, note, hub_loader, output_dir)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\nSix emotions in English text: {', '.join(LABELS)}. "
                    "Type a sentence, label a whole spreadsheet, or check how well the model does.")
        gr.Markdown(model_info(classifier, metrics), elem_id="model-info")
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                _predict_tab(handlers)
            with gr.Tab("Batch CSV", id="batch"):
                _batch_tab(handlers)
            with gr.Tab("Evaluation", id="evaluation"):
                _evaluation_tab(handlers)
    demo.queue(default_concurrency_limit=PREDICT_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def _predict_tab(handlers: Handlers) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            text = gr.Textbox(label="Text", lines=3, placeholder="e.g. i feel so happy today",
                              max_length=handlers.limits.max_text_chars, elem_id="predict-text")
            button = gr.Button("Classify", variant="primary", elem_id="predict-button")
            gr.Examples(EXAMPLES, inputs=text, label="Examples (click one, then Classify)")
        with gr.Column(scale=1):
            top = gr.Markdown(elem_id="predict-top")
            chart = gr.Plot(label="Probabilities", elem_id="predict-chart")
    with gr.Accordion("Why? Word importance", open=True):
        words = gr.HighlightedText(label="Word importance for the top emotion", elem_id="predict-words",
                                   show_legend=False)
        words_note = gr.Markdown()
    with gr.Accordion("API output (what `predict` returns)", open=False):
        probabilities = gr.JSON(label="probabilities", elem_id="predict-json")
    event = gr.on([button.click, text.submit], handlers.predict, inputs=text, outputs=probabilities,
                  api_name="predict", concurrency_id="predict", concurrency_limit=PREDICT_CONCURRENCY,
                  api_description="Probabilities of the six emotions for one text, most probable first.")
    event.success(handlers.show_prediction, inputs=probabilities, outputs=[chart, top],
                  api_visibility="private", show_progress="hidden")
    event.success(handlers.explain, inputs=text, outputs=[words, words_note], api_visibility="private",
                  concurrency_id="predict", show_progress="minimal")


def _batch_tab(handlers: Handlers) -> None:
    limits = handlers.limits
    gr.Markdown(
        "Upload a table (CSV, TSV, `text;label` .txt, JSON Lines or Excel .xlsx) with one text per row. "
        "You get it back with every row and column in order, plus `emotion`, `confidence` and one "
        f"`p_<emotion>` column per emotion. Limits here: {limits.max_bytes / 1024 / 1024:.0f} MB and "
        f"{limits.max_rows:,} rows per file (the command line `python -m emotion_app.score` has none).")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Table to label", file_types=[".csv", ".tsv", ".txt", ".jsonl", ".xlsx"],
                             elem_id="batch-file")
            with gr.Row():
                column = gr.Dropdown(label="Text column", choices=[], allow_custom_value=True,
                                     info="Detected on upload; pick another if it is wrong.",
                                     elem_id="batch-column")
                header = gr.Radio(list(HEADER_CHOICES), value="detect", label="First row is a header")
            threshold = gr.Slider(0, 1, value=0, step=0.01, label="Review threshold",
                                  info="Rows below this confidence get needs_review = true. 0: off.")
            hint = gr.Markdown(handlers.review_hint(0))
            button = gr.Button("Label the file", variant="primary", elem_id="batch-button")
        with gr.Column():
            notes = gr.Markdown(elem_id="batch-notes")
            summary = gr.Markdown(elem_id="batch-summary", label="Summary")
            result = gr.File(label="Result (CSV)", interactive=False, elem_id="batch-result")
    counts = gr.Plot(label="Rows per emotion", elem_id="batch-counts")
    preview = gr.Dataframe(label="Preview",
                           interactive=False, wrap=True, elem_id="batch-preview")
    gr.on([upload.change, header.change], handlers.read_upload, inputs=[upload, header],
          outputs=[column, notes, preview], api_visibility="private")
    threshold.change(handlers.review_hint, inputs=threshold, outputs=hint, api_visibility="private",
                     queue=False)
    button.click(handlers.score_csv, inputs=[upload, column, header, threshold],
                 outputs=[summary, preview, counts, result], api_name="score_csv",
                 concurrency_id="batch", concurrency_limit=BATCH_CONCURRENCY,
                 api_description="Label every row of a table; returns (summary, preview, chart, result CSV).")


def _evaluation_tab(handlers: Handlers) -> None:
    summary_value, table_value, figure_value, state_value = handlers.stored_evaluation()
    reliability_value, coverage_value = handlers.stored_calibration()
    state = gr.State(state_value)
    summary = gr.Markdown(summary_value, elem_id="eval-summary")
    with gr.Row():
        with gr.Column():
            view = gr.Radio(list(CONFUSION_VIEWS), value=CONFUSION_VIEWS[0], label="Confusion matrix shows")
            confusion = gr.Plot(figure_value, label="Confusion matrix", elem_id="eval-confusion")
        with gr.Column():
            per_class = gr.Dataframe(table_value, label="Per emotion", interactive=False, elem_id="eval-per-class")
    with gr.Row():
        reliability = gr.Plot(reliability_value, label="Reliability (calibration)", elem_id="eval-reliability")
        coverage = gr.Plot(coverage_value, label="Accuracy vs coverage", elem_id="eval-coverage")
    gr.Markdown("### Evaluate again, live\nUpload a labelled file (`text;label` lines, or CSV/TSV/JSON "
                "Lines/Parquet with `text` and `label` columns; labels as names or ids 0-5), or use the "
                "`dair-ai/emotion` test split from the Hugging Face Hub (needs the network).")
    with gr.Row():
        labelled = gr.File(label="Labelled file", file_types=[".txt", ".csv", ".tsv", ".jsonl", ".parquet"],
                           elem_id="eval-file")
        with gr.Column():
            file_button = gr.Button("Evaluate the uploaded file", variant="primary", elem_id="eval-file-button")
            hub_button = gr.Button("Evaluate on dair-ai/emotion test (Hub)", elem_id="eval-hub-button")
    gr.Markdown("### Rows behind the figures")
    with gr.Row():
        true = gr.Dropdown([ANY, *LABELS], value=ANY, label="True label", elem_id="eval-true")
        predicted = gr.Dropdown([ANY, *LABELS], value=ANY, label="Predicted label", elem_id="eval-predicted")
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


def launch(demo: gr.Blocks, server_name: str, server_port: int, max_file_bytes: int) -> None:
    """Start the server (blocks). Gradio refuses uploads over max_file_bytes before our reader sees them."""
    demo.launch(server_name=server_name, server_port=server_port, max_file_size=max_file_bytes,
                footer_links=["api", "gradio"], theme=gr.themes.Soft())
