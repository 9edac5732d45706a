"""What the app's tabs share: the request limits, the queue lanes, the upload reader and small
text helpers. Bad input raises gr.Error saying what was expected, what was found and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr

from emotion_app.constants import HEADER_CHOICES, MAX_UPLOAD_MB, MAX_UPLOAD_ROWS

# A free Space has 2 vCPUs: short model calls (predict, explain) run two at a time; long jobs
# (batch scoring, evaluation) one at a time in their own lane, so a big file does not block single
# predictions. Waiting requests queue up to QUEUE_SIZE, then new ones are refused.
PREDICT_CONCURRENCY = 2
BATCH_CONCURRENCY = 1
QUEUE_SIZE = 64
# How often (seconds) waiting visitors are told their place in the queue. Gradio's default ("auto")
# tells every waiting visitor at every job start: with 20 waiting, 20 messages per answer, which the
# server pays for in CPU that the answers need (docs/performance.md, "The app under load").
QUEUE_STATUS_SECONDS = 1.0
# /classify: concurrent calls handed to one function call (one lane, so they queue up and batch).
CLASSIFY_BATCH = 32
# Both the Batch and the Evaluation tab read uploads with the one table reader, so both take these.
UPLOAD_TYPES = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".xlsx", ".parquet")
HEADER_ALIASES = {"detect": "auto"}  # the app's earlier spelling, still accepted through the API


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; all configurable (see app.py)."""

    max_bytes: int = int(MAX_UPLOAD_MB * 1024 * 1024)  # an uploaded table or labelled file
    max_rows: int = MAX_UPLOAD_ROWS  # rows of an uploaded table or labelled file
    max_text_chars: int = 5_000  # one text in the Predict tab
    preview_rows: int = 50
    listed_rows: int = 500  # rows shown in the misclassified-rows table

    def __post_init__(self):
        for name in ("max_bytes", "max_rows", "max_text_chars", "preview_rows", "listed_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {name} must be a positive whole number, found {value!r}.")


def header_choice(header: str | None) -> bool | None:
    """The Header radio's value as the table reader takes it (None: detect)."""
    header = HEADER_ALIASES.get(header or "auto", header)
    if header not in HEADER_CHOICES:
        raise gr.Error(f"header is {header!r}: expected one of {', '.join(HEADER_CHOICES)}.")
    return HEADER_CHOICES[header]


def read_upload_table(path: str, limits: Limits, header: str | None = "auto", text_column: str | None = None):
    """An uploaded table through the one shared reader, within the limits; gr.Error if unreadable."""
    from emotion_app.data.tables import read_table

    try:
        return read_table(path, max_bytes=limits.max_bytes, max_rows=limits.max_rows,
                          header=header_choice(header), text_column=text_column or None)
    except ValueError as err:
        raise gr.Error(str(err)) from None


def check_threshold(threshold: float | None) -> float | None:
    """The review threshold slider: 0 (or None) turns the review column off."""
    from emotion_app.analysis.review import check_threshold as check

    if threshold is None or threshold == 0:
        return None
    try:
        return check(threshold)
    except ValueError as err:
        raise gr.Error(f"{err} Set 0 to turn the needs_review column off.") from None


def metrics_summary(metrics: dict, title: str) -> str:
    """The figures in one line; for a model with neutral scored on emotional rows, the six-way ones
    (the six emotions alone) first, then all labels (a neutral answer counted wrong)."""
    line = (f"accuracy **{metrics['accuracy']:.1%}** · macro-F1 **{metrics['macro_f1']:.3f}** · "
            f"weighted-F1 {metrics.get('weighted_f1', float('nan')):.3f} · {metrics.get('n', 0):,} rows")
    if "six_way" in metrics:
        six, called = metrics["six_way"], metrics["called_neutral"]
        line = (f"six emotions alone: accuracy **{six['accuracy']:.1%}** · macro-F1 **{six['macro_f1']:.3f}** · "
                f"called neutral: {called['rows']:,} rows ({called['share']:.1%})\n\nall labels: {line}")
    return f"**{title}**\n\n{line}"


def bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines if line)
