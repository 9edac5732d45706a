"""Labelled data: the Hub data set or local files -> a validated DatasetDict.

Every split has a string column `text` and a ClassLabel column `label` with the names in
`labels.LABELS`. Problems in a file raise ValueError naming the file, the line or row, what
was expected and what was found.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

from .labels import LABELS, parse_label

if TYPE_CHECKING:  # config imports transformers' TrainingArguments (and torch): seconds that the
    # app's Evaluation tab would pay on its first labelled file
    from .config import DataArguments

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".parquet")
FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS))})


def load_splits(args: DataArguments, splits: tuple[str, ...] = SPLITS) -> DatasetDict:
    """Load the requested splits from local files if any are given, else from the Hub."""
    files = split_files(args, splits)
    if files:
        data = DatasetDict({split: read_labeled_file(path) for split, path in files.items()})
    else:
        data = load_hub_splits(args.dataset_name, args.dataset_config, splits)
    missing = [s for s in splits if s not in data]
    if missing:
        raise ValueError(
            f"no {', '.join(missing)} split found: expected a file for each of {', '.join(splits)} "
            f"(found {', '.join(data) or 'none'}). Pass --data_dir with train/validation/test files "
            "or --train_file/--validation_file/--test_file."
        )
    return _limit(data, args.max_train_samples, args.max_eval_samples)


def split_files(args: DataArguments, splits: tuple[str, ...] = SPLITS) -> dict[str, Path]:
    """Map split -> local file from --data_dir and the per-split flags (flags win)."""
    files: dict[str, Path] = {}
    if args.data_dir:
        directory = Path(args.data_dir)
        if not directory.is_dir():
            raise ValueError(f"--data_dir {directory} is not a directory: expected one holding "
                             "train/validation/test files. Check the path.")
        for split in splits:
            found = [directory / f"{split}{suffix}" for suffix in SUFFIXES
                     if (directory / f"{split}{suffix}").is_file()]
            if len(found) > 1:
                raise ValueError(f"{directory} holds several {split} files ({', '.join(p.name for p in found)}): "
                                 "expected one. Remove or rename the extra ones.")
            if found:
                files[split] = found[0]
    flags = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    files.update({split: Path(path) for split, path in flags.items() if path and split in splits})
    return files


def load_hub_splits(name: str, config: str | None, splits: tuple[str, ...]) -> DatasetDict:
    """Download the Hub data set and check its columns and label names."""
    logger.info("Loading %s (%s) from the Hugging Face Hub", name, config)
    data = load_dataset(name, config)
    out = DatasetDict()
    for split in splits:
        if split not in data:
            continue
        ds = data[split]
        if "text" not in ds.column_names or "label" not in ds.column_names:
            raise ValueError(f"Hub data set {name} split {split} has columns {ds.column_names}: "
                             "expected `text` and `label`.")
        names = getattr(ds.features["label"], "names", None)
        if names is not None and list(names) != list(LABELS):
            raise ValueError(f"Hub data set {name} has labels {names}: expected {list(LABELS)} in that order.")
        out[split] = ds.select_columns(["text", "label"]).cast(FEATURES)
    return out


def read_labeled_file(path: str | Path, text_column: str = "text", label_column: str = "label") -> Dataset:
    """Read one labelled file (format from its suffix) into a Dataset with FEATURES."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {path} does not exist: expected a file. Check the path.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: expected labelled rows. Check that the file was exported fully.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path} has suffix {suffix or '(none)'}: expected one of {', '.join(SUFFIXES)}.")
    if suffix == ".txt":
        texts, raw_labels, where = _read_semicolon_lines(path)
    else:
        texts, raw_labels, where = _read_table(path, suffix, text_column, label_column)
    if not texts:
        raise ValueError(f"{path} has no data rows: expected at least one labelled example.")
    labels = []
    for text, raw, place in zip(texts, raw_labels, where):
        if not text.strip():
            raise ValueError(f"{path}, {place}: the text is empty. Every row needs a text; remove the row.")
        try:
            labels.append(parse_label(raw))
        except ValueError as err:
            raise ValueError(f"{path}, {place}: {err}") from None
    return Dataset.from_dict({"text": texts, "label": labels}, features=FEATURES)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}): expected a UTF-8 file. "
                         "Re-save it as UTF-8.") from None


def _read_semicolon_lines(path: Path) -> tuple[list[str], list[str], list[str]]:
    """`text;label` a line, as in the original release; the label follows the last ';'."""
    texts, labels, where = [], [], []
    # Universal newlines only: str.splitlines() also breaks at \u2028, \x85 etc. inside a text.
    lines = _read_text(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition(";")
        if not sep:
            raise ValueError(f"{path}, line {number}: found {line[:60]!r} with no ';'. "
                             "Expected `text;label` on each line.")
        texts.append(text)
        labels.append(label)
        where.append(f"line {number}")
    return texts, labels, where


def _read_table(path: Path, suffix: str, text_column: str, label_column: str):
    frame = _read_frame(path, suffix)
    if frame.empty and not len(frame.columns):  # e.g. a JSON Lines file of blank lines
        raise ValueError(f"{path} has no data rows: expected at least one labelled example.")
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} has columns {list(frame.columns)}: missing {missing}. Expected a "
                         f"`{text_column}` and a `{label_column}` column; rename the header.")
    first_row = 2 if suffix in (".csv", ".tsv") else 1  # a CSV's line 1 is its header
    where = [f"row {i + first_row}" for i in range(len(frame))]
    texts = ["" if pd.isna(t) else str(t) for t in frame[text_column]]
    labels = ["" if pd.isna(v) else v for v in frame[label_column]]
    return texts, labels, where


def _read_frame(path: Path, suffix: str) -> pd.DataFrame:
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                               keep_default_na=False, encoding="utf-8-sig")
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        return pd.read_parquet(path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}): expected a UTF-8 file. "
                         "Re-save it as UTF-8.") from None
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise ValueError(f"{path} could not be read as {suffix[1:]}: {err}. "
                         f"Check that the file is valid {suffix[1:]}.") from None


def _limit(data: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    for split, cap in (("train", max_train), ("validation", max_eval), ("test", max_eval)):
        if cap is not None and split in data and len(data[split]) > cap:
            data[split] = data[split].select(range(cap))
    return data
