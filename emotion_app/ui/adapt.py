"""The Review & adapt tab: correct the rows the model got wrong, adapt the model to them, use it.

1. Review: after the Batch tab labels a file, its rows come here ordered for review (needs_review
   first, then the lowest confidence); each shows its predicted label, and the visitor sets the
   right one (or skips). The corrections download as a table (text, label, the original columns).
   An uploaded labelled file serves as corrections too.
2. Adapt: `python -m emotion_app adapt --progress json` in a child process (one thread, lower
   priority, so other visitors still get answers; one adaptation at a time, the others wait in the
   queue with their place shown), with a progress bar from its JSON events
   (train/adaptation/progress.py); stopped after ADAPT_TIMEOUT_S, by the Stop button or when the
   page closes (ui/child.py); then held-out and dair-ai test accuracy before -> after.
3. Use it: this visitor's session switches to the adapted model (others keep theirs); download it
   as a .zip, or push it to the Hub with a token typed here (never logged, stored or echoed).

Files for download (the corrections table, the .zip) go to a folder per job under the storage
root, swept by age (ui/results.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from emotion_app.artifacts import read_metrics
from emotion_app.storage import cache_root
from emotion_app.train.adaptation import progress as events
from emotion_app.ui.child import FINISHED, STOPPED, TIMED_OUT, ChildResult, run_child
from emotion_app.ui.common import Limits, bullets
from emotion_app.ui.results import RESULTS_DIR, ResultFolders
from emotion_app.ui.sessions import STATE_TTL_S, SessionModels

logger = logging.getLogger(__name__)

SKIP = "skip"
ADAPT_TIMEOUT_S = 1800  # an adaptation's child is stopped after this long (30 minutes)
ADAPT_NICENESS = 10  # the child's lower priority (its --niceness): the server keeps answering visitors
REPLAY_ENV = "EMOTION_REPLAY_DATA"  # a local copy of dair-ai/emotion to replay (else the Hub)
NEUTRAL_ENV = "EMOTION_NEUTRAL_DATA"  # a local file of plain texts labelled neutral to replay (else the Hub)
STOPPED_TEXT = "Stopped: no adapted model was made."
REVIEW_COLUMNS = ["row", "text", "predicted", "confidence", "needs_review"]


class AdaptHandlers:
    """The Review & adapt tab's event functions."""

    def __init__(self, models: SessionModels, limits: Limits, output_dir: str | Path | None = None):
        self.models = models
        self.limits = limits
        self.results = ResultFolders(Path(output_dir) if output_dir else cache_root() / RESULTS_DIR, "adapt")
        self._running: dict[str, threading.Event] = {}  # session -> its adaptation's stop signal
        self._lock = threading.Lock()

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels a correction may take: the app's model's (an adapted model keeps its parent's)."""
        return tuple(self.models.default.labels)

    # --- review ----------------------------------------------------------------------------------

    def start_review(self, scored: dict | None) -> tuple:
        """(review state, card, count) for the table the Batch tab just labelled."""
        if not scored:
            return None, "Label a file in the Batch CSV tab first: its rows come here for review.", gr.update(), ""
        frame, names, column = scored["frame"], scored["names"], scored["column"]
        rows = pd.DataFrame({
            "row": range(1, len(frame) + 1),
            "text": frame[column].astype(str).tolist(),
            "predicted": frame[names["emotion"]].tolist(),
            "confidence": pd.to_numeric(frame[names["confidence"]], errors="coerce").tolist(),
            "needs_review": frame[names["needs_review"]].fillna(False).astype(bool).tolist()
            if "needs_review" in names else [False] * len(frame),
        })
        rows = rows[rows["predicted"] != ""]  # unscored (empty) rows have nothing to correct
        order = rows.sort_values(["needs_review", "confidence"], ascending=[False, True], kind="stable")
        state = {"rows": order.reset_index(drop=True), "original": frame, "pos": 0, "labels": {}}
        return state, *self._card(state)

    def save_label(self, state: dict | None, label: str | None, step: int = 1) -> tuple:
        """Record the label chosen for the shown row (or skip it), then show the next (or previous)."""
        if not state:
            raise gr.Error("Nothing to review: label a file in the Batch CSV tab first.")
        if label and label != SKIP:
            if label not in self.labels:
                raise gr.Error(f"label {label!r}: expected one of {', '.join(self.labels)} or skip.")
            row = int(state["rows"].loc[state["pos"], "row"])
            state["labels"][row] = label
        state["pos"] = min(max(state["pos"] + step, 0), len(state["rows"]) - 1)
        return state, *self._card(state)

    def _card(self, state: dict) -> tuple[str, str, str]:
        rows, pos = state["rows"], state["pos"]
        if rows.empty:
            return "No scored rows to review.", gr.update(value=None), self._count(state)
        row = rows.loc[pos]
        flag = " · **needs review**" if row["needs_review"] else ""
        chosen = state["labels"].get(int(row["row"]))
        card = (f"Row **{int(row['row'])}** ({pos + 1} of {len(rows)} in review order) · predicted "
                f"**{row['predicted']}** ({row['confidence']:.2f}){flag}\n\n> {row['text'][:2000]}")
        return card, gr.update(value=chosen or None), self._count(state)

    @staticmethod
    def _count(state: dict) -> str:
        changed = sum(1 for row, label in state["labels"].items() if label)
        return f"**{changed}** row(s) corrected so far."

    def download_corrections(self, state: dict | None) -> str:
        """The corrected rows as CSV: text, label and the original columns of each row."""
        from emotion_app.data.writers import to_safe_csv

        if not state or not state["labels"]:
            raise gr.Error("No corrections yet: pick the right label for some rows first.")
        frame = state["original"]
        picked = sorted(state["labels"])
        original = frame.iloc[[row - 1 for row in picked]].reset_index(drop=True)
        text = state["rows"].set_index("row").loc[picked, "text"].tolist()
        out = pd.concat([pd.DataFrame({"text": text, "label": [state["labels"][r] for r in picked]}),
                         original.add_prefix("original_")], axis=1)
        path = self.results.new() / "corrections.csv"
        to_safe_csv(out, path, excel_bom=True)
        return str(path)

    # --- adapt -----------------------------------------------------------------------------------

    def adapt(self, state: dict | None, upload: str | None, progress=gr.Progress(), request: gr.Request = None) -> str:
        """Adapt the model this session uses to its corrections (reviewed rows, else the upload)."""
        session = getattr(request, "session_hash", None) or "local"
        corrections = self._corrections_file(state, upload)
        parent = self.models.classifier(request)
        parent_dir = (getattr(parent, "info", {}) or {}).get("directory")
        if not parent_dir:
            raise gr.Error("This model has no adapter directory to adapt from.")
        key, out = self.models.new_directory(session)
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if not self._run_adapt(session, parent_dir, corrections, out, progress):
            return STOPPED_TEXT
        summary = (read_metrics(out) or {}).get("adaptation", {})
        lineage = (f"adapted from `{summary.get('parent', {}).get('adapter', parent_dir)}` on "
                   f"{summary.get('corrections', {}).get('n', '?')} corrections (seed {summary.get('seed', '?')})")
        self.models.register(session, key, out, lineage)
        return _summary_text(summary, time.perf_counter() - started)

    def _corrections_file(self, state: dict | None, upload: str | None) -> str:
        if state and state["labels"]:
            return self.download_corrections(state)
        if upload:
            from emotion_app.data.labelled import read_labeled_file

            try:  # checked here, so a bad file is refused at once with the row it fails on
                read_labeled_file(upload, labels=self.labels, max_bytes=self.limits.max_bytes,
                                  max_rows=self.limits.max_rows)
            except ValueError as err:
                raise gr.Error(str(err)) from None
            return upload
        raise gr.Error("No corrections: correct some rows in the review above, or upload a labelled file "
                       "(a text and a label column).")

    def _run_adapt(self, session: str, parent_dir: str, corrections: str, out: Path, progress) -> bool:
        """Run the adaptation child into `out`: True once the adapter is saved, False when it was
        stopped (Stop, or the page closed); a gr.Error saying why when it failed or overran. A
        stopped or failed run's `out` is removed."""
        command = adapt_command(parent_dir, corrections, out)
        # One thread at a lower priority: the serving process keeps the other core for visitors.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        progress((0, 1), desc="Adapting: loading", unit="steps")
        reader, stop = ChildEvents(progress), threading.Event()
        with self._lock:
            self._running[session] = stop
        try:
            result = run_child(command, reader.line, ADAPT_TIMEOUT_S, stop, env)
        finally:
            with self._lock:
                self._running.pop(session, None)
        if reader.succeeded(result):
            return True
        shutil.rmtree(out, ignore_errors=True)  # whatever a stopped or failed child left
        if result.outcome == STOPPED:
            return False
        raise gr.Error(reader.failure(result))

    def stop(self, request: gr.Request = None) -> None:
        """Stop this session's running adaptation, if any (its handler then says so)."""
        self._signal_stop(getattr(request, "session_hash", None) or "local")

    def _signal_stop(self, session: str) -> None:
        with self._lock:
            stop = self._running.get(session)
        if stop is not None:
            logger.info("Stopping the adaptation of a session on request")
            stop.set()

    # --- use, download, push ---------------------------------------------------------------------

    def back(self, state: dict | None) -> tuple:
        return self.save_label(state, None, -1)

    def use(self, request: gr.Request = None) -> str:
        return self.use_adapted(True, request)

    def unuse(self, request: gr.Request = None) -> str:
        return self.use_adapted(False, request)

    def use_adapted(self, use: bool, request: gr.Request = None) -> str:
        """Switch this session to its latest adapted model (or back); the new header."""
        session = getattr(request, "session_hash", None) or "local"
        latest = self.models.latest(session)
        if use and latest is None:
            raise gr.Error("No adapted model in this session yet: run an adaptation first.")
        self.models.use(session, latest.key if use else None)
        return self.header(request)

    def header(self, request: gr.Request = None) -> str:
        lineage = self.models.lineage(request)
        return (f"**In use in this session:** the adapted model, {lineage}. Other visitors keep the app's model."
                if lineage else "**In use:** the app's model (below).")

    def download_adapter(self, request: gr.Request = None) -> str:
        latest = self._latest(request)
        target = self.results.new() / "adapted-emotion-lora"
        return shutil.make_archive(str(target), "zip", root_dir=latest.directory)

    def push(self, repo_id: str, token: str, private: bool, request: gr.Request = None) -> str:
        """Push the latest adapted model; the token is used for this call only, never kept or shown."""
        from emotion_app.publish.hub import push_adapter

        latest = self._latest(request)
        if not token or not token.strip():
            raise gr.Error("No Hub token: paste a write token (huggingface.co/settings/tokens) to push.")
        try:
            url = push_adapter(latest.directory, (repo_id or "").strip(), private=bool(private), token=token.strip())
        except (ValueError, OSError) as err:
            raise gr.Error(f"The push failed: {str(err).replace(token.strip(), '***')}") from None
        return f"Pushed to {url}"

    def _latest(self, request):
        latest = self.models.latest(getattr(request, "session_hash", None) or "local")
        if latest is None:
            raise gr.Error("No adapted model in this session yet: run an adaptation first.")
        return latest

    def end_session(self, request: gr.Request = None) -> None:
        """The page closed: its running adaptation stops, its adapted models go."""
        session = getattr(request, "session_hash", None)
        if session:
            self._signal_stop(session)
        self.models.end_session(session)


def adapt_command(parent_dir: str, corrections: str, out: Path) -> list[str]:
    """The adaptation child's command line; local replay data from the environment when set."""
    command = [sys.executable, "-m", "emotion_app", "adapt", "--adapter", parent_dir, "--corrections",
               corrections, "-o", str(out), "--progress", "json", "--niceness", str(ADAPT_NICENESS)]
    for variable, flag in ((REPLAY_ENV, "--replay_data"), (NEUTRAL_ENV, "--neutral_data")):
        if os.environ.get(variable):
            command += [flag, os.environ[variable]]
    return command


class ChildEvents:
    """The app's side of the adaptation child's progress protocol: each output line decoded
    (train/adaptation/progress.py), steps shown on the progress bar, the error and done events
    kept; other lines (the child's log) pass."""

    def __init__(self, progress):
        self.progress = progress
        self.started = time.perf_counter()
        self.error: str | None = None
        self.done: str | None = None

    def line(self, text: str) -> None:
        event = events.decode(text)
        if event is None:
            return
        if event.kind == events.STEP:
            left = (time.perf_counter() - self.started) * (event.total - event.step) / max(event.step, 1)
            self.progress((event.step, event.total), desc=f"Adapting: about {left:.0f} s left", unit="steps")
        elif event.kind == events.ERROR:
            self.error = event.message
        elif event.kind == events.DONE:
            self.done = event.output_dir

    def succeeded(self, result: ChildResult) -> bool:
        return result.outcome == FINISHED and result.returncode == 0 and self.done is not None

    def failure(self, result: ChildResult) -> str:
        """What went wrong, for the visitor."""
        if result.outcome == TIMED_OUT:
            return (f"The adaptation took longer than {ADAPT_TIMEOUT_S // 60} minutes, the app's limit, and was "
                    "stopped; no adapted model was made. Try again with fewer corrections.")
        if self.error:
            return f"The adaptation failed: {self.error}"
        last = "\n".join(result.tail[-5:]).strip() or "no output"
        return f"The adaptation failed (exit code {result.returncode}) without saying why; its last output: {last}"


def _summary_text(summary: dict, seconds: float) -> str:
    lines = []
    for key, name in (("heldout", "held-out corrections"), ("dair_test", "dair-ai/emotion test")):
        figures = summary.get(key) or {}
        if "parent" in figures:
            lines.append(f"{name} ({figures.get('method', '')}): accuracy **{figures['parent']['accuracy']:.1%} → "
                         f"{figures['adapted']['accuracy']:.1%}**, macro-F1 {figures['parent']['macro_f1']:.3f} → "
                         f"{figures['adapted']['macro_f1']:.3f}")
        else:
            lines.append(f"{name}: not measured ({figures.get('reason', 'not available')})")
    guard = summary.get("forgetting_guard", {})
    lines.append(f"forgetting guard: {guard.get('method', '?')}"
                 + (f" ({guard.get('replay_rows')} rows of {guard.get('replay_source')})"
                    if guard.get("method") == "replay" else ""))
    lines.append(f"{seconds:.0f} s in all. Press **Use the adapted model** to label with it in this session.")
    return bullets([*lines, *summary.get("notes", [])])


def build(handlers: AdaptHandlers, scored: gr.State, header: gr.Markdown) -> None:
    """The tab's components and events; `scored` is the Batch tab's last result, `header` the
    page's model panel."""
    gr.Markdown("### 1. Review\nRows of the file the Batch CSV tab labelled, those that need review first, "
                "then the least confident. Pick the right label (or skip) and go on.")
    review = gr.State(time_to_live=STATE_TTL_S)
    start = gr.Button("Review the last labelled file", elem_id="review-start")
    card = gr.Markdown(elem_id="review-card")
    label = gr.Radio([*handlers.labels, SKIP], label="Right label", elem_id="review-label")
    with gr.Row():
        back = gr.Button("Back", elem_id="review-back")
        save = gr.Button("Save and next", variant="primary", elem_id="review-next")
    count = gr.Markdown(elem_id="review-count")
    download = gr.Button("Download the corrections", elem_id="review-download")
    corrections_file = gr.File(label="Corrections (CSV)", interactive=False, elem_id="review-file")
    gr.Markdown("### 2. Adapt\nFine-tune this session's model on the corrections (or on an uploaded labelled "
                "file), with replayed dair-ai/emotion rows against forgetting. One adaptation runs at a time, "
                f"for at most {ADAPT_TIMEOUT_S // 60} minutes.")
    upload = gr.File(label="Or upload corrections (a text and a label column)", file_types=[".csv", ".tsv", ".txt",
                     ".jsonl", ".xlsx", ".parquet"], elem_id="adapt-upload")
    with gr.Row():
        run = gr.Button("Adapt the model", variant="primary", elem_id="adapt-run")
        stop = gr.Button("Stop", elem_id="adapt-stop")
    summary = gr.Markdown(elem_id="adapt-summary")
    gr.Markdown("### 3. Use it")
    with gr.Row():
        use = gr.Button("Use the adapted model", elem_id="adapt-use")
        unuse = gr.Button("Back to the app's model", elem_id="adapt-unuse")
        zip_button = gr.Button("Download the adapter (.zip)", elem_id="adapt-zip")
    zip_file = gr.File(label="Adapter", interactive=False)
    with gr.Row():
        repo = gr.Textbox(label="Hub repo (user/name)")
        token = gr.Textbox(label="Hub token (write)", type="password")
        private = gr.Checkbox(label="Private", value=True)
    push = gr.Button("Push to the Hub")
    pushed = gr.Markdown()
    private_api = {"api_visibility": "private"}
    start.click(handlers.start_review, scored, [review, card, label, count], **private_api)
    save.click(handlers.save_label, [review, label], [review, card, label, count], **private_api)
    back.click(handlers.back, review, [review, card, label, count], **private_api)
    download.click(handlers.download_corrections, review, corrections_file, **private_api)
    run.click(handlers.adapt, [review, upload], summary, concurrency_id="adapt", concurrency_limit=1, **private_api)
    stop.click(handlers.stop, None, None, **private_api)  # the running handler ends and says so
    use.click(handlers.use, None, header, **private_api)
    unuse.click(handlers.unuse, None, header, **private_api)
    zip_button.click(handlers.download_adapter, None, zip_file, **private_api)
    push.click(handlers.push, [repo, token, private], pushed, **private_api).then(  # the token leaves the page
        lambda: "", None, token, **private_api)
