"""Labelled data: the Hub data set or local files -> a validated DatasetDict.

Every split has a string column `text` and a ClassLabel column `label` whose names are the label
list (`labels.label_order`'s rule, or `--labels`). Local files are read by the one reader of every
user file (`tables.read_table`), so training, evaluation and the app take the same formats and
encodings. Problems in a file raise ValueError naming the file, the line or row, what was expected
and what was found.

Multi-label sources (GoEmotions' `labels` cell, "admiration joy"): with `--label_mapping` a cell
may hold several names separated by spaces or commas. Each name is mapped (a name the mapping
lacks stays itself; one mapped to null counts for nothing) and the row is kept when exactly one
label remains; rows with none or with several different ones are dropped, counted in the log and
in metrics.json.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, concatenate_datasets, load_dataset

from emotion_app.constants import DEFAULT_DATASET, DEFAULT_DATASET_CONFIG
from emotion_app.data.tables import read_table, resolve_column
from emotion_app.labels import EMOTIONS, check_labels, emotion_ids_in, label_order, parse_label

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx")  # looked for in --data_dir
LABEL_NAMES = ("label", "labels", "emotion", "emotions", "class", "category", "target")
SEPARATORS = re.compile(r"[\s,]+")  # between the names of a multi-label cell (with a mapping only)


def features(labels=EMOTIONS) -> Features:
    return Features({"text": Value("string"), "label": ClassLabel(names=list(labels))})


FEATURES = features()


@dataclass
class RawRows:
    """A labelled file's rows before the label list is known: texts, label cells as read, and
    where each row is, for messages; `dropped` counts the rows a mapping set aside, by reason."""
    path: Path
    texts: list[str]
    cells: list[str]
    places: list[str]
    dropped: Counter = field(default_factory=Counter)

    def select(self, indices) -> RawRows:
        """These rows, in the order given (the counts of dropped rows stay with the file's RawRows)."""
        indices = list(indices)
        return RawRows(self.path, [self.texts[i] for i in indices], [self.cells[i] for i in indices],
                       [self.places[i] for i in indices])


def load_splits(args: DataArguments, splits: tuple[str, ...] = SPLITS, dropped: dict | None = None,
                seed: int = 42, capped: list | None = None) -> DatasetDict:
    """Load the requested splits from local files if any are given, else from the Hub. The label
    list is `args.labels`, else found in the training rows (labels.label_order). `dropped`, when
    given, receives {file: {reason: rows}} for the rows a label mapping or the per-label cap of
    extra files (sampled with `seed`) set aside; `capped` receives the rows the cap set aside, as
    one RawRows per extra file (held out from training, e.g. to fit a neutral margin on)."""
    files = split_files(args, splits)
    if not files:
        data = load_hub_splits(args.dataset_name, args.dataset_config, splits)
        if args.labels and list(args.labels) != list(EMOTIONS):
            data = DatasetDict({split: relabel(ds, check_labels(args.labels, "--labels")) for split, ds in data.items()})
        _check_missing(data, splits)
        return _limit(data, args.max_train_samples, args.max_eval_samples)
    mapping = read_label_mapping(args.label_mapping) if args.label_mapping else None
    raw = {split: [read_raw_rows(path, mapping=mapping)] for split, path in files.items()}
    if "train" in raw:
        for path in args.extra_train_files or ():
            kept, aside = split_by_cap(read_raw_rows(path, mapping=mapping), args.extra_train_max_per_label, seed)
            raw["train"].append(kept)
            if capped is not None:
                capped.append(aside)
    _check_missing(raw, splits)
    labels = check_labels(args.labels, "--labels") if args.labels else \
        infer_labels([cell for rows in raw.get("train", ()) for cell in rows.cells])
    data = DatasetDict({split: concatenate_datasets([encode(rows, labels) for rows in parts])
                        for split, parts in raw.items()})
    for split, parts in raw.items():
        for rows in parts:
            if rows.dropped:
                logger.info("%s (%s): dropped %s", rows.path, split, dict(rows.dropped))
                if dropped is not None:
                    dropped[str(rows.path)] = dict(rows.dropped)
    data = _limit(data, args.max_train_samples, args.max_eval_samples)
    if "train" in data and len(set(data["train"]["label"])) < 2:
        only = labels[data["train"][0]["label"]]
        raise ValueError(f"the training rows all have the label {only!r}: expected rows of at least two labels. "
                         "Add rows of the other labels.")
    return data


def split_by_cap(rows: RawRows, cap: int | None, seed: int) -> tuple[RawRows, RawRows]:
    """(at most `cap` rows of each label, a seeded random sample; the rest, set aside and counted in
    `rows.dropped`), each in file order. A large extra source would otherwise set the label balance
    alone; the rows set aside stay unseen by training (e.g. to fit a neutral margin on)."""
    if cap is None:
        return rows, rows.select([])
    if cap < 1:
        raise ValueError(f"--extra_train_max_per_label is {cap}: expected a positive number of rows, or leave it out.")
    by_label: dict[str, list[int]] = {}
    for i, cell in enumerate(rows.cells):
        by_label.setdefault(cell.strip().lower(), []).append(i)
    rng = random.Random(seed)
    keep = set(i for found in by_label.values() for i in (rng.sample(found, cap) if len(found) > cap else found))
    aside = [i for i in range(len(rows.cells)) if i not in keep]
    if aside:
        rows.dropped["over --extra_train_max_per_label"] += len(aside)
    return replace(rows.select(sorted(keep)), dropped=rows.dropped), rows.select(aside)


def texts_labelled(rows: RawRows, label: str) -> list[str]:
    """The texts of the rows whose label cell is `label` alone (any case): e.g. GoEmotions' comments
    rated neutral and nothing else, whose cell reads "neutral" where a mixed one reads "joy neutral"."""
    return [text for text, cell in zip(rows.texts, rows.cells) if str(cell).strip().lower() == label]


def relabel(dataset: Dataset, labels) -> Dataset:
    """Six-emotion rows (the Hub data set) with their ids in `labels` (a model with more labels, e.g.
    neutral); ValueError naming the emotions `labels` lacks."""
    if list(labels) == list(EMOTIONS):
        return dataset
    ids = emotion_ids_in(labels)
    return Dataset.from_dict({"text": dataset["text"], "label": [ids[i] for i in dataset["label"]]},
                             features=features(labels))


def _check_missing(data, splits) -> None:
    missing = [s for s in splits if s not in data]
    if missing:
        raise ValueError(
            f"no {', '.join(missing)} split found: expected a file for each of {', '.join(splits)} "
            f"(found {', '.join(data) or 'none'}). Pass --data_dir with train/validation/test files "
            "or --train_file/--validation_file/--test_file."
        )


def infer_labels(cells: list[str]) -> tuple[str, ...]:
    """The label list of training rows: ids mean the six emotions; names follow labels.label_order."""
    names = {cell.strip().lower() for cell in cells if not cell.strip().isdigit()}
    return label_order(names) if names else EMOTIONS


def read_label_mapping(path: str | Path) -> dict[str, str | None]:
    """A JSON object {source label: label or null}, keys and values lower-cased."""
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--label_mapping {path} could not be read as JSON ({err}): expected an object "
                         'such as {"amusement": "joy", "approval": null}. Check the path.') from None
    if not isinstance(mapping, dict):
        raise ValueError(f"--label_mapping {path} holds {str(mapping)[:120]}: expected an object of source label -> "
                         "label name or null. Fix the file.")
    bad = {key: value for key, value in mapping.items() if value is not None and not (isinstance(value, str)
                                                                                       and value.strip())}
    if bad:
        raise ValueError(f"--label_mapping {path}: expected a label name or null for each source label, found "
                         f"{str(bad)[:120]}. Fix those entries.")
    return {key.strip().lower(): value.strip().lower() if value else None for key, value in mapping.items()}


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
        if names is not None and list(names) != list(EMOTIONS):
            raise ValueError(f"Hub data set {name} has labels {names}: expected {list(EMOTIONS)} in that order.")
        out[split] = ds.select_columns(["text", "label"]).cast(FEATURES)
    return out


def read_labeled_file(path: str | Path, text_column: str | None = None, label_column: str | None = None, *,
                      labels=EMOTIONS, max_bytes: int | None = None, max_rows: int | None = None) -> Dataset:
    """One labelled file -> a Dataset with `features(labels)`, read by the same reader as every
    other file a user gives (`tables.read_table`: any format, encoding and delimiter the Batch tab
    takes). Every row needs a text and one of `labels` (names in any case or ids), else ValueError
    naming the row. Column choice as in `read_raw_rows`."""
    return encode(read_raw_rows(path, text_column, label_column, max_bytes=max_bytes, max_rows=max_rows), labels)


def read_raw_rows(path: str | Path, text_column: str | None = None, label_column: str | None = None, *,
                  mapping: dict[str, str | None] | None = None, max_bytes: int | None = None,
                  max_rows: int | None = None) -> RawRows:
    """A labelled file's rows with their label cells as text (mapped when `mapping` is given).

    The label column is `label_column` (a name in any case, or a position), else the one named like
    a label (label, emotion, class, ...), else the only other column whose every value is an emotion
    name or id; the text column is `text_column`, else the reader's guess. Blank rows are skipped;
    every other row needs a text and a label cell, else ValueError naming the row.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"data file {path} is a folder: expected a file of labelled rows. Name the file in it.")
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
    rows = RawRows(path, [], [], [])
    for i, (value, raw) in enumerate(zip(text_cells, label_cells)):
        if not value.strip() and not raw.strip():
            continue  # a blank line or row holds nothing to learn from or to report
        place = f"{path}, {_place(path, table, i)}"
        if not value.strip():
            raise ValueError(f"{place}: the text is empty. Every row needs a text; remove the row.")
        if (kind == "text;label" or path.suffix.lower() == ".txt") and not raw.strip():
            raise ValueError(f"{place}: found {value[:60]!r} with no ';'. Expected `text;label` on each line.")
        if mapping is not None:
            found = {mapping.get(name, name) for name in SEPARATORS.split(raw.strip().lower()) if name}
            found.discard(None)
            if len(found) != 1:
                rows.dropped["no label after mapping" if not found else "several labels after mapping"] += 1
                continue
            raw = found.pop()
        rows.texts.append(value)
        rows.cells.append(raw)
        rows.places.append(place)
    if not rows.texts and not rows.dropped:
        raise ValueError(f"{path} has no data rows: expected at least one labelled example.")
    return rows


def encode(rows: RawRows, labels) -> Dataset:
    """The rows as a Dataset against `labels`; ValueError naming the first row whose label is not one."""
    ids = []
    for cell, place in zip(rows.cells, rows.places):
        try:
            ids.append(parse_label(cell, labels))
        except ValueError as err:
            raise ValueError(f"{place}: {err}. The label list comes from the training rows or --labels.") from None
    return Dataset.from_dict({"text": rows.texts, "label": ids}, features=features(labels))


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
    extra_train_files: list[str] | None = field(
        default=None,
        metadata={"help": "More labelled files added to the training rows (e.g. GoEmotions' train.csv), read like "
                  "the others; with --label_mapping for sources whose labels are not this model's."},
    )
    extra_train_max_per_label: int | None = field(
        default=None,
        metadata={"help": "Keep at most N rows of each label from each extra training file (a random sample drawn "
                  "with --seed), so that a large extra source does not set the label balance alone."},
    )
    label_mapping: str | None = field(
        default=None,
        metadata={"help": "A JSON file {source label: label or null} applied to every local file; a label cell may "
                  "then hold several names, and a row is kept when exactly one label remains "
                  "(configs/mappings/goemotions.json)."},
    )
    labels: list[str] | None = field(
        default=None,
        metadata={"help": "The label list, in order. Default: found in the training rows (the six emotions in "
                  "dair-ai's order, then neutral; other names sorted alphabetically)."},
    )
