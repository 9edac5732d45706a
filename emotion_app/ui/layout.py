"""The app's page: the model panel, the four tabs and the queue, around one classifier.

Each tab is a module with its own handler class (plain methods: text and file paths in, values
and figures out, so tests call them with a fake classifier) and a `build` that lays it out and
wires its events: `predict.py`, `batch.py`, `adapt.py`, `evaluation.py`. This module only puts them
together. The labels are the classifier's own (its adapter's labels.json).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from emotion_app.artifacts import read_metrics
from emotion_app.labels import EMOTIONS, NEUTRAL
from emotion_app.storage import cache_root
from emotion_app.ui import adapt, batch, evaluation, predict
from emotion_app.ui.common import PREDICT_CONCURRENCY, QUEUE_SIZE, QUEUE_STATUS_SECONDS, Limits
from emotion_app.ui.sessions import STATE_TTL_S, SessionModels


@dataclass
class Handlers:
    """The tabs' handlers around one SessionModels (the app's classifier, and each session's own)."""

    models: SessionModels
    predict_tab: predict.PredictHandlers
    batch_tab: batch.BatchHandlers
    evaluation_tab: evaluation.EvaluationHandlers
    adapt_tab: adapt.AdaptHandlers

    @classmethod
    def create(cls, classifier, limits: Limits | None = None, metrics: dict | None = None,
               metrics_note: str = "", hub_loader: Callable | None = None,
               output_dir: str | Path | None = None, adapted_dir: str | Path | None = None) -> Handlers:
        limits = limits or Limits()
        models = SessionModels(classifier, Path(adapted_dir) if adapted_dir else cache_root() / "adapted")
        return cls(models, predict.PredictHandlers(models, limits),
                   batch.BatchHandlers(models, limits, metrics, output_dir),
                   evaluation.EvaluationHandlers(models, limits, metrics, metrics_note, hub_loader),
                   adapt.AdaptHandlers(models, limits, output_dir))


def stored_metrics(directory: str | Path | None) -> tuple[dict | None, str]:
    """(metrics.json of the adapter or None, a note for the user when it is missing or broken)."""
    if not directory:
        return None, "This model has no directory, so no stored test figures."
    try:
        metrics = read_metrics(directory)
    except ValueError as err:
        return None, f"{err} Stored test figures are not shown."
    if metrics is None:
        return None, f"The adapter has no metrics.json ({directory}), so no stored test figures."
    return metrics, ""


def model_info(classifier, metrics: dict | None) -> str:
    """The model panel: base, adapter, labels and the stored test figures."""
    info = getattr(classifier, "info", {}) or {}
    lines = [f"**Base model:** {shown_name(info.get('base_model', 'unknown'))}",
             f"**Adapter:** {shown_name(info.get('adapter', 'unknown'))}",
             f"**Labels:** {', '.join(classifier.labels)}",
             f"**Models are kept in:** {storage_in_words(cache_root())}"]
    temperature = getattr(classifier, "temperature", 1.0)
    if temperature != 1.0:
        lines.append(f"**Calibration:** temperature {temperature:.3f} (probabilities are calibrated)")
    test = (metrics or {}).get("test")
    if isinstance(test, dict) and "accuracy" in test:
        lines.append(_test_figures(test))
    return " · ".join(lines)


def _test_figures(test: dict) -> str:
    # A model with labels the test set lacks (neutral on dair-ai) is read on the six emotions: over all
    # its labels, the F1 of 0 of a label with no test row would pull the macro-F1 shown down.
    six, rows = test.get("six_way"), f"on {test.get('n', 0):,} rows"
    if isinstance(six, dict) and "accuracy" in six:
        neutral = (test.get("called_neutral") or {}).get("share", 0)
        return (f"**Test set:** on the six emotions, accuracy {six['accuracy']:.1%}, macro-F1 {six['macro_f1']:.3f} "
                f"{rows} ({neutral:.1%} called neutral)")
    return f"**Test set:** accuracy {test['accuracy']:.1%}, macro-F1 {test['macro_f1']:.3f} {rows}"


def shown_name(name: object) -> str:
    """A model as the public page names it: a Hub id as it is, a folder on the server by its own
    name only (where it lies is the server's business; the log says, app.py)."""
    text = str(name)
    path = Path(text).expanduser()
    if path.is_absolute() or text.startswith((".", "~")) or path.exists():
        return f"`{path.name or text}` (a folder on this machine)"
    return f"`{text}`"


def storage_in_words(root: Path) -> str:
    """Where the engine's models and adapted models are kept, in words (the log names the path)."""
    from emotion_app.storage import SPACE_STORAGE

    if root.is_relative_to(SPACE_STORAGE):
        return "the Space's persistent storage (kept across restarts)"
    if os.environ.get("SPACE_ID"):
        return "this machine's cache (a Space restart starts it afresh)"
    return "this machine's cache"


def describe_labels(labels) -> str:
    """The page's first line: what the model answers, in plain words."""
    emotions = [name for name in labels if name.lower() in EMOTIONS]
    if len(emotions) == len(EMOTIONS) and len(labels) <= len(EMOTIONS) + 1:
        neutral = " or no clear emotion (neutral)" if NEUTRAL in labels else ""
        return f"Six emotions in English text{neutral}: {', '.join(labels)}."
    return f"{len(labels)} labels: {', '.join(labels)}."


def build_demo(classifier, *, limits: Limits | None = None, metrics: dict | None = None,
               hub_loader: Callable | None = None, output_dir: str | Path | None = None,
               title: str = "Emotion classifier") -> gr.Blocks:
    """The app around `classifier` (queue configured). metrics: the adapter's metrics.json, read
    from classifier.info["directory"] unless given."""
    note = ""
    if metrics is None:
        metrics, note = stored_metrics((getattr(classifier, "info", {}) or {}).get("directory"))
    handlers = Handlers.create(classifier, limits, metrics, note, hub_loader, output_dir)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n{describe_labels(classifier.labels)} "
                    "Type a sentence, label a whole spreadsheet, or check how well the model does.")
        gr.Markdown(model_info(classifier, metrics), elem_id="model-info")
        session_model = gr.Markdown(handlers.adapt_tab.header(), elem_id="session-model")
        scored = gr.State(time_to_live=STATE_TTL_S)  # the Batch tab's last result, for the review
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                predict.build(handlers.predict_tab)
            with gr.Tab("Batch CSV", id="batch"):
                batch.build(handlers.batch_tab, scored)
            with gr.Tab("Review & adapt", id="adapt"):
                adapt.build(handlers.adapt_tab, scored, session_model)
            with gr.Tab("Evaluation", id="evaluation"):
                evaluation.build(handlers.evaluation_tab)
        demo.unload(handlers.adapt_tab.end_session)  # a closed page's adapted models are deleted
    demo.queue(status_update_rate=QUEUE_STATUS_SECONDS, default_concurrency_limit=PREDICT_CONCURRENCY,
               max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks, server_name: str, server_port: int, max_file_bytes: int) -> None:
    """Start the server (blocks). Gradio refuses uploads over max_file_bytes before our reader sees them."""
    demo.launch(server_name=server_name, server_port=server_port, max_file_size=max_file_bytes,
                footer_links=["api", "gradio"], theme=gr.themes.Soft())
