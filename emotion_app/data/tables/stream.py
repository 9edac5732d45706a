"""The table as the rest of the project sees it: decide everything about a file, count its rows in
one pass, then hand them out whole (`read_table`) or in chunks (`iter_chunks`), with notes that
account for every line that is not a row of its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from emotion_app.data.tables.cells import json_cell
from emotion_app.data.tables.columns import (
    choose_text_column,
    column_names,
    looks_like_header,
    span,
)
from emotion_app.data.tables.common import Layout, Row, Tally, where
from emotion_app.data.tables.parquet import parquet_rows
from emotion_app.data.tables.sniff import SAMPLE_RECORDS, check_file, read_head, sniff
from emotion_app.data.tables.text import QuotesAreText, text_rows
from emotion_app.data.tables.workbook import (
    column_letter,
    formulas_without_results,
    xlsx_rows,
)

logger = logging.getLogger(__name__)

END_MARK_NAMES = {"\x1a": "Ctrl-Z (\\x1a)", "\x04": "Ctrl-D (\\x04)", "\x00": "NUL (\\x00)"}


@dataclass
class Table:
    """A whole table in memory. `frame` holds every input row and column, every cell a str.

    `notes` are plain sentences for the user about what was guessed or changed; `encoding` is ""
    and `delimiter` None for Excel workbooks, and `delimiter` is None for JSON and one-column text.
    `lines` gives, for each row of `frame`, the line (sheet row, JSON item) it starts on, so that
    a message about a row can name the place in the file.
    """

    frame: pd.DataFrame
    notes: list[str]
    text_column: str
    encoding: str
    delimiter: str | None
    has_header: bool = True
    kind: str = "csv"
    lines: list[int] = field(default_factory=list)


@dataclass
class TableStream:
    """Everything decided about a file before streaming it; `chunks()` then yields its rows."""

    path: Path
    layout: Layout
    encoding: str
    has_header: bool
    columns: list[str]
    text_column: str
    n_rows: int
    notes: list[str] = field(default_factory=list)
    keys: list[str] | None = None  # JSON: the keys, in the order of `columns`

    @property
    def delimiter(self) -> str | None:
        return self.layout.delimiter

    def rows(self) -> Iterator[Row]:
        """Every data row in file order, padded to the columns."""
        width = len(self.columns)
        try:
            for row in _data_rows(self):
                if len(row.cells) > width:
                    raise ValueError(f"{self.path.name} changed while it was being read: a row has "
                                     f"{len(row.cells)} cells, expected at most {width}. Read it again.")
                yield row if len(row.cells) == width else Row(row.line, row.cells + [""] * (width - len(row.cells)))
        except QuotesAreText:
            raise ValueError(f"{self.path.name} changed while it was being read: its quoting is not what "
                             "it was a moment ago. Read it again.") from None

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """DataFrames of at most `chunk_rows` rows, in file order, indexed by row number from 0."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, found {chunk_rows}. Pass a positive number.")
        cells: list[list[str]] = []
        start = 0
        for row in self.rows():
            cells.append(row.cells)
            if len(cells) == chunk_rows:
                yield _frame(cells, self.columns, start)
                start += len(cells)
                cells = []
        if cells or start == 0:
            yield _frame(cells, self.columns, start)


def read_table(path: str | Path, *, max_bytes: int | None = None, max_rows: int | None = None,
               text_column: str | None = None, header: bool | None = None) -> Table:
    """The whole file as a Table. `header` None guesses whether the first row is a header."""
    stream = open_table(path, max_bytes=max_bytes, max_rows=max_rows, text_column=text_column,
                        header=header)
    rows = list(stream.rows())
    return Table(frame=_frame([r.cells for r in rows], stream.columns, 0), notes=stream.notes,
                 text_column=stream.text_column, encoding=stream.encoding, delimiter=stream.delimiter,
                 has_header=stream.has_header, kind=stream.layout.kind, lines=[r.line for r in rows])


def iter_chunks(path: str | Path, chunk_rows: int, *, max_bytes: int | None = None,
                max_rows: int | None = None, text_column: str | None = None,
                header: bool | None = None) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most `chunk_rows` rows (same rules as read_table)."""
    stream = open_table(path, max_bytes=max_bytes, max_rows=max_rows, text_column=text_column,
                        header=header)
    yield from stream.chunks(chunk_rows)


def open_table(path: str | Path, *, max_bytes: int | None = None, max_rows: int | None = None,
               text_column: str | None = None, header: bool | None = None) -> TableStream:
    """Decide encoding, layout, header and columns, and count the rows, without keeping them."""
    path = Path(path)
    size = check_file(path, max_bytes)
    layout, encoding, notes = sniff(path, read_head(path), size)
    try:
        return _describe(path, layout, encoding, list(notes), max_rows, text_column, header)
    except QuotesAreText as fault:
        logger.info("%s: %s", path.name, fault)
        notes.append(fault.note())
    return _describe(path, replace(layout, quoting=False), encoding, notes, max_rows, text_column, header)


# ---------------------------------------------------------------------------------------------
# Rows of any kind of file, and the rows under the header


def _rows(path: Path, layout: Layout, encoding: str, tally: Tally) -> Iterator[Row]:
    """Rows from the start of the file (header included). JSON rows hold dicts, others lists of str."""
    if layout.kind == "xlsx":
        return xlsx_rows(path, tally)
    if layout.kind == "parquet":
        return parquet_rows(path)
    return text_rows(path, layout, encoding, tally)


def _filled(cells: list[str]) -> bool:
    return any(map(str.strip, cells))


def _key(cells: list[str]) -> tuple[str, ...]:
    key = [cell.strip() for cell in cells]
    while key and not key[-1]:
        key.pop()
    return tuple(key)


def _body(rows: Iterator[Row], has_header: bool, tally: Tally, repeats: bool) -> Iterator[Row]:
    """Rows below the header. Blank rows inside the table are kept; those at the very end are not
    rows anyone typed (editors and exports add them), so they are left out and counted, and so are
    rows that repeat the header (files joined end to end)."""
    pending: list[Row] = []
    header_key: tuple[str, ...] = ()
    for row in rows:
        blank = not _filled(row.cells)
        if has_header and tally.header is None:
            if blank:
                tally.leading_blank.append(row.line)
            else:
                tally.header, header_key = row.cells, _key(row.cells)
            continue
        if blank:
            pending.append(row)
            continue
        if repeats and header_key and row.cells[0].strip() == header_key[0] and _key(row.cells) == header_key:
            tally.repeated_header.append(row.line)
            continue
        yield from pending
        pending = []
        yield row
    tally.trailing_blank.extend(row.line for row in pending)


def _data_rows(stream: TableStream) -> Iterator[Row]:
    rows = _rows(stream.path, stream.layout, stream.encoding, Tally())
    if stream.keys is not None:
        return (Row(row.line, [json_cell(row.cells.get(key)) for key in stream.keys]) for row in rows)
    return _body(rows, stream.has_header, Tally(), stream.layout.kind != "parquet")


def _first(items: Iterator, n: int) -> list:
    """The first n items; the iterator is closed after, so its file closes at once."""
    out = []
    try:
        for item in items:
            out.append(item)
            if len(out) >= n:
                break
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    return out


# ---------------------------------------------------------------------------------------------
# The counting pass


def _describe(path: Path, layout: Layout, encoding: str, notes: list[str], max_rows: int | None,
              text_column: str | None, header: bool | None) -> TableStream:
    head = _first(_rows(path, layout, encoding, Tally()), SAMPLE_RECORDS + 1)
    if layout.kind in ("json", "jsonl"):
        return _describe_json(path, layout, encoding, notes, head, max_rows, text_column)
    return _describe_rows(path, layout, encoding, notes, head, max_rows, text_column, header)


def _describe_rows(path: Path, layout: Layout, encoding: str, notes: list[str], head: list[Row],
                   max_rows: int | None, text_column: str | None, header: bool | None) -> TableStream:
    filled = [row.cells for row in head if _filled(row.cells)]
    if not filled:
        raise ValueError(f"{path.name} holds no values (only empty rows): expected a table with at least "
                         "one filled row. Check that the right file or sheet was exported.")
    if layout.kind == "parquet":  # its column names are the header, always
        has_header = True
    else:
        has_header = looks_like_header(filled) if header is None else header
    tally = Tally()
    widths: dict[int, int] = {}
    n_rows = 0
    for row in _body(_rows(path, layout, encoding, tally), has_header, tally, layout.kind != "parquet"):
        n_rows += 1
        widths[len(row.cells)] = widths.get(len(row.cells), 0) + 1
        _check_rows(path, n_rows, max_rows)
    if n_rows == 0:
        raise ValueError(f"{path.name} has a header row ({', '.join(tally.header or [])}) but no rows "
                         "under it: expected at least one row to score. Check that the file was exported fully.")
    header_cells = tally.header or []
    width = max([len(header_cells), *widths])
    if layout.kind == "text;label" and not has_header and width == 2:
        header_cells = ["text", "label"]  # the format's own column names
    if tally.sheet_note:
        notes.append(tally.sheet_note)
    _note_lines(notes, tally, layout)
    columns = column_names(header_cells, width, notes)
    _note_shape(notes, widths, width, len(header_cells), tally, has_header, columns, layout)
    if layout.kind == "xlsx" and tally.sheet_title is not None:
        _note_formulas(notes, formulas_without_results(path, tally.sheet_title), columns)
    sample = [r + [""] * (width - len(r)) for r in (filled[1:] if has_header else filled)]
    chosen = choose_text_column(path, columns, sample, has_header, text_column, notes)
    return TableStream(path=path, layout=layout, encoding=encoding, has_header=has_header,
                       columns=columns, text_column=chosen, n_rows=n_rows, notes=notes)


def _describe_json(path: Path, layout: Layout, encoding: str, notes: list[str], head: list[Row],
                   max_rows: int | None, text_column: str | None) -> TableStream:
    keys: dict[str, None] = {}  # an ordered set: keys in order of first appearance
    n_rows = 0
    tally = Tally()
    for row in _rows(path, layout, encoding, tally):
        n_rows += 1
        keys.update(dict.fromkeys(row.cells))
        _check_rows(path, n_rows, max_rows)
    if n_rows == 0 or not keys:
        raise ValueError(f"{path.name} holds no records with fields: expected JSON objects such as "
                         '{"text": "..."}, one per line. Check the file.')
    _note_lines(notes, tally, layout)
    columns = column_names(list(keys), len(keys), notes)
    sample = [[json_cell(row.cells.get(key)) for key in keys] for row in head]
    chosen = choose_text_column(path, columns, sample, True, text_column, notes)
    return TableStream(path=path, layout=layout, encoding=encoding, has_header=True, columns=columns,
                       text_column=chosen, n_rows=n_rows, notes=notes, keys=list(keys))


def _check_rows(path: Path, n_rows: int, max_rows: int | None) -> None:
    if max_rows is not None and n_rows > max_rows:
        raise ValueError(f"{path.name} has more than {max_rows:,} rows, over the limit of {max_rows:,} rows "
                         "for one file here. Split it into smaller files, or score it with the command "
                         "line (python -m emotion_app score), which streams files of any size.")


# ---------------------------------------------------------------------------------------------
# Notes: every line that is not one row of its own, said in plain words


def _note_lines(notes: list[str], tally: Tally, layout: Layout) -> None:
    if tally.json_key is not None:
        others = (f"; its other keys ({', '.join(map(repr, tally.json_other_keys))}) hold no records and were "
                  "not read" if tally.json_other_keys else "")
        notes.append(f"The JSON object holds its records under the key '{tally.json_key}': those were "
                     f"read{others}.")
    if tally.blank_lines:
        notes.append(f"{len(tally.blank_lines):,} blank line(s) hold no record and were skipped "
                     f"({where(tally.blank_lines, 'line')}).")
    if tally.end_marks:
        marks = ", ".join(dict.fromkeys(END_MARK_NAMES.get(c, repr(c)) for c in tally.end_marks))
        notes.append(f"The file ends with the control character(s) {marks} that old programs write to mark "
                     "the end of a file; they were left out.")
    if tally.loose_quotes:
        lines = [line for line, _ in tally.loose_quotes]
        notes.append(f"{len(lines):,} line(s) start a cell with a quote (\") that is not closed where the cell "
                     "ends, so the quote does not enclose the cell: each such line was read as a row of its own "
                     f"with its quote marks kept as text, and no rows were merged ({where(lines, 'line')}).")
    for line, last in tally.swallowed[:3]:
        notes.append(f"Line {line:,} opens a quote (\") whose cell would have taken in lines {line + 1:,} to "
                     f"{last:,}, which read as rows of their own: line {line:,} was read on its own with its "
                     "quote marks kept as text, and the lines below it as rows. Check that line.")
    if len(tally.swallowed) > 3:
        more = [line for line, _ in tally.swallowed[3:]]
        notes.append(f"The same was done for {len(more):,} more quote(s) ({where(more, 'line')}).")
    if tally.repeated_header:
        notes.append(f"{len(tally.repeated_header):,} row(s) repeat the header row (as when files are joined "
                     f"end to end) and were left out ({where(tally.repeated_header, layout.unit)}).")
    if tally.multiline:
        first, last = tally.first_multiline
        notes.append(f"{tally.multiline:,} row(s) hold line breaks inside quoted cells, so each spans several "
                     f"lines (the first, lines {first:,} to {last:,}).")


def _note_shape(notes: list[str], widths: dict[int, int], width: int, header_width: int,
                tally: Tally, has_header: bool, columns: list[str], layout: Layout) -> None:
    if not has_header:
        notes.append(f"No header row found, so the first row is kept as data and the columns are named "
                     f"{span(columns)}. If the first row is in fact a header, say so.")
    elif width > header_width:
        longer = sum(n for w, n in widths.items() if w > header_width)
        notes.append(f"{longer:,} row(s) have more cells than the header; the extra cells are kept in "
                     f"{span(columns[header_width:])}.")
    shorter = sum(n for w, n in widths.items() if 0 < w < width)
    if shorter and layout.kind == "text;label":
        notes.append(f"{shorter:,} line(s) have no ';' and so no label; their label cell is empty.")
    elif shorter:
        notes.append(f"{shorter:,} row(s) have fewer cells than the widest row; the missing cells are empty.")
    unit = "row" if layout.kind in ("xlsx", "parquet") else "line"
    if tally.leading_blank:
        notes.append(f"{len(tally.leading_blank):,} blank {unit}(s) above the header were skipped "
                     f"({where(tally.leading_blank, layout.unit)}).")
    if tally.trailing_blank:
        notes.append(f"{len(tally.trailing_blank):,} blank row(s) at the end of the file were left out "
                     f"({where(tally.trailing_blank, layout.unit)}).")


def _note_formulas(notes: list[str], missing: dict[int, list[int]], columns: list[str]) -> None:
    for index, rows in sorted(missing.items()):
        name = f"'{columns[index]}' ({column_letter(index)})" if index < len(columns) else column_letter(index)
        notes.append(f"Column {name} holds {len(rows):,} formula cell(s) saved without a result "
                     f"({where(rows, 'row')}), so they were read as empty. The program that wrote the workbook "
                     "did not calculate them: open it in Excel or LibreOffice and save it again, or save it "
                     "as CSV.")


def _frame(rows: list[list[str]], columns: list[str], start: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype=object) if rows else \
        pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
    frame.index = pd.RangeIndex(start, start + len(rows))
    return frame
