"""Score a table of texts with an emotion adapter, streaming: memory stays flat whatever the size.

`score_file` reads CSV/TSV/TXT, JSON Lines, .xlsx or Parquet (encoding, delimiter and header
detected, as in the app) and writes every input row and column in order plus emotion, confidence,
p_<label> (in_distribution and ood_score when the adapter has a shift detector, needs_review with a
threshold, and note), in the format the output's suffix names (.csv, .tsv, .jsonl). The output
appears only when the run completes (it is written beside it, then renamed). The command line is
`python -m emotion_app score` (emotion_app/cli/score.py).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tqdm import tqdm

from emotion_app.analysis.predictions import NOTE_EMPTY, output_names, score_frame
from emotion_app.analysis.review import review_every_row, review_whole_file
from emotion_app.analysis.shift import FileEstimate, describe_estimate
from emotion_app.artifacts import SHIFT_FILES, read_metrics, write_json
from emotion_app.constants import (
    DEFAULT_ADAPTER,
    PRECISIONS,
    resolve_adapter,
)
from emotion_app.data.tables import TableStream, open_table
from emotion_app.data.writers import TableWriter, output_format
from emotion_app.engine.classifier import Predictor
from emotion_app.engine.threads import THREADS_BY_BATCH
from emotion_app.errors import CommandError, InputError, ModelError, OutputError, model_errors
from emotion_app.paths import check_outputs, writing

logger = logging.getLogger(__name__)

@dataclass
class Summary:
    input: str
    output: str
    rows: int
    unscored: int
    seconds: float
    text_column: str
    columns: list[str]
    notes: list[str] = field(default_factory=list)
    estimate: dict | None = None  # FileEstimate.result(); None: the adapter has no shift detector
    threshold: float | None = None
    needs_review: int = 0
    review_all: bool = False  # a shift warning on the first chunk sent every row to review

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score_file(input_path: str | Path, output_path: str | Path, *, classifier: Predictor | None = None,
               adapter: str = DEFAULT_ADAPTER, text_column: str | None = None, header: bool | None = None,
               batch_size: int = 64, chunk_rows: int = 10_000, threshold: float | None = None,
               raw: bool = False, engine: str = "local", workers: int = 2, precision: str = "auto",
               runtime: str = "auto", progress: bool | None = None, report: str | Path | None = None) -> Summary:
    """Stream INPUT through the classifier into OUTPUT. `classifier` (a Predictor) replaces loading
    `adapter`. `report`: also write the file's estimate there
    (JSON, see `report_record`). Raises a CommandError (InputError, ModelError or OutputError), which
    carries the exit code; every output is checked (emotion_app.paths) before any reading."""
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    _check_options(output_path, batch_size, chunk_rows, threshold, engine, workers)
    check_outputs({"-o": output_path, "--report": report},
                  {"input": input_path, "--adapter": resolve_adapter(adapter) if classifier is None else None})
    try:
        stream = open_table(input_path, text_column=text_column, header=header)
    except ValueError as err:
        raise InputError(str(err)) from None
    for note in stream.notes:
        logger.info("%s: %s", input_path.name, note)
    owned = classifier is None
    if owned:
        classifier = load_classifier(adapter, engine, workers, batch_size, precision, runtime)
    detector = classifier.detector
    estimate = FileEstimate(detector) if detector is not None else None  # a few running sums, whatever the size
    try:
        unscored, review, review_all = _stream(stream, output_path, classifier, threshold, raw, chunk_rows,
                                               progress, estimate)
    finally:
        if owned and hasattr(classifier, "close"):
            classifier.close()  # e.g. stops the local Ray instance a RayClassifier started
    columns = [*stream.columns, *output_names(stream.columns, threshold, ood=detector is not None,
                                              labels=classifier.labels).values()]
    summary = Summary(input=str(input_path), output=str(output_path), rows=stream.n_rows, unscored=unscored,
                      seconds=time.perf_counter() - started, text_column=stream.text_column,
                      columns=columns, notes=list(stream.notes), threshold=threshold, needs_review=review,
                      review_all=review_all, estimate=estimate.result() if estimate is not None else None)
    if report is not None:
        _write_report(Path(report), summary)
    return summary


def report_record(summary: Summary) -> dict:
    """What --report writes: the file's estimate (rows, scored, estimated_accuracy with its _low and
    _high, out_of_distribution_share, shift_warning, threshold: the OOD score threshold), the
    review threshold, how many rows need review and whether all of them do (a shift warning with a
    threshold), and the plain-language verdict."""
    estimate = summary.estimate or {}
    keys = ("estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high", "out_of_distribution_share",
            "shift_warning", "threshold", "reference_accuracy")
    return {"input": summary.input, "output": summary.output, "rows": summary.rows,
            "scored": summary.rows - summary.unscored, **{key: estimate.get(key) for key in keys},
            "shift_check": "available" if summary.estimate is not None else "unavailable",
            "review_threshold": summary.threshold,
            "needs_review": summary.needs_review if summary.threshold is not None else None,
            "review_all_rows": summary.review_all,
            "summary": " ".join(describe_estimate(summary.estimate, summary.threshold is not None, summary.review_all))}


def _write_report(path: Path, summary: Summary) -> None:
    with writing("--report", path):
        write_json(path, report_record(summary))


def _check_options(output_path: Path, batch_size: int, chunk_rows: int, threshold: float | None,
                   engine: str, workers: int) -> None:
    problems = []
    if batch_size < 1:
        problems.append(f"--batch_size must be at least 1, found {batch_size}")
    if chunk_rows < 1:
        problems.append(f"--chunk_rows must be at least 1, found {chunk_rows}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        problems.append(f"--threshold must be between 0 and 1, found {threshold}")
    if engine not in ("local", "ray"):
        problems.append(f"--engine must be local or ray, found {engine!r}")
    if workers < 1:
        problems.append(f"--workers must be at least 1, found {workers}")
    if problems:
        raise InputError("; ".join(problems) + ". Fix the option(s) and run again.")
    try:
        output_format(output_path)
    except ValueError as err:
        raise InputError(str(err)) from None


def load_classifier(adapter: str, engine: str = "local", workers: int = 2, batch_size: int = 64,
                    precision: str = "auto", runtime: str = "auto") -> Predictor:
    """The engine's classifier for `adapter`; ModelError (exit 3) when it cannot be loaded.
    precision: "auto" (int8 on CPU), "int8" or "fp32"; runtime: see EmotionClassifier.from_adapter."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, found {precision!r}.")
    options = {"batch_size": batch_size, "quantize": PRECISIONS[precision], "runtime": runtime}
    if engine == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ModelError("--engine ray needs the ray package, which is not installed. Install it with "
                             "`pip install -r requirements-ray.txt`, or use --engine local.")
        from emotion_app.engine.ray import RayClassifier

        make = partial(RayClassifier, adapter, num_workers=workers, **options)
    else:
        from emotion_app.engine.classifier import EmotionClassifier

        # a file is many batches: one per core at once
        make = partial(EmotionClassifier.from_adapter, resolve_adapter(adapter), thread_policy=THREADS_BY_BATCH,
                       **options)
    with model_errors(adapter):
        classifier = make()
    return classifier


def _stream(stream: TableStream, output_path: Path, classifier: Predictor, threshold: float | None,
            raw: bool, chunk_rows: int, progress: bool | None,
            estimate: FileEstimate | None = None) -> tuple[int, int, bool]:
    """Score and write chunk by chunk; returns how many rows were left unscored and need review,
    and whether every row was sent to review. That is decided once, on the first chunk (the whole
    file up to --chunk_rows rows), since rows are written as they are scored: with a threshold, a
    shift warning there sends every row to review (analysis.review.review_whole_file)."""
    unscored = review = 0
    review_all = None
    names = output_names(stream.columns, threshold, ood=estimate is not None, labels=classifier.labels)
    note = names["note"]
    bar = tqdm(total=stream.n_rows, unit="rows", desc="scoring", file=sys.stderr, dynamic_ncols=True,
               disable=None if progress is None else not progress)
    try:
        with writing("-o", output_path):
            writer = TableWriter(output_path, raw=raw)
    except OutputError:
        bar.close()
        raise
    try:
        with bar:
            for chunk in stream.chunks(chunk_rows):
                shown = [0]

                def advance(done: int, _total: int) -> None:
                    bar.update(done - shown[0])
                    shown[0] = done

                scored = score_frame(classifier, chunk, stream.text_column, threshold, advance, estimate=estimate)
                unscored += int((scored[note] == NOTE_EMPTY).sum())
                if review_all is None:
                    review_all = review_whole_file(estimate.result() if estimate else None, threshold)
                if review_all:
                    review_every_row(scored, names)
                if threshold is not None:
                    review += int(scored[names["needs_review"]].fillna(False).astype(bool).sum())
                _write(writer, scored, output_path)
        _close(writer, output_path)
    except CommandError:
        writer.abort()
        raise
    except ValueError as err:  # the file could not be read further (it changed, or a bad line)
        writer.abort()
        raise InputError(str(err)) from None
    except BaseException:  # Ctrl-C included: no half-written output is left behind
        writer.abort()
        raise
    if estimate is not None and threshold is not None and not review_all and estimate.result()["shift_warning"]:
        logger.warning("the first %d rows looked like the training data, the whole file does not: only rows "
                       "below the threshold or unlike the training data need review. Score it with a larger "
                       "--chunk_rows to decide on more rows.", chunk_rows)
    return unscored, review, bool(review_all)


def _write(writer: TableWriter, frame, output_path: Path) -> None:
    with writing("-o", output_path):
        writer.write(frame)


def _close(writer: TableWriter, output_path: Path) -> None:
    with writing("-o", output_path):
        writer.close()


def review_threshold(adapter: str, threshold: float | None, target_accuracy: float | None) -> float | None:
    """--threshold as given, or --target-accuracy turned into a threshold by the adapter's test curve."""
    from emotion_app.analysis.review import resolve_threshold

    if target_accuracy is None:
        return threshold
    directory = Path(resolve_adapter(adapter))
    try:
        metrics = read_metrics(directory) if directory.is_dir() else None
        if metrics is None:
            raise ValueError(f"--target_accuracy needs the adapter's metrics.json, and {directory} has none: "
                             "use a local adapter directory, or pass --threshold.")
        # with a shift detector, OOD rows always need review: the curve of that rule
        honest = all((directory / name).is_file() for name in SHIFT_FILES)
        threshold = resolve_threshold(metrics, threshold, target_accuracy, in_distribution_only=honest)
    except ValueError as err:
        raise InputError(str(err)) from None
    logger.info("Target accuracy %.3f on the test split -> review threshold %.4f", target_accuracy, threshold)
    return threshold
