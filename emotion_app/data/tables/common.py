"""What the table reader's parts share: the layout of a file, a row with its place in the file,
the tally of what one pass over a file met, and the wording of places in notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

ACCEPTED = "a CSV, TSV or TXT table, JSON Lines, Parquet or an Excel .xlsx workbook"


@dataclass
class Layout:
    """How the records of a file are cut.

    `kind` is csv, lines, text;label, jsonl, json, xlsx or parquet. For csv: `quoting` False reads
    quote marks as text (a tab-separated file whose quotes do not enclose cells), `skip_lines` is
    the number of leading lines that are not rows (Excel's `sep=;`), `width` the usual number of
    cells a row and `typical_chars` the usual size of a row, both from the head of the file (a cell
    far larger than that, over lines that read as rows, is a quote left open).
    """

    kind: str
    delimiter: str | None = None
    quoting: bool = True
    skip_lines: int = 0
    width: int = 1
    typical_chars: int = 80

    @property
    def unit(self) -> str:
        """What a place in this file is called in notes and errors."""
        if self.kind in ("xlsx", "parquet"):
            return "row"
        return "item" if self.kind == "json" else "line"


class Row(NamedTuple):
    """One record: where it starts (file line, sheet row, or JSON line or item, from 1) and its
    cells (a list of str, or a dict for JSON)."""

    line: int
    cells: list | dict


@dataclass
class Tally:
    """What one pass over a file met that the notes must account for; filled as the rows go by."""

    header: list[str] | None = None
    leading_blank: list[int] = field(default_factory=list)
    trailing_blank: list[int] = field(default_factory=list)
    repeated_header: list[int] = field(default_factory=list)
    # Lines whose quote does not enclose a cell, read on their own: (line, last line the quote reached)
    loose_quotes: list[tuple[int, int]] = field(default_factory=list)
    swallowed: list[tuple[int, int]] = field(default_factory=list)  # (line, last line) read line by line
    multiline: int = 0  # rows whose quoted cells hold line breaks
    first_multiline: tuple[int, int] | None = None
    end_marks: str = ""  # end-of-file control characters left out
    blank_lines: list[int] = field(default_factory=list)  # JSON Lines: blank lines, which are no records
    json_key: str | None = None  # JSON document: where the records list sits
    json_other_keys: list[str] = field(default_factory=list)
    sheet_title: str | None = None
    sheet_note: str | None = None


def where(numbers: list[int], unit: str, limit: int = 8) -> str:
    """`numbers` in words, runs joined: "line 5", "lines 5 to 7 and 12", "... and 40 more"."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    parts = [f"{a:,}" if a == b else f"{a:,} to {b:,}" for a, b in runs[:limit]]
    if len(runs) > limit:
        shown = sum(b - a + 1 for a, b in runs[:limit])
        parts.append(f"{len(numbers) - shown:,} more")
    plural = len(numbers) > 1
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{unit}{'s' if plural else ''} {text}"
