"""Header and columns: whether the first row names the columns, unique column names, and which
column holds the texts to classify."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

# Header names that say "this column holds the text to classify", best first.
TEXT_NAMES = ("text", "texts", "sentence", "tweet", "comment", "comments", "message", "review",
              "content", "body", "utterance", "post", "feedback", "answer", "response", "description",
              "document", "input", "question", "title")
OTHER_HEADER_NAMES = ("label", "labels", "emotion", "emotions", "id", "category", "class", "target",
                      "date", "time", "name", "author", "user", "score", "rating", "source", "lang",
                      "language", "country", "index", "sentiment", "tag", "tags", "url")
# Values of label columns: a first row holding one is a row of data, not the column names.
LABEL_VALUES = frozenset(("sadness", "joy", "love", "anger", "fear", "surprise", "neutral", "disgust",
                          "happiness", "positive", "negative", "happy", "sad", "angry", "scared",
                          "surprised", "pos", "neg"))


def looks_like_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns. When unsure, no: a data row read as a header
    would not be scored, while a header read as data is only one extra scored row."""
    first = [cell.strip() for cell in rows[0]]
    if any(_known_name(cell) for cell in first):
        return True
    if len(first) < 2 or len(rows) < 2:
        return False
    if _narrower_than_the_rows(first, rows[1:]):
        return False
    votes = 0
    for j, cell in enumerate(first):
        below = [r[j].strip() for r in rows[1:] if j < len(r) and r[j].strip()]
        votes += _header_vote(cell, below)
    return votes >= 2


def _narrower_than_the_rows(first: list[str], below: list[list[str]]) -> bool:
    """A header names every column it heads: a first row with fewer filled cells than the rows
    under it usually have is a short row of data."""
    widths = [len([c for c in r if c.strip()]) for r in below if any(c.strip() for c in r)]
    if len(widths) < 2:
        return False
    usual = statistics.median_low(widths)
    return len([c for c in first if c]) < usual


def _header_vote(cell: str, below: list[str]) -> int:
    if not cell or not below:
        return 0
    folded = {value.lower() for value in below}
    if is_number(cell) or cell.lower() in folded:
        return -2  # headers are not numbers, and do not repeat as values of their own column
    if all(is_number(value) for value in below):
        return 2
    if cell.lower() in LABEL_VALUES:
        return -2  # a label value over a column of words is a row of data
    if len(cell) > 40 or len(cell.split()) > 4 or cell[-1] in ".!?":
        return -1
    if len(below) >= 4 and len(folded) <= len(below) // 2:  # categories; the cell is not one
        return 0 if _shaped_like(cell, below) else 1
    if statistics.median(len(value) for value in below) >= 3 * len(cell):
        return 1
    return 0


def _shaped_like(cell: str, values: list[str]) -> bool:
    """The cell is written like the column's categories (all lowercase words, say): it may be one."""
    def shape(value: str) -> tuple[bool, bool]:
        return value.islower(), value.isalpha()
    return all(shape(value) == shape(cell) for value in values)


def normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _known_name(cell: str) -> bool:
    name = normal(cell)
    return name in TEXT_NAMES or name in OTHER_HEADER_NAMES


def is_number(value: str) -> bool:
    return re.fullmatch(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?%?", value) is not None



def unique_name(name: str, taken) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def column_names(header: list[str], width: int, notes: list[str]) -> list[str]:
    names: list[str] = []
    renamed, filled = [], []
    for i in range(width):
        given = header[i].strip() if i < len(header) else ""
        name = given or f"column_{i + 1}"
        if i < len(header) and not given:
            filled.append(name)
        unique = unique_name(name, names)
        if unique != name:
            renamed.append(f"'{name}' -> '{unique}'")
        names.append(unique)
    if header and filled:
        notes.append(f"Empty column names were filled in: {', '.join(filled)}.")
    if renamed:
        notes.append(f"Duplicate column names were made unique: {', '.join(renamed)}.")
    return names


def span(columns: list[str]) -> str:
    if len(columns) <= 2:
        return " and ".join(columns)
    return f"{columns[0]} to {columns[-1]}"


def choose_text_column(path: Path, columns: list[str], sample: list[list[str]], has_header: bool,
                       requested: str | None, notes: list[str]) -> str:
    if requested is not None:
        return resolve_column(requested, columns, path.name)
    name, reason = _guess_text_column(columns, sample, has_header)
    if len(columns) > 1:
        notes.append(f"Text column: '{name}' ({reason}). Choose another if that is wrong.")
    return name


def resolve_column(requested: str, columns: list[str], source: str = "the table") -> str:
    """`requested` as a column of `columns`: exact name, name in any case, or position (1 = first)."""
    if requested in columns:
        return requested
    folded = {column.strip().lower(): column for column in columns}
    if requested.strip().lower() in folded:
        return folded[requested.strip().lower()]
    if requested.strip().isdigit() and 1 <= int(requested) <= len(columns):
        return columns[int(requested) - 1]
    raise ValueError(f"{source} has no column {requested!r}: found {', '.join(map(repr, columns))}. "
                     "Give one of these names, or a position (1 = first column).")


def _guess_text_column(columns: list[str], sample: list[list[str]], has_header: bool) -> tuple[str, str]:
    filled = [[r[j].strip() for r in sample if r[j].strip()] for j in range(len(columns))]
    wordy = [j for j in range(len(columns)) if not filled[j] or not all(map(is_number, filled[j]))]
    named = [c for c in columns if has_header and normal(c) in TEXT_NAMES]
    if not wordy and named:  # a header that says "text" names the column, numbers or not
        return named[0], "its name says it holds text"
    if not wordy:
        raise ValueError(f"no column holds text: every column ({', '.join(map(repr, columns))}) holds only "
                         "numbers, expected a column of texts to classify. If a number column is what you "
                         "want to score, name it: --text_column NAME on the command line, the Text column "
                         "in the app.")
    if has_header:
        for wanted in TEXT_NAMES:
            for j in wordy:
                if normal(columns[j]) == wanted:
                    return columns[j], "its name says it holds text"
        for wanted in TEXT_NAMES:
            for j in wordy:
                if wanted in normal(columns[j]).split("_"):
                    return columns[j], "its name says it holds text"
    if not sample:
        return columns[0], "the first column"
    averages = [sum(len(r[j]) for r in sample) / len(sample) if j in wordy else -1.0
                for j in range(len(columns))]
    best = max(range(len(columns)), key=lambda j: (averages[j], -j))
    return columns[best], "it holds the longest texts"
