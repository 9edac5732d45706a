"""Adapt an adapter to your own corrected rows: continue its training, measure the gain, save it.

    python -m emotion_app adapt --corrections corrections.csv -o outputs/my-adapter
    python -m emotion_app adapt --adapter user/emotion-lora --corrections fixed.xlsx -o outputs/mine \\
        --replay_data ../shared/data/emotion --epochs 4 --learning_rate 3e-4 --seed 42

The corrections file is any table the app and the scorer read (CSV, TSV, `text;label` .txt, JSON
Lines, xlsx) with a text column and a label column (`label` or `emotion`, names in any case or ids
0-5). The output is a complete adapter directory (load it like any other: the app, the CLIs,
transformers + peft) whose metrics.json and model card hold the gain on held-out corrections, the
change on dair-ai/emotion test and the lineage (parent and its sha256, corrections, replay, seed).
The parent is never modified, and an interrupted run leaves no adapter behind.

Replay: dair-ai/emotion train rows from the Hub, or --replay_data DIR (train/validation/test
files). Offline without --replay_data, or with --replay_rows 0, it distils toward the parent's
predictions instead, and says so. For a model with `neutral`, plain texts labelled neutral are
replayed too (GoEmotions from the Hub, or --neutral_data FILE), so that corrections that are all
emotions do not teach it to drop that answer. Held-out measurement: --holdout auto (5-fold
cross-validation below 50 corrections, a held-out 20 % from there) trains the recipe once per fold
on top of the final training; --holdout none skips it (the fastest run).

-o must be a new or empty folder, checked (with the corrections file and the parent) before any
model loads. --overwrite replaces a finished adapter there whole: the new one is built beside it
and swapped in only once complete, so the old one stays if the run fails or is interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from emotion_app.artifacts import METRICS_FILE, read_metrics, write_json
from emotion_app.cli.runner import command_parser, run_command
from emotion_app.constants import DEFAULT_ADAPTER
from emotion_app.constants import (
    resolve_adapter as default_adapter,  # the embedded one from any directory
)
from emotion_app.errors import model_errors
from emotion_app.paths import (
    check_adapter_output,
    check_input_file,
    check_input_folder,
    check_outputs,
    replacing_directory,
)
from emotion_app.train.adaptation import (
    DISTILL_EPOCHS,
    HOLDOUTS,
    REPLAY_EPOCHS,
    AdaptOptions,
    Progress,
    adapt,
    read_corrections,
)
from emotion_app.train.adaptation.progress import EventWriter

logger = logging.getLogger(__name__)

PROGRESS_FORMATS = ("log", "json")


def build_parser() -> argparse.ArgumentParser:
    defaults = AdaptOptions()
    parser = command_parser("adapt", __doc__)
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER, help="Parent adapter: a directory or Hub repo id "
                        "(default: the embedded model).")
    parser.add_argument("--corrections", required=True, help="Table of corrected rows: a text and a label column.")
    parser.add_argument("-o", "--output_dir", required=True, help="Where to write the adapted adapter: a new or "
                        "empty folder.")
    parser.add_argument("--overwrite", action="store_true", help="Replace a finished adapter in -o (swapped in "
                        "once the new one is complete).")
    parser.add_argument("--text_column", default=None, help="Column holding the texts (default: detected).")
    parser.add_argument("--label_column", default=None, help="Column holding the labels (default: label/emotion).")
    parser.add_argument("--replay_data", default=None, help="Directory with dair-ai/emotion's files to replay "
                        "(default: the Hub).")
    parser.add_argument("--replay_rows", type=int, default=None, help="Rows to replay (default: 4 per "
                        "correction; 0: none, distil toward the parent instead).")
    parser.add_argument("--neutral_data", default=None, help="For a model with `neutral`: a labelled file whose "
                        "rows labelled neutral alone are replayed as plain text (default: GoEmotions from the Hub; "
                        "its train.csv reads as it is).")
    parser.add_argument("--neutral_rows", type=int, default=None, help="Neutral rows to replay (default: 1 per "
                        "correction; 0: none, and corrections without neutral then teach the model to drop it).")
    parser.add_argument("--epochs", type=int, default=None, help="Passes over corrections + replay (default: "
                        f"{REPLAY_EPOCHS}; {DISTILL_EPOCHS} when distilling, as its epochs are shorter).")
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate, help="Peak learning rate.")
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size, help="Rows per optimizer step.")
    parser.add_argument("--max_length", type=int, default=defaults.max_length, help="Tokens per text.")
    parser.add_argument("--holdout", choices=HOLDOUTS, default=defaults.holdout,
                        help="How the gain is measured: auto, cv, split (20 %%) or none.")
    parser.add_argument("--folds", type=int, default=defaults.folds, help="Folds of the cross-validation.")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="Seed: the same seed gives the same adapter.")
    parser.add_argument("--progress", choices=PROGRESS_FORMATS, default="log", help="log: a log line at every tenth "
                        "of the steps; json: progress, error and done events on stdout, one JSON object a line "
                        "(emotion_app/train/adaptation/progress.py; the app reads them).")
    parser.add_argument("--niceness", type=int, default=0, help="Lower this process's priority by this much "
                        "(os.nice) before any work: the app runs adaptations at 10, so its visitors still get answers.")
    return parser


def options_from(args: argparse.Namespace) -> AdaptOptions:
    return AdaptOptions(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                        max_length=args.max_length, replay_data=args.replay_data, replay_rows=args.replay_rows,
                        neutral_data=args.neutral_data, neutral_rows=args.neutral_rows, holdout=args.holdout,
                        folds=args.folds, seed=args.seed)


class StepLog:
    """progress(step, total) for the terminal: a log line at every tenth of the steps."""

    def __init__(self):
        self.shown = -1

    def __call__(self, step: int, total: int) -> None:
        tenth = step * 10 // max(total, 1)
        if tenth != self.shown:
            self.shown = tenth
            logger.info("training step %d/%d", step, total)


@contextmanager
def reporting(args: argparse.Namespace) -> Iterator[Progress]:
    """The priority --niceness asks for, and the progress callback --progress asks for; under json,
    an error event for a failure and a done event once the adapter is saved."""
    events = EventWriter(sys.stdout) if args.progress == "json" else None
    with events.errors_reported() if events else nullcontext():
        if args.niceness < 0:
            raise ValueError(f"--niceness {args.niceness}: expected 0 or more (a lower priority; raising it "
                             "needs privileges). Pass e.g. --niceness 10, or leave it out.")
        if args.niceness and hasattr(os, "nice"):
            os.nice(args.niceness)
        yield events.step if events else StepLog()
    if events:
        events.done(str(Path(args.output_dir).resolve()))


def format_summary(out: Path, summary: dict) -> str:
    lines = [f"Adapted {summary['parent']['adapter']} on {summary['corrections']['n']} corrections into {out}."]
    for key, name in (("heldout", "held-out corrections"), ("dair_test", "dair-ai/emotion test")):
        figures = summary.get(key) or {}
        if "parent" in figures:
            lines.append(f"{name} ({figures['method']}, n {figures['adapted']['n']}): accuracy "
                         f"{figures['parent']['accuracy']:.2%} -> {figures['adapted']['accuracy']:.2%} "
                         f"({figures['accuracy_change'] * 100:+.1f} points), macro-F1 "
                         f"{figures['parent']['macro_f1']:.3f} -> {figures['adapted']['macro_f1']:.3f}")
    guard = summary["forgetting_guard"]
    replayed = f" ({guard['replay_rows']} rows of {guard['replay_source']})" if guard["method"] == "replay" else ""
    if guard.get("neutral_replay_rows"):
        replayed += f", {guard['neutral_replay_rows']} neutral rows of {guard['neutral_source']}"
    lines.append(f"forgetting guard: {guard['method']}{replayed}")
    timing = summary["timing"]
    lines.append(f"time: {timing['to_saved_adapter_s']:.0f} s in all, {timing['adaptation_s']:.0f} s without the "
                 f"held-out measurement ({timing['heldout_s']:.0f} s)")
    return "\n".join(lines + [f"note: {note}" for note in summary["notes"]])


def check_paths(args: argparse.Namespace) -> bool:
    """The corrections and replay data are there, and -o can take the adapter without touching an
    input; whether -o holds a finished adapter that --overwrite replaces."""
    check_input_file("--corrections", args.corrections)
    if args.replay_data:
        check_input_folder("--replay_data", args.replay_data)
    if args.neutral_data:
        check_input_file("--neutral_data", args.neutral_data)
    check_outputs({"-o": args.output_dir}, {"--adapter": default_adapter(args.adapter),
                                            "--corrections": args.corrections, "--replay_data": args.replay_data,
                                            "--neutral_data": args.neutral_data},
                  directories={"-o"})
    return check_adapter_output("-o", args.output_dir, args.overwrite)


def check_parent(adapter: str) -> None:
    """The parent is an adapter that loads (exit 3 now, not after the corrections are read)."""
    from emotion_app.engine.adapters import read_adapter

    with model_errors(adapter):
        read_adapter(adapter)


def run(args: argparse.Namespace, progress: Progress) -> tuple[Path, dict]:
    """Check, adapt and save (in place of a finished adapter with --overwrite); (-o, summary)."""
    replacing = check_paths(args)
    rows = read_corrections(args.corrections, args.text_column, args.label_column)
    parent = default_adapter(args.adapter)
    check_parent(parent)
    final = Path(args.output_dir).resolve()
    with replacing_directory(final) if replacing else nullcontext(final) as out:
        _, summary = adapt(parent, rows.texts, rows.cells, out, options_from(args), progress=progress,
                           where=rows.places)
        if replacing:
            record_output_dir(out, final, summary)
    return final, summary


def record_output_dir(built: Path, final: Path, summary: dict) -> None:
    """The adapter built beside `final` records `final` as its folder (metrics.json's
    adaptation.output_dir, and the summary's)."""
    metrics = read_metrics(built)
    metrics["adaptation"]["output_dir"] = summary["output_dir"] = str(final)
    write_json(built / METRICS_FILE, metrics)


def execute(args: argparse.Namespace) -> None:
    with reporting(args) as progress:
        out, summary = run(args, progress)
    print(format_summary(out, summary))  # the command's output


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, execute, interrupted=lambda args: (
        f"no adapter was written to {args.output_dir} (an adapter there before is untouched)."))


if __name__ == "__main__":
    sys.exit(main())
