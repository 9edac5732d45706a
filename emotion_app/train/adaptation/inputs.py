"""What an adaptation reads, checked before anything heavy loads: its options, the corrections
(from a file or as lists), the output directory, dair-ai/emotion as reference data (replay, test,
calibration), plain text labelled neutral (replayed for a model with `neutral`), and which rows
each training takes (the held-out plan, the replay samples)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_app.constants import DEFAULT_DATASET, DEFAULT_DATASET_CONFIG
from emotion_app.labels import EMOTIONS, NEUTRAL, emotion_ids_in, parse_label

logger = logging.getLogger(__name__)

MIN_CORRECTIONS = 10
CV_BELOW = 50  # fewer corrections than this: k-fold cross-validation, else one held-out share (time: 5 folds
# train the recipe six times, which past 50 corrections takes the run over 3 minutes on 2 cores)
HOLDOUT_FOLDS = 5  # the held-out share is one fold of five: 20 %
HOLDOUTS = ("auto", "cv", "split", "none")
REPLAY_PER_CORRECTION = 4
# Epochs when none are asked for. Without replay an epoch is a fifth of the steps, so it takes more.
REPLAY_EPOCHS = 6
DISTILL_EPOCHS = 10
REPLAY_DATASET = (DEFAULT_DATASET, DEFAULT_DATASET_CONFIG)
# Plain text for a model with `neutral`: dair-ai/emotion holds none, and corrections that are all
# emotions would teach the model to stop answering neutral, on every kind of text (docs/adaptation.md).
NEUTRAL_DATASET = ("google-research-datasets/go_emotions", "simplified")
NEUTRAL_PER_CORRECTION = 1  # one per four dair-ai rows, as in the default model's training mix
REFERENCE_SPLITS = ("train", "validation", "test")


@dataclass
class AdaptOptions:
    """How to adapt. Defaults chosen by measurement (benchmarks/bench_adapt.py, docs/adaptation.md)."""

    epochs: int | None = None  # None: REPLAY_EPOCHS with replay, DISTILL_EPOCHS when distilling
    learning_rate: float = 3e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    # Replay: a directory with dair-ai/emotion's train/validation/test files (emotion_app.data.labelled);
    # None: the Hub. replay_rows None: REPLAY_PER_CORRECTION per correction; 0: no replay (distil).
    replay_data: str | None = None
    replay_rows: int | None = None
    # Neutral replay (a model with `neutral` only): the rows labelled neutral alone of `neutral_data`,
    # a labelled file (GoEmotions' CSV reads as it is); None: GoEmotions from the Hub. neutral_rows
    # None: NEUTRAL_PER_CORRECTION per correction; 0: none.
    neutral_data: str | None = None
    neutral_rows: int | None = None
    distill_weight: float = 0.1
    holdout: str = "auto"  # auto: cv below CV_BELOW corrections, else split; cv; split; none
    folds: int = 5
    seed: int = 42


@dataclass
class Corrections:
    """Corrected rows: texts, label ids, and where each row came from (for messages)."""

    texts: list[str]
    labels: np.ndarray
    where: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """dair-ai/emotion splits as (texts, label ids), or none and the reason why."""

    source: str | None
    splits: dict[str, tuple[list[str], np.ndarray]]
    reason: str = ""

    def in_labels(self, labels: Sequence[str]) -> Reference:
        """The same rows with their ids in a model's `labels` (e.g. the six emotions + neutral); none,
        with the reason, when the model lacks one of the six emotions (it cannot be replayed or scored)."""
        if not self.splits or list(labels) == list(EMOTIONS):
            return self
        try:
            ids = np.array(emotion_ids_in(labels), dtype=np.int64)
        except ValueError as err:
            return Reference(None, {}, f"{err} So {self.source} can neither be replayed nor measured")
        return Reference(self.source, {split: (texts, ids[y]) for split, (texts, y) in self.splits.items()})


# --- corrections and options ---------------------------------------------------------------------

def read_corrections(path: str | Path, text_column: str | None = None, label_column: str | None = None):
    """A corrections file's rows (`data.labelled.RawRows`: texts, label cells as written, where each
    row is), read as every labelled file is (`data.labelled.read_raw_rows`, over the one table
    reader: CSV, TSV, `text;label` .txt, JSON Lines, xlsx, Parquet): a text column and a label column
    (found by name in any case or by their content, or named). `adapt` reads the labels against the
    adapter's own."""
    from emotion_app.data.labelled import read_raw_rows

    return read_raw_rows(path, text_column, label_column)


def check_corrections(texts: Sequence[str], labels: Sequence[object],
                      where: Sequence[str] | None = None, names: Sequence[str] = EMOTIONS) -> Corrections:
    """The corrections as a Corrections, or a ValueError naming the first bad row.
    Labels are names of the model's labels `names` (any case) or their ids, as `labels.parse_label`
    reads them."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, found a single string. Wrap it: [text].")
    texts, labels = list(texts), list(labels)
    where = list(where) if where is not None else [f"correction {i + 1}" for i in range(len(texts))]
    if len(texts) != len(labels):
        raise ValueError(f"found {len(texts)} texts and {len(labels)} labels: expected one label per text.")
    ids = []
    for text, label, place in zip(texts, labels, where):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{place}: the text is {text!r}: expected a non-empty text. Fill it in or remove the row.")
        try:  # numpy scalars (an array of ids) as the Python numbers parse_label takes
            ids.append(parse_label(label.item() if isinstance(label, np.generic) else label, names))
        except ValueError as err:
            raise ValueError(f"{place} ({_preview(text)}): {err} (the labels of the model being adapted). "
                             "Fix the label or remove the row.") from None
    if len(texts) < MIN_CORRECTIONS:
        raise ValueError(f"found {len(texts)} corrections: expected at least {MIN_CORRECTIONS}, fewer cannot "
                         "be learnt from or measured. Correct more rows and try again.")
    return Corrections(texts, np.asarray(ids, dtype=np.int64), where)


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_options(options: AdaptOptions) -> None:
    problems = []
    for name in ("epochs", "batch_size", "folds"):
        value = getattr(options, name)
        if name == "epochs" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "folds" else 1):
            problems.append(f"{name} must be a whole number of at least {2 if name == 'folds' else 1}, found {value!r}")
    if isinstance(options.max_length, bool) or not isinstance(options.max_length, int) or options.max_length < 2:
        problems.append(f"max_length must be a whole number of at least 2 tokens, found {options.max_length!r}")
    if not (isinstance(options.learning_rate, (int, float)) and 0 < options.learning_rate < 1):
        problems.append(f"learning_rate must be a number in (0, 1), found {options.learning_rate!r}")
    for name in ("replay_rows", "neutral_rows"):
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problems.append(f"{name} must be 0 or more (0: no replay), found {value!r}")
    if options.holdout not in HOLDOUTS:
        problems.append(f"holdout must be one of {', '.join(HOLDOUTS)}, found {options.holdout!r}")
    if not 0 <= options.warmup_ratio < 1 or options.distill_weight < 0:
        problems.append("warmup_ratio must be in [0, 1) and distill_weight 0 or more")
    if problems:
        raise ValueError("; ".join(problems) + ". Fix the option(s) and run again.")


def check_output_dir(output_dir: str | Path, parent_dir: str | Path) -> Path:
    """The output directory, unless it is the parent adapter's directory or inside it."""
    out, parent = Path(output_dir).expanduser().resolve(), Path(parent_dir).resolve()
    if out == parent or parent in out.parents:
        where = "is the parent adapter's directory" if out == parent else f"is inside the parent adapter {parent}"
        raise ValueError(f"the output directory {output_dir} {where}: expected a new directory, so that the "
                         "parent is never modified. Choose another output directory.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output {output_dir} is a file: expected a directory for the adapter. "
                         "Choose another output directory.")
    return out


# --- reference data (replay, test, calibration) --------------------------------------------------

def load_reference(replay_data: str | None) -> Reference:
    """dair-ai/emotion: from `replay_data` (a directory; unreadable files raise), else the Hub. An
    unreachable Hub is no error: the Reference is empty and says why (the caller falls back)."""
    if replay_data:
        return _local_reference(Path(replay_data))
    try:
        return _hub_reference()
    except _hub_errors() as err:
        reason = f"{REPLAY_DATASET[0]} could not be loaded from the Hub ({type(err).__name__}: {err})"
        logger.warning("%s; pass --replay_data DIR with its train/validation/test files to replay it", reason)
        return Reference(None, {}, reason)


def _local_reference(directory: Path) -> Reference:
    from emotion_app.data.labelled import DataArguments, read_labeled_file, split_files

    files = split_files(DataArguments(data_dir=str(directory)), REFERENCE_SPLITS)
    if "train" not in files:
        raise ValueError(f"replay data {directory} has no train file: expected train.txt (or .csv, .jsonl, ...) "
                         "with dair-ai/emotion's training rows. Point --replay_data at that directory.")
    splits = {}
    for split, path in files.items():
        data = read_labeled_file(path)
        splits[split] = (list(data["text"]), np.asarray(data["label"], dtype=np.int64))
    return Reference(str(directory), splits)


def _hub_reference() -> Reference:
    from emotion_app.data.labelled import load_hub_splits

    # load_hub_splits asks network.require_hub first: an unreachable Hub fails in seconds
    data = load_hub_splits(*REPLAY_DATASET, REFERENCE_SPLITS)
    splits = {s: (list(data[s]["text"]), np.asarray(data[s]["label"], dtype=np.int64)) for s in data}
    return Reference(f"{REPLAY_DATASET[0]} (Hub)", splits)


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    # OSError covers offline mode, DNS failures and a data set not found (datasets' errors derive
    # from it); HfHubHTTPError derives from the HTTP library's base error (httpx's, requests' in
    # older huggingface_hub), which is what a timeout or a refused connection raises.
    return (OSError, *HfHubHTTPError.__bases__)


@dataclass
class Plain:
    """Texts labelled neutral to replay, where they came from, or none and the reason why."""

    source: str | None
    texts: list[str]
    reason: str = ""


def load_neutral(neutral_data: str | None) -> Plain:
    """The rows labelled neutral alone: of `neutral_data` (a labelled file; unreadable raises), else of
    GoEmotions on the Hub. An unreachable Hub is no error: Plain says why (the caller notes it)."""
    if neutral_data:
        from emotion_app.data.labelled import read_raw_rows, texts_labelled

        texts = texts_labelled(read_raw_rows(neutral_data), NEUTRAL)
        if not texts:
            raise ValueError(f"neutral data {neutral_data} has no row labelled {NEUTRAL!r} alone: expected plain "
                             f"texts with the label {NEUTRAL} (e.g. GoEmotions' train.csv). Check the file.")
        return Plain(str(neutral_data), texts)
    try:
        return _hub_neutral()
    except _hub_errors() as err:
        reason = f"{NEUTRAL_DATASET[0]} could not be loaded from the Hub ({type(err).__name__}: {err})"
        logger.warning("%s; pass --neutral_data FILE with plain texts labelled %s to replay them", reason, NEUTRAL)
        return Plain(None, [], reason)


def _hub_neutral() -> Plain:
    from datasets import load_dataset

    from emotion_app.network import require_hub

    require_hub(f"the data set {NEUTRAL_DATASET[0]}")
    data = load_dataset(*NEUTRAL_DATASET, split="train")
    neutral = data.features["labels"].feature.names.index(NEUTRAL)
    texts = [text for text, labels in zip(data["text"], data["labels"]) if list(labels) == [neutral]]
    return Plain(f"{NEUTRAL_DATASET[0]} (Hub)", texts)


# --- which rows each training takes --------------------------------------------------------------

def holdout_folds(corrections: Corrections, holdout: str, folds: int, seed: int) -> tuple[str, list[np.ndarray]]:
    """(description, held-out row indices per fold). Rows with the same text share a fold, so that a
    duplicate never sits on both sides; folds are stratified by label (round robin per label)."""
    n = len(corrections.texts)
    mode = ("cv" if n < CV_BELOW else "split") if holdout == "auto" else holdout
    if mode == "none":
        return "none", []
    k = min(folds if mode == "cv" else HOLDOUT_FOLDS, n)
    first = {}
    for i, text in enumerate(corrections.texts):
        first.setdefault(text, i)
    unique = np.fromiter(first.values(), dtype=np.int64)
    rng = np.random.default_rng([seed, 1])
    unique = unique[rng.permutation(len(unique))]
    unique = unique[np.argsort(corrections.labels[unique], kind="stable")]
    fold_of_text = {corrections.texts[i]: position % k for position, i in enumerate(unique)}
    fold = np.array([fold_of_text[text] for text in corrections.texts])
    chosen = range(k) if mode == "cv" else range(1)
    described = f"{k}-fold cross-validation" if mode == "cv" else f"held-out {100 // k} %"
    return described, [np.flatnonzero(fold == f) for f in chosen if (fold == f).any()]


def replay_wanted(options: AdaptOptions, n_corrections: int) -> int:
    """Replay rows asked for `n_corrections` training corrections (before capping at what there is)."""
    return options.replay_rows if options.replay_rows is not None else REPLAY_PER_CORRECTION * n_corrections


def neutral_wanted(options: AdaptOptions, n_corrections: int) -> int:
    """Neutral rows asked for `n_corrections` training corrections (before capping at what there is)."""
    return options.neutral_rows if options.neutral_rows is not None else NEUTRAL_PER_CORRECTION * n_corrections


def neutral_sample(plain: Plain, options: AdaptOptions, n: int) -> list[str]:
    """The neutral texts to replay, in a seeded random order; each training takes the first few."""
    pick = np.random.default_rng([options.seed, 4]).permutation(len(plain.texts))[:neutral_wanted(options, n)]
    return [plain.texts[i] for i in pick]


def replay_sample(reference: Reference, options: AdaptOptions, n: int) -> tuple[list[str], np.ndarray]:
    """The rows to replay, in a seeded random order; each training takes the first few it needs."""
    train = reference.splits.get("train")
    if train is None or options.replay_rows == 0:
        return [], np.zeros(0, dtype=np.int64)
    pick = np.random.default_rng([options.seed, 0]).permutation(len(train[0]))[:replay_wanted(options, n)]
    return [train[0][i] for i in pick], train[1][pick]
