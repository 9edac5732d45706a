"""The Batch CSV tab: label every row of an uploaded table, with a preview, a chart and a download."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import pandas as pd

from emotion_app.constants import HEADER_CHOICES
from emotion_app.ui import figures
from emotion_app.ui.common import (
    BATCH_CONCURRENCY,
    UPLOAD_TYPES,
    Limits,
    bullets,
    check_threshold,
    read_upload_table,
)
from emotion_app.ui.results import ResultFolders
from emotion_app.ui.sessions import SessionModels


class BatchHandlers:
    """The Batch CSV tab's event functions for one classifier."""

    def __init__(self, models: SessionModels, limits: Limits, metrics: dict | None = None,
                 output_dir: str | Path | None = None):
        self.models = models
        self.limits = limits
        self.metrics = metrics
        self.results = ResultFolders(Path(output_dir) if output_dir else Path(tempfile.gettempdir()) / "emotion-app",
                                     "batch")

    def read_upload(self, path: str | None, header: str = "auto") -> tuple:
        """(text-column dropdown, notes, preview) for a freshly uploaded table (or a new header choice)."""
        if not path:
            return gr.update(choices=[], value=None), "", None
        table = read_upload_table(path, self.limits, header)
        columns = [str(c) for c in table.frame.columns]
        notes = [f"{len(table.frame):,} rows and {len(columns)} columns; the text column looks like "
                 f"**{table.text_column}** (change it below if not).", *table.notes]
        preview = table.frame.head(self.limits.preview_rows)
        return gr.update(choices=columns, value=table.text_column), bullets(notes), preview

    def score_csv(self, path: str | None, text_column: str | None = None, header: str = "auto",
                  threshold: float | None = 0.0, progress=gr.Progress(), request: gr.Request = None) -> tuple:
        """(summary, preview, label-count chart, result file) for an uploaded table (the `score_csv` API).

        `text_column` empty means the detected one; `threshold` 0 (or None) means no review column.
        """
        return self._score(path, text_column, header, threshold, progress, request)[:4]

    def score_for_review(self, path: str | None, text_column: str | None = None, header: str = "auto",
                         threshold: float | None = 0.0, progress=gr.Progress(), request: gr.Request = None) -> tuple:
        """score_csv's outputs and, for the Review & adapt tab (a gr.State: not part of the API),
        the scored table with its text column and output column names."""
        *outputs, scored, names, column = self._score(path, text_column, header, threshold, progress, request)
        return (*outputs, {"frame": scored, "names": names, "column": column})

    def _score(self, path, text_column, header, threshold, progress, request) -> tuple:
        from emotion_app.analysis.predictions import output_names, score_frame
        from emotion_app.analysis.review import review_every_row, review_whole_file
        from emotion_app.analysis.shift import FileEstimate
        from emotion_app.data.writers import to_safe_csv

        if not path:
            raise gr.Error("No file: upload a CSV, TSV or `text;label` .txt file first.")
        threshold = check_threshold(threshold)
        table = read_upload_table(path, self.limits, header, text_column)
        column = table.text_column
        started = time.perf_counter()

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Scoring", unit="rows")

        classifier = self.models.classifier(request)
        detector = classifier.detector
        estimate = FileEstimate(detector) if detector is not None else None
        try:
            scored = score_frame(classifier, table.frame, column, threshold=threshold, progress=report,
                                 estimate=estimate)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        seconds = time.perf_counter() - started
        if len(scored) != len(table.frame):  # the scorer promises this; a broken promise must not pass
            raise gr.Error(f"Scoring returned {len(scored)} rows for {len(table.frame)} input rows; "
                           "nothing was written. Please report this.")
        names = output_names(table.frame.columns, threshold, ood=detector is not None, labels=classifier.labels)
        result = estimate.result() if estimate is not None else None
        review_all = review_whole_file(result, threshold)
        if review_all:
            review_every_row(scored, names)
        result_path = self._result_path(path)
        to_safe_csv(scored, result_path, excel_bom=True)
        counts = figures.label_counts(scored[names["emotion"]].tolist(), classifier.labels)
        trust = _trust_lines(result, threshold, review_all)
        summary = self._score_summary(scored, names, table, column, threshold, seconds, trust, review_all)
        preview = self._score_preview(scored, names, column, threshold)
        return summary, preview, figures.label_count_figure(counts), str(result_path), scored, names, column

    def review_hint(self, threshold: float | None) -> str:
        """What a review threshold does on the stored test split (from metrics.json's coverage; with
        a shift detector the honest rule's curve, where rows unlike the training data always need review)."""
        honest = self.models.default.detector is not None and (self.metrics or {}).get("coverage_in_distribution")
        curve = honest or (self.metrics or {}).get("coverage")
        if not threshold:
            return "Threshold 0: no `needs_review` column."
        if not curve:
            return (f"Rows with confidence below {threshold:.2f} get `needs_review` = true "
                    "(this adapter has no test coverage curve to say how many).")
        kept = [row for row in curve if row[0] >= threshold]
        if not kept:
            return f"At {threshold:.2f} every test row would need review."
        _, coverage, accuracy = kept[0]
        unlike = " (low confidence, or unlike the training data)" if honest else ""
        return (f"At {threshold:.2f}, on the test split {coverage:.0%} of the rows keep their label "
                f"automatically, with {accuracy:.1%} accuracy; {1 - coverage:.0%} need review{unlike}. "
                "A file unlike the training data gets a warning, since these figures do not hold for it"
                + (", and every one of its rows needs review." if honest else "."))

    def _result_path(self, upload: str) -> Path:
        """A fresh folder per request, so two visitors never share (or overwrite) a result; old
        ones are swept by age, so a server that runs for weeks does not fill its disk."""
        return self.results.new() / f"{Path(upload).stem}-emotions.csv"

    @staticmethod
    def _score_summary(scored: pd.DataFrame, names: dict, table, column: str,
                       threshold: float | None, seconds: float, trust: Sequence[str] = (),
                       review_all: bool = False) -> str:
        n = len(scored)
        unscored = int((scored[names["emotion"]] == "").sum())
        lines = [f"Scored **{n - unscored:,}** of {n:,} rows in {seconds:.1f} s (text column **{column}**). "
                 "The file below keeps every row and column in order and adds emotion, confidence and "
                 "one probability per emotion.", *trust]
        if unscored:
            lines.append(f"{unscored:,} row(s) have an empty text: kept, with an empty emotion and a note.")
        if threshold is not None:
            review = int(scored[names["needs_review"]].fillna(False).astype(bool).sum())
            unlike = " or are unlike the training data" if "in_distribution" in names else ""
            if review_all:
                lines.append(f"**{review:,}** row(s) (all of them) need review (`needs_review` column): the "
                             "file is unlike the training data.")
            else:
                lines.append(f"**{review:,}** row(s) ({review / max(n, 1):.1%}) have confidence below "
                             f"{threshold:.2f}{unlike} and need review (`needs_review` column).")
        lines.append("The preview below shows the first rows; the download has every row and column. "
                     "Cells that a spreadsheet would run as a formula start with ' there.")
        return bullets([*lines, *table.notes])

    def _score_preview(self, scored: pd.DataFrame, names: dict, column: str,
                       threshold: float | None) -> pd.DataFrame:
        wanted = [column, names["emotion"], names["confidence"]]
        wanted += [names["in_distribution"]] if "in_distribution" in names else []
        wanted += [names["needs_review"]] if threshold is not None else []
        wanted += [names["note"]]
        preview = scored.loc[:, wanted].head(self.limits.preview_rows).copy()
        preview.insert(0, "row", range(1, len(preview) + 1))
        return preview


def _trust_lines(estimate: dict | None, threshold: float | None, review_all: bool = False) -> list[str]:
    """The file's estimate for the summary, the shift warning in bold (see analysis.shift)."""
    from emotion_app.analysis.shift import REVIEW_ALL, SHIFT_WARNING, describe_estimate

    lines = describe_estimate(estimate, reviewing=threshold is not None, all_reviewed=review_all)
    return [line.replace(SHIFT_WARNING, f"**{SHIFT_WARNING}**").replace(REVIEW_ALL, f"**{REVIEW_ALL}**")
            for line in lines]


def build(handlers: BatchHandlers, scored: gr.State) -> None:
    """The Batch CSV tab's components and events (inside a gr.Tab)."""
    limits = handlers.limits
    gr.Markdown(
        "Upload a table (CSV, TSV, `text;label` .txt, JSON Lines or Excel .xlsx) with one text per row. "
        "You get it back with every row and column in order, plus `emotion`, `confidence`, one "
        "`p_<emotion>` column per emotion and, when the model can tell, `in_distribution` and `ood_score` "
        "(is the text like the training data?), with an estimate of the file's accuracy. "
        f"Limits here: {limits.max_bytes / 1024 / 1024:.0f} MB and "
        f"{limits.max_rows:,} rows per file (the command line `python -m emotion_app score` has none).")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Table to label", file_types=list(UPLOAD_TYPES),
                             elem_id="batch-file")
            with gr.Row():
                column = gr.Dropdown(label="Text column", choices=[], allow_custom_value=True,
                                     info="Detected on upload; pick another if it is wrong.",
                                     elem_id="batch-column")
                header = gr.Radio(list(HEADER_CHOICES), value="auto", label="First row is a header")
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
    button.click(handlers.score_for_review, inputs=[upload, column, header, threshold],
                 outputs=[summary, preview, counts, result, scored], api_name="score_csv",
                 concurrency_id="batch", concurrency_limit=BATCH_CONCURRENCY,
                 api_description="Label every row of a table; returns (summary, preview, chart, result CSV).")
