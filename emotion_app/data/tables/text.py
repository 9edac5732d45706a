"""Rows of a text file: delimited (with quoting checked over the whole file), one text a line,
`text;label` lines, JSON Lines or one JSON document. Every row carries the line it starts on.

Quoting is read strictly, so that a quote that does not enclose its cell cannot silently take the
rows below into that cell: such a line is read on its own, its quote marks kept as text, and the
lines after it are read again as rows (each is listed in the tally for the notes). A quote that
never closes is refused, naming its line; in a tab-separated file, where quotes are usually just
text, any such fault makes the whole file read with quote marks as text instead.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from emotion_app.data.tables.common import Layout, Row, Tally
from emotion_app.data.tables.sniff import CSV_FIELD_LIMIT

# A quoted cell over this many lines is checked: do its lines read as rows of the table?
LONG_CELL_LINES = 50
# ... and so is one over this many lines that is far larger than the file's typical row (and than
# a long text of a few paragraphs).
BIG_CELL_LINES, BIG_CELL_FACTOR, BIG_CELL_CHARS = 5, 20, 4096
ROW_LIKE_SHARE = 0.9
# A quoted cell running on over this many lines is a quote left open (and bounds memory).
MAX_CELL_LINES = 100_000
END_MARKS = "\x1a\x04\x00"  # DOS end-of-file (Ctrl-Z), end-of-transmission, NUL padding


class QuotesAreText(Exception):
    """A tab-separated file whose quotes do not enclose cells: read it again, quotes as text."""

    def __init__(self, line: int, last: int, why: str):
        super().__init__(f"line {line}: {why}")
        self.line, self.last, self.why = line, last, why

    def note(self) -> str:
        return (f"Quote marks in this tab-separated file do not enclose cells (the quote on line {self.line:,} "
                f"{self.why}), so they were read as text and every line as its own row.")


class _RunawayCell(Exception):
    """A quoted cell has run on over MAX_CELL_LINES lines."""


def text_rows(path: Path, layout: Layout, encoding: str, tally: Tally) -> Iterator[Row]:
    """Rows from the start of the file (header included)."""
    try:
        with path.open(encoding=encoding, newline="") as handle:
            lines = _file_lines(handle, layout.skip_lines, tally)
            if layout.kind == "csv":
                yield from _csv_rows(lines, layout, tally, path)
            elif layout.kind == "lines":
                for number, line in enumerate(lines, start=layout.skip_lines + 1):
                    yield Row(number, [line.rstrip("\r\n")])
            elif layout.kind == "text;label":
                for number, line in enumerate(lines, start=1):
                    text, sep, label = line.rstrip("\r\n").rpartition(";")
                    yield Row(number, [text, label] if sep else [label])
            elif layout.kind == "jsonl":
                yield from _jsonl_rows(lines, path, tally)
            else:
                yield from _json_document_rows("".join(lines), path, tally)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path.name} changed while it was being read: it no longer decodes as "
                         f"{encoding} ({err.reason}). Read it again.") from None
    except OSError as err:
        raise ValueError(f"{path.name} could not be read ({err}): expected a readable file. "
                         "Check that it is not being written to or moved.") from None


def _file_lines(handle: Iterable[str], skip: int, tally: Tally) -> Iterator[str]:
    """The lines after the first `skip`; end-of-file control characters on the last line (old DOS
    tools add Ctrl-Z) are left out and recorded."""
    lines = iter(handle)
    for _ in range(skip):
        next(lines, None)
    previous = next(lines, None)
    for line in lines:
        yield previous
        previous = line
    if previous is None:
        return
    body = previous.rstrip("\r\n")
    clean = body.rstrip(END_MARKS)
    if clean == body:
        yield previous
        return
    tally.end_marks = body[len(clean):]
    if clean:
        yield clean + previous[len(body):]


# ---------------------------------------------------------------------------------------------
# Delimited text


def _csv_rows(lines: Iterator[str], layout: Layout, tally: Tally, path: Path) -> Iterator[Row]:
    delimiter = layout.delimiter
    if not layout.quoting:
        for number, line in enumerate(lines, start=layout.skip_lines + 1):
            body = line.rstrip("\r\n")
            yield Row(number, body.split(delimiter) if body else [])
        return
    taken: list[str] = []  # the lines of the record being read, to read them again after a fault
    again: list[str] = []  # lines to hand out again, last first
    ran_out = False

    def feed() -> Iterator[str]:
        nonlocal ran_out
        for line in lines:
            while again:
                taken.append(again.pop())
                yield taken[-1]
            taken.append(line)
            if len(taken) > MAX_CELL_LINES:
                raise _RunawayCell
            yield line
        while again:
            taken.append(again.pop())
            yield taken[-1]
        ran_out = True

    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    start = layout.skip_lines + 1
    while True:
        taken.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            fault = "never closes" if ran_out else "closes before its cell ends"
        except _RunawayCell:
            fault = f"runs on over {MAX_CELL_LINES:,} lines"
        else:
            if len(taken) > 1 and _swallows_rows(taken, layout):
                fault = "swallows rows"
            else:
                if len(taken) > 1:
                    tally.multiline += 1
                    tally.first_multiline = tally.first_multiline or (start, start + len(taken) - 1)
                yield Row(start, cells)
                start += len(taken)
                continue
        row = _recover(taken, start, fault, layout, tally, path)
        again.extend(reversed(taken[1:]))
        yield row
        start += 1


def _recover(taken: list[str], start: int, fault: str, layout: Layout, tally: Tally, path: Path) -> Row:
    """The line a faulty quote opens on, read on its own (the caller reads the lines after it again)."""
    last = start + len(taken) - 1
    if layout.delimiter == "\t":
        why = {"swallows rows": f"would take lines {start + 1:,} to {last:,}, which read as rows, into one cell",
               "closes before its cell ends": f"closes before its cell ends (on line {last:,})"}.get(fault, fault)
        raise QuotesAreText(start, last, why)
    if fault == "never closes":
        raise ValueError(f"{path.name}, line {start}: a quote (\") opens a cell there and never closes, so "
                         f"the rest of the file (lines {start} to {last}) would be read into that one cell. "
                         "Expected every quoted cell to end with a closing quote: close the quote on line "
                         f"{start}, or remove it (inside a quoted cell, write a quote as \"\").")
    if fault.startswith("runs on"):
        raise ValueError(f"{path.name}, line {start}: a quote (\") opens a cell there that {fault} without "
                         f"closing (to line {last:,} at least), so the rows below would be read into that one "
                         "cell. Expected every quoted cell to end with a closing quote: close the quote on "
                         f"line {start}, or remove it (inside a quoted cell, write a quote as \"\").")
    (tally.swallowed if fault == "swallows rows" else tally.loose_quotes).append((start, last))
    return Row(start, split_as_written(taken[0], layout.delimiter))


def _swallows_rows(taken: list[str], layout: Layout) -> bool:
    """A long quoted cell whose lines read as rows of the table is a quote left open that happens to
    close far below; a long text (a poem, a log) has lines of its own shape and is kept whole."""
    span = len(taken)
    if layout.width < 2 or span < BIG_CELL_LINES:
        return False
    big = sum(map(len, taken)) > max(BIG_CELL_FACTOR * layout.typical_chars, BIG_CELL_CHARS)
    if span < LONG_CELL_LINES and not big:
        return False
    inner = [line for line in taken[1:-1] if line.strip()]
    if len(inner) < BIG_CELL_LINES - 2:
        return False
    row_like = sum(line.count(layout.delimiter) == layout.width - 1 for line in inner)
    return row_like >= ROW_LIKE_SHARE * len(inner)


def split_as_written(line: str, delimiter: str) -> list[str]:
    """One line's cells when its quoting is broken: a cell in well-formed quotes is unquoted, any
    other cell is kept exactly as written, quote marks included."""
    body = line.rstrip("\r\n")
    if not body:
        return []
    quoted = re.compile(r'"((?:[^"]|"")*)"(?=' + re.escape(delimiter) + r"|$)", re.DOTALL)
    cells: list[str] = []
    i = 0
    while True:
        match = quoted.match(body, i)
        if match is not None:
            cells.append(match.group(1).replace('""', '"'))
            i = match.end()
        else:
            end = body.find(delimiter, i)
            end = len(body) if end < 0 else end
            cells.append(body[i:end])
            i = end
        if i >= len(body):
            return cells
        i += len(delimiter)
        if i == len(body):  # a trailing delimiter: an empty last cell
            cells.append("")
            return cells


# ---------------------------------------------------------------------------------------------
# JSON


def _jsonl_rows(lines: Iterable[str], path: Path, tally: Tally) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            tally.blank_lines.append(number)  # blank lines are not records in JSON Lines
            continue
        yield Row(number, _json_object(_loads(line, path, f"line {number}"), path, f"line {number}"))


def _json_document_rows(text: str, path: Path, tally: Tally) -> Iterator[Row]:
    items, key, others = _json_records(_loads(text, path, "the file"), path)
    tally.json_key, tally.json_other_keys = key, others
    for number, item in enumerate(items, start=1):
        yield Row(number, _json_object(item, path, f"item {number}"))


def _json_records(data: object, path: Path) -> tuple[list, str | None, list[str]]:
    """(records, the key they sit under or None, the other keys left unread)."""
    if isinstance(data, list):
        return data, None, []
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds a JSON {type(data).__name__}: expected a list of objects or "
                         "JSON Lines (one object per line). Save it as JSON Lines.")
    for found in _record_lists(data):
        if len(found) == 1:
            key, items = found[0]
            top = key.split(".")[0]
            return items, key, [k for k in data if k != top]
        if len(found) > 1:
            raise ValueError(f"{path.name} holds several lists of records (under "
                             f"{', '.join(repr(k) for k, _ in found)}): expected one list of records. Save the "
                             "records to score on their own, as JSON Lines (one object per line).")
    if data and not any(isinstance(value, (dict, list)) for value in data.values()):
        return [data], None, []  # one flat object is one record
    if data and all(isinstance(value, dict) for value in data.values()):
        raise ValueError(f"{path.name} holds a JSON object of objects (keyed by {_keys(data)}), such as pandas' "
                         "default to_json() writes (columns keyed by row): expected records. Write it again "
                         "as one object per row, e.g. pandas .to_json(path, orient='records', lines=True).")
    raise ValueError(f"{path.name} holds a JSON object with no list of records in it (keys: {_keys(data)}): "
                     "expected JSON Lines, a list of objects, or an object with one list of objects under a "
                     "key. Save the records as JSON Lines.")


def _record_lists(data: dict) -> Iterator[list[tuple[str, list]]]:
    """Candidate record lists, most likely first: lists of objects at the top, one level down, then
    a lone list of strings (an object that holds only `{"texts": [...]}`)."""
    nested = [(f"{key}.{inner}", value) for key, outer in data.items() if isinstance(outer, dict)
              for inner, value in outer.items()]
    for pairs in (list(data.items()), nested):
        yield [(str(k), v) for k, v in pairs if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
    if len(data) == 1:
        yield [(str(k), v) for k, v in data.items()
               if isinstance(v, list) and v and all(isinstance(i, str) for i in v)]


def _keys(data: dict) -> str:
    keys = [repr(k) for k in list(data)[:5]]
    return ", ".join(keys) + (", ..." if len(data) > 5 else "")


def _loads(text: str, path: Path, where: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        place = f"line {err.lineno}, column {err.colno}" if where == "the file" else f"column {err.colno}"
        raise ValueError(f"{path.name}, {where}: not valid JSON ({err.msg} at {place}). "
                         "Expected one JSON object per line; fix or remove that line.") from None
    except RecursionError:
        raise ValueError(f"{path.name}, {where}: JSON nested too deeply to read. Expected flat records "
                         "(one object of fields per line); flatten the data.") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A repeated key in one JSON object gets a suffix instead of silently replacing the first."""
    out: dict[str, object] = {}
    for key, value in pairs:
        name, k = key, 2
        while name in out:
            name, k = f"{key}_{k}", k + 1
        out[name] = value
    return out


def _json_object(item: object, path: Path, where: str) -> dict:
    if isinstance(item, dict):
        return item
    if isinstance(item, str):
        return {"text": item}  # a line that is just a string is a text
    raise ValueError(f"{path.name}, {where}: found a JSON {type(item).__name__}, expected an object "
                     '({"text": "..."}) or a string. Put each record in an object.')
