"""Labelled data: the Hub data set or local files -> a validated DatasetDict.

Every split has a string column `text` and a ClassLabel column `label` with the names in
`labels.LABELS`. Local files are read by the one reader of every user file (`tables.read_table`),
so training, evaluation and the app take the same formats and encodings. Problems in a file raise ValueError naming the file, the line or row, what
was expected and what was found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

from emotion_app.constants import DEFAULT_DATASET, DEFAULT_DATASET_CONFIG
from emotion_app.data.tables import read_table, resolve_column
from emotion_app.labels import LABELS, parse_label

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx")  # looked for in --data_dir
LABEL_NAMES = ("label", "labels", "emotion", "emotions", "class", "category", "target")
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
    from emotion_app.network import require_hub

    require_hub(f"the data set {name}")
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


def read_labeled_file(path: str | Path, text_column: str | None = None, label_column: str | None = None, *,
                      max_bytes: int | None = None, max_rows: int | None = None) -> Dataset:
    """One labelled file -> a Dataset with FEATURES, read by the same reader as every other file a
    user gives (`tables.read_table`: any format, encoding and delimiter the Batch tab takes).

    The label column is `label_column` (a name in any case, or a position), else the one named like
    a label (label, emotion, class, ...), else the only other column whose every value is a label;
    the text column is `text_column`, else the reader's guess. Blank rows are skipped; every other
    row needs a text and one of the six labels (names in any case or ids 0-5), else ValueError
    naming the row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {path} does not exist: expected a file. Check the path.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: expected labelled rows. Check that the file was exported fully.")
    try:
        table = read_table(path, max_bytes=max_bytes, max_rows=max_rows, text_column=text_column)
    except ValueError as err:
        if "no rows under it" in str(err) or "holds no text" in str(err):
            raise ValueError(f"{path} has no data rows: expected at least one labelled example. ({err})") from None
        raise
    columns = [str(c) for c in table.frame.columns]
    if len(columns) == 1 and not label_column:  # `text;label` lines where some line has no ';'
        pairs = [value.rpartition(";")[::2] for value in table.frame[columns[0]]]
        text_cells, label_cells, kind = [t for t, _ in pairs], [lab for _, lab in pairs], "text;label"
    else:
        label = _label_column(path, table, columns, label_column)
        text = table.text_column if text_column or table.text_column != label else _other_column(columns, label)
        text_cells, label_cells, kind = table.frame[text].tolist(), table.frame[label].tolist(), table.kind
    texts, labels = [], []
    for i, (value, raw) in enumerate(zip(text_cells, label_cells)):
        if not value.strip() and not raw.strip():
            continue  # a blank line or row holds nothing to learn from or to report
        place = f"{path}, {_place(path, table, i)}"
        if not value.strip():
            raise ValueError(f"{place}: the text is empty. Every row needs a text; remove the row.")
        if (kind == "text;label" or path.suffix.lower() == ".txt") and not raw.strip():
            raise ValueError(f"{place}: found {value[:60]!r} with no ';'. Expected `text;label` on each line.")
        try:
            labels.append(parse_label(raw))
        except ValueError as err:
            raise ValueError(f"{place}: {err}") from None
        texts.append(value)
    if not texts:
        raise ValueError(f"{path} has no data rows: expected at least one labelled example.")
    return Dataset.from_dict({"text": texts, "label": labels}, features=FEATURES)


def _label_column(path: Path, table, columns: list[str], requested: str | None) -> str:
    if requested:
        return resolve_column(requested, columns, str(path))
    named = [c for c in columns if c.strip().lower() in LABEL_NAMES]
    if named:
        return min(named, key=lambda c: LABEL_NAMES.index(c.strip().lower()))
    candidates = [c for c in columns if c != table.text_column and _all_labels(table.frame[c])]
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(f"{path} has columns {columns}: expected a label column (named one of "
                     f"{', '.join(LABEL_NAMES[:4])}, ... in any case, or holding only emotion names or ids "
                     f"0-5), found {'none' if not candidates else 'several: ' + ', '.join(candidates)}. "
                     "Name it `label` in the header, or pass the label column.")


def _all_labels(values) -> bool:
    filled = [v for v in values if v.strip()]
    if not filled:
        return False
    try:
        for value in filled:
            parse_label(value)
    except ValueError:
        return False
    return True


def _other_column(columns: list[str], label: str) -> str:
    others = [c for c in columns if c != label]
    if not others:
        raise ValueError(f"the file has only the label column {label!r}: expected a text column too.")
    return others[0]


def _place(path: Path, table, index: int) -> str:
    """Where row `index` of the frame is in the file, as a person would look for it."""
    if table.kind in ("text;label", "lines") or path.suffix.lower() == ".txt":
        return f"line {index + 1 + table.has_header}"
    return f"row {index + 1 + (table.has_header and table.kind not in ('json', 'jsonl'))}"


def _limit(data: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    for split, cap in (("train", max_train), ("validation", max_eval), ("test", max_eval)):
        if cap is not None and split in data and len(data[split]) > cap:
            data[split] = data[split].select(range(cap))
    return data


@dataclass
class DataArguments:
    """Where labelled data comes from: the Hub data set, or local files (train.py's data options)."""

    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={"help": "Hub data set with text/label columns, used when no local files are given."},
    )
    dataset_config: str = field(
        default=DEFAULT_DATASET_CONFIG, metadata={"help": "Configuration of the Hub data set."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Directory holding train/validation/test files (.txt `text;label`, .csv, .tsv, "
            ".jsonl, .parquet), e.g. ../shared/data/emotion. Overrides --dataset_name."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Training file (overrides data_dir's)."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation file, used to choose the best checkpoint."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Test file, evaluated once at the end."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training rows (for quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N validation and test rows."}
    )
