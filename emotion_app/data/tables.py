"""Read the tables people give: CSV/TSV/TXT, JSON Lines, Excel and Parquet -> rows of text, nothing dropped.

Every file a user gives goes through this reader (the app's Batch and Evaluation tabs, score,
evaluate, calibrate, adapt and training's local files), so a file reads the same way everywhere. Encoding, layout (delimiter or format) and header are decided from the head of
the file; one quick pass then counts the rows and the widest row, so that the file can be streamed
in chunks with a fixed set of columns. Every cell is a `str` (missing cells are ""), rows and
columns keep their input order, and whatever was guessed is reported in `notes` in plain words.
Anything that cannot be read raises ValueError saying what was expected, what was found and how
to fix it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import statistics
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)


HEAD_BYTES = 256 * 1024  # what encoding, layout and header are decided from
SAMPLE_RECORDS = 200
BLOCK_BYTES = 1 << 20
# The csv module caps a field at 128 KiB by default (a process-wide setting). Very long texts are
# legitimate; the file size limit bounds memory instead.
CSV_FIELD_LIMIT = 2**31 - 1

DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes (|)"}
SUFFIX_DELIMITER = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}
DELIMITER_PREFERENCE = ("\t", ";", "|", ",")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
ACCEPTED = "a CSV, TSV or TXT table, JSON Lines, Parquet or an Excel .xlsx workbook"
PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 4096  # rows decoded at a time: a Parquet file streams like the others

# Header names that say "this column holds the text to classify", best first.
TEXT_NAMES = ("text", "texts", "sentence", "tweet", "comment", "comments", "message", "review",
              "content", "body", "utterance", "post", "feedback", "answer", "response", "description",
              "document", "input", "question", "title")
OTHER_HEADER_NAMES = ("label", "labels", "emotion", "emotions", "id", "category", "class", "target",
                      "date", "time", "name", "author", "user", "score", "rating", "source", "lang",
                      "language", "country", "index", "sentiment", "tag", "tags", "url")

BOMS = (  # longest first: UTF-32 LE starts with the UTF-16 LE mark
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", None),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

# Leading bytes of files that are not tables: (magic, what it is, how to fix).
UNPACK = "Unpack it and upload the table inside."
EXPORT = "Export the data as a CSV file (UTF-8) and upload that."
SIGNATURES = (
    (b"\x1f\x8b", "a gzip-compressed file", UNPACK),
    (b"BZh", "a bzip2-compressed file", UNPACK),
    (b"\xfd7zXZ\x00", "an xz-compressed file", UNPACK),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", UNPACK),
    (b"Rar!\x1a\x07", "a RAR archive", UNPACK),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", UNPACK),
    (b"%PDF", "a PDF document", EXPORT),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", EXPORT),
    (b"\xff\xd8\xff", "a JPEG image", EXPORT),
    (b"GIF87a", "a GIF image", EXPORT),
    (b"GIF89a", "a GIF image", EXPORT),
    (b"II*\x00", "a TIFF image", EXPORT),
    (b"MM\x00*", "a TIFF image", EXPORT),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office file (.xls or .doc)",
     "Open it in Excel or LibreOffice and save it as .xlsx or as CSV UTF-8."),
    (b"SQLite format 3\x00", "an SQLite database", EXPORT),
    (b"\x7fELF", "a program (ELF binary)", EXPORT),
)


@dataclass
class Table:
    """A whole table in memory. `frame` holds every input row and column, every cell a str.

    `notes` are plain sentences for the user about what was guessed or changed; `encoding` is ""
    and `delimiter` None for Excel workbooks, and `delimiter` is None for JSON and one-column text.
    """

    frame: pd.DataFrame
    notes: list[str]
    text_column: str
    encoding: str
    delimiter: str | None
    has_header: bool = True
    kind: str = "csv"


@dataclass
class Layout:
    """How the records of a text file are cut: `kind` is csv, lines, text;label, jsonl, json or xlsx."""

    kind: str
    delimiter: str | None = None


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

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """DataFrames of at most `chunk_rows` rows, in file order, indexed by row number from 0."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, found {chunk_rows}. Pass a positive number.")
        width = len(self.columns)
        rows: list[list[str]] = []
        start = 0
        for record in _data_records(self):
            if len(record) > width:
                raise ValueError(f"{self.path.name} changed while it was being read: a row has "
                                 f"{len(record)} cells, expected at most {width}. Read it again.")
            rows.append(record + [""] * (width - len(record)))
            if len(rows) == chunk_rows:
                yield _frame(rows, self.columns, start)
                start += len(rows)
                rows = []
        if rows or start == 0:
            yield _frame(rows, self.columns, start)


def read_table(path: str | Path, *, max_bytes: int | None = None, max_rows: int | None = None,
               text_column: str | None = None, header: bool | None = None) -> Table:
    """The whole file as a Table. `header` None guesses whether the first row is a header."""
    stream = open_table(path, max_bytes=max_bytes, max_rows=max_rows, text_column=text_column,
                        header=header)
    frame = next(stream.chunks(max(stream.n_rows, 1)))
    return Table(frame=frame, notes=stream.notes, text_column=stream.text_column,
                 encoding=stream.encoding, delimiter=stream.delimiter,
                 has_header=stream.has_header, kind=stream.layout.kind)


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
    size = _check_file(path, max_bytes)
    head = _read_head(path)
    kind = _binary_kind(path, head)
    if kind in ("xlsx", "parquet"):
        layout, encoding, notes = Layout(kind), "", []
    else:
        encoding, notes = _detect_encoding(path, head)
        head_text = _decode_head(head, encoding, whole=size <= HEAD_BYTES)
        _check_not_binary(path, head_text)
        if not head_text.strip("\ufeff \t\r\n"):
            raise ValueError(f"{path.name} holds no text (only blank lines or spaces): expected a table "
                             "with a header and at least one row. Check that the right file was exported.")
        layout = _detect_layout(path, head_text, notes)
    head_records = _first(_records(path, layout, encoding, notes), SAMPLE_RECORDS + 1)
    if layout.kind in ("json", "jsonl"):
        return _describe_json(path, layout, encoding, notes, head_records, max_rows, text_column)
    return _describe_rows(path, layout, encoding, notes, head_records, max_rows, text_column, header)


# ---------------------------------------------------------------------------------------------
# File checks, binary formats and encodings


def _check_file(path: Path, max_bytes: int | None) -> int:
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file: expected {ACCEPTED}. Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes): expected a table with a header and at least "
                         "one row. Check that the file was saved or exported fully.")
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path.name} is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} "
                         "for one file here. Split it into smaller files, or score it with the command "
                         "line (python -m emotion_app.score), which streams files of any size.")
    return size


def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 100 * 1024 else f"{n:,} bytes"


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError as err:
        raise ValueError(f"{path.name} could not be opened ({err.strerror}): expected a readable file. "
                         "Check its permissions.") from None


def _binary_kind(path: Path, head: bytes) -> str:
    """'xlsx' for an Excel workbook, 'parquet', or 'text'; raises for archives, images and the like."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(path)
    for magic, what, fix in SIGNATURES:
        if head.startswith(magic):
            raise ValueError(_not_a_table(path, what, fix))
    if len(head) > 262 and head[257:262] == b"ustar":
        raise ValueError(_not_a_table(path, "a tar archive", UNPACK))
    if path.suffix.lower() in EXCEL_SUFFIXES:
        raise ValueError(f"{path.name} is named like an Excel workbook but is not one (an .xlsx file is a "
                         "ZIP package): expected a workbook saved by Excel or LibreOffice. Save it again "
                         "as .xlsx, or as CSV UTF-8 and upload that.")
    return "text"


def _not_a_table(path: Path, what: str, fix: str) -> str:
    return f"{path.name} is {what}, not a table: expected {ACCEPTED}. {fix}"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ValueError(_not_a_table(path, "a damaged ZIP file", UNPACK)) from None
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "content.xml" in names and "mimetype" in names:
        raise ValueError(_not_a_table(path, "an OpenDocument file (.ods/.odt)",
                                      "In LibreOffice use File > Save As > CSV (UTF-8) or .xlsx."))
    if any(name.startswith("word/") for name in names):
        raise ValueError(_not_a_table(path, "a Word document", EXPORT))
    raise ValueError(_not_a_table(path, "a ZIP archive", UNPACK))


def _detect_encoding(path: Path, head: bytes) -> tuple[str, list[str]]:
    """(encoding, notes). The whole file is checked, so a bad byte far down is caught up front."""
    for bom, encoding, name in BOMS:
        if head.startswith(bom):
            _require_decodes(path, encoding, name or "UTF-8")
            return encoding, [f"Read as {name} (the file starts with a {name} byte-order mark)."] if name else []
    if b"\x00" in head:
        encoding = _utf16_without_bom(head)
        if encoding is None:
            raise ValueError(_not_a_table(path, "binary data (it holds NUL bytes)", EXPORT))
        _require_decodes(path, encoding, "UTF-16")
        return encoding, [f"Read as {encoding.upper()} (no byte-order mark; guessed from the zero bytes)."]
    bad = _first_bad_byte(path, "utf-8")
    if bad is None:
        return "utf-8", []
    for encoding, name in (("cp1252", "Windows-1252 (cp1252)"), ("latin-1", "Latin-1 (ISO-8859-1)")):
        if _first_bad_byte(path, encoding) is None:
            return encoding, [f"The file is not valid UTF-8 (first bad byte at offset {bad}), so it was read "
                              f"as {name}. If some characters look wrong, save the file as UTF-8 and "
                              "upload it again."]
    raise AssertionError("latin-1 decodes any bytes")  # unreachable: every byte is a latin-1 char


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM has a zero in every other byte for ASCII characters."""
    head = head[: len(head) - len(head) % 2]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _require_decodes(path: Path, encoding: str, name: str) -> None:
    bad = _first_bad_byte(path, encoding)
    if bad is not None:
        raise ValueError(f"{path.name} looks like {name} but holds invalid bytes (at offset {bad}): expected "
                         f"a complete {name} text file. Save it again as UTF-8 and upload that.")


def _first_bad_byte(path: Path, encoding: str) -> int | None:
    """Offset of the first byte that does not decode, or None; reads the file in blocks."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with path.open("rb") as handle:
        while True:
            block = handle.read(BLOCK_BYTES)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                return offset + max(err.start, 0)
            if not block:
                return None
            offset += len(block)


def _decode_head(head: bytes, encoding: str, whole: bool) -> str:
    """The head as text; when the file goes on, the last (probably cut) line is left out."""
    text = codecs.getincrementaldecoder(encoding)("strict").decode(head, final=whole)
    if not whole and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return text


def _check_not_binary(path: Path, text: str) -> None:
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r\f\v") or ch == "\x7f")
    if controls > 0.02 * len(text):
        raise ValueError(_not_a_table(path, f"binary data ({controls} control characters in its first "
                                      f"{len(text)} characters)", EXPORT))


# ---------------------------------------------------------------------------------------------
# Layout: delimiter, JSON or plain lines


def _detect_layout(path: Path, head_text: str, notes: list[str]) -> Layout:
    suffix = path.suffix.lower()
    first = head_text.lstrip("\ufeff \t\r\n")[:1]
    if suffix in JSON_SUFFIXES or (suffix not in SUFFIX_DELIMITER and suffix != ".txt" and first == "{"):
        if first == "[" and suffix == ".json":
            notes.append("Read as one JSON array (held in memory whole); JSON Lines streams better.")
            return Layout("json")
        return Layout("jsonl")
    if suffix == ".txt" and _text_label_lines(head_text):
        notes.append("Read as `text;label` lines (the dair-ai/emotion format): the label follows the last ';'.")
        return Layout("text;label", ";")
    delimiter, width = _best_delimiter(head_text, suffix)
    _check_quotes(path, head_text, delimiter or SUFFIX_DELIMITER.get(suffix), whole=len(head_text) < HEAD_BYTES)
    if delimiter is None:
        if suffix == ".csv":
            notes.append("Found one column (no comma, semicolon, tab or pipe separates columns).")
            return Layout("csv", ",")
        notes.append("Found one column: each line is one text.")
        return Layout("lines")
    if delimiter != SUFFIX_DELIMITER.get(suffix):
        notes.append(f"Columns are separated by {DELIMITER_NAMES[delimiter]} (detected).")
    return Layout("csv", delimiter)


def _text_label_lines(head_text: str) -> bool:
    """Every line ends in ';' and a one-word label (the texts themselves may hold ';')."""
    lines = [line for line in head_text.splitlines() if line.strip()][:SAMPLE_RECORDS]
    return bool(lines) and all(re.fullmatch(r"[^\s;]{1,30}", line.rpartition(";")[2].strip())
                               and ";" in line for line in lines)


def _best_delimiter(head_text: str, suffix: str) -> tuple[str | None, int]:
    """The delimiter whose records most often have the same number (>= 2) of fields."""
    preferred = SUFFIX_DELIMITER.get(suffix)
    order = ([preferred] if preferred else []) + [d for d in DELIMITER_PREFERENCE if d != preferred]
    best: tuple[float, int, str | None, int] = (0.0, 0, None, 1)
    for rank, delimiter in enumerate(order):
        widths = [len(r) for r in _first(_csv_records(io.StringIO(head_text, newline=""), delimiter), 100)
                  if r]
        if not widths:
            continue
        width = statistics.mode(widths)
        share = widths.count(width) / len(widths)
        if width >= 2 and share >= 0.8 and (share, -rank) > best[:2]:
            best = (share, -rank, delimiter, width)
    if best[2] is None:
        return _ragged_delimiter(head_text, order)
    return best[2], best[3]


def _ragged_delimiter(head_text: str, order: list[str]) -> tuple[str | None, int]:
    """Rows of differing widths: the delimiter that splits the header row and at least half of the
    rows in two or more cells (the short and long rows are then reported, never hidden as one column)."""
    for delimiter in order:
        records = [r for r in _first(_csv_records(io.StringIO(head_text, newline=""), delimiter), 100) if r]
        if len(records) >= 2 and len(records[0]) >= 2 and sum(len(r) >= 2 for r in records) >= len(records) / 2:
            return delimiter, len(records[0])
    return None, 1


def _check_quotes(path: Path, text: str, delimiter: str | None, whole: bool) -> None:
    """Refuse a quote that opens a cell and never closes: the csv reader would silently read the rest
    of the file into that one cell. Checked on the whole file when it fits in the head, else only
    for a quote left open over most of the head (a long quoted text is legitimate)."""
    if delimiter is None or '"' not in text:
        return
    opened = _unclosed_quote_line(text, delimiter)
    if opened is None:
        return
    lines = text.rstrip("\n").count("\n") + 1
    if whole or lines - opened > 1000:
        raise ValueError(f"{path.name}, line {opened}: a quote (\") opens a cell there and never closes, so "
                         f"the rest of the file (lines {opened} to {lines}) would be read into that one cell. "
                         "Expected every quoted cell to end with a closing quote: close the quote on line "
                         f"{opened}, or remove it (inside a quoted cell, write a quote as \"\").")


def _unclosed_quote_line(text: str, delimiter: str) -> int | None:
    """The line on which a quoted cell opens and is still open at the end of `text`, as the csv
    module reads quotes (a quote opens a cell only at its start; "" inside is a quote)."""
    line, in_quote, opened, at_start, i = 1, False, 0, True, 0
    while i < len(text):
        char = text[i]
        if in_quote:
            if char == '"':
                if text[i + 1:i + 2] == '"':
                    i += 1
                else:
                    in_quote = False
            elif char == "\n":
                line += 1
        elif char == '"' and at_start:
            in_quote, opened = True, line
        elif char == "\n":
            line += 1
        at_start = not in_quote and char in (delimiter, "\n", "\r")
        i += 1
    return opened if in_quote else None


# ---------------------------------------------------------------------------------------------
# Records: every row of the file as a list of str cells, the header row included


def _records(path: Path, layout: Layout, encoding: str, notes: list[str] | None = None) -> Iterator[list]:
    """Rows from the start of the file (header included). JSON rows are dicts, others lists of str."""
    if layout.kind == "xlsx":
        yield from _xlsx_records(path, notes if notes is not None else [])
        return
    if layout.kind == "parquet":
        yield from _parquet_records(path)
        return
    try:
        with path.open(encoding=encoding, newline="") as handle:
            yield from _text_records(handle, layout, path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path.name} changed while it was being read: it no longer decodes as "
                         f"{encoding} ({err.reason}). Read it again.") from None
    except OSError as err:
        raise ValueError(f"{path.name} could not be read ({err}): expected a readable file. "
                         "Check that it is not being written to or moved.") from None


def _text_records(handle: Iterable[str], layout: Layout, path: Path) -> Iterator[list]:
    if layout.kind == "csv":
        yield from _csv_records(handle, layout.delimiter, path)
    elif layout.kind == "lines":
        for line in handle:
            yield [line.rstrip("\r\n")]
    elif layout.kind == "text;label":
        for line in handle:
            text, sep, label = line.rstrip("\r\n").rpartition(";")
            yield [text, label] if sep else [label]
    elif layout.kind == "jsonl":
        yield from _jsonl_records(handle, path)
    else:
        yield from _json_array_records("".join(handle), path)


def _csv_records(handle: Iterable[str], delimiter: str, path: Path | None = None) -> Iterator[list[str]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(handle, delimiter=delimiter, strict=False)
    try:
        yield from reader
    except csv.Error as err:
        name = path.name if path else "the file"
        raise ValueError(f"{name}, line {reader.line_num}: {err}. Expected {ACCEPTED}; "
                         "check that line (quotes, line breaks).") from None


def _jsonl_records(handle: Iterable[str], path: Path) -> Iterator[dict]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue  # blank lines are not records in JSON Lines
        yield _json_object(_loads(line, path, f"line {number}"), path, f"line {number}")


def _json_array_records(text: str, path: Path) -> Iterator[dict]:
    data = _loads(text, path, "the file")
    if not isinstance(data, list):
        raise ValueError(f"{path.name} holds a JSON {type(data).__name__}: expected a list of objects or "
                         "JSON Lines (one object per line). Save it as JSON Lines.")
    for number, item in enumerate(data, start=1):
        yield _json_object(item, path, f"item {number}")


def _loads(text: str, path: Path, where: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name}, {where}: not valid JSON ({err.msg} at column {err.colno}). "
                         "Expected one JSON object per line; fix or remove that line.") from None
    except RecursionError:
        raise ValueError(f"{path.name}, {where}: JSON nested too deeply to read. Expected flat records "
                         "(one object of fields per line); flatten the data.") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A repeated key in one JSON object gets a suffix instead of silently replacing the first."""
    out: dict[str, object] = {}
    for key, value in pairs:
        out[_unique_name(key, out)] = value
    return out


def _json_object(item: object, path: Path, where: str) -> dict:
    if isinstance(item, dict):
        return item
    if isinstance(item, str):
        return {"text": item}  # a line that is just a string is a text
    raise ValueError(f"{path.name}, {where}: found a JSON {type(item).__name__}, expected an object "
                     '({"text": "..."}) or a string. Put each record in an object.')


def _json_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _xlsx_records(path: Path, notes: list[str]) -> Iterator[list[str]]:
    try:
        import openpyxl
    except ImportError:
        raise ValueError(f"{path.name} is an Excel workbook, and reading .xlsx needs the openpyxl package, "
                         "which is not installed. Either run `pip install openpyxl`, or in Excel use "
                         "File > Save As > CSV UTF-8 (comma delimited) and upload the CSV.") from None
    from xml.etree.ElementTree import ParseError

    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError,
            ParseError, EOFError) as err:
        raise ValueError(f"{path.name} could not be read as an Excel workbook ({err}). Save it again "
                         "from Excel or LibreOffice, or as CSV UTF-8.") from None
    try:
        sheet = workbook.worksheets[0]
        if len(workbook.worksheets) > 1 and notes is not None and not any("sheet" in n for n in notes):
            notes.append(f"Read the first sheet, '{sheet.title}', of {len(workbook.worksheets)}; to score "
                         "another, move it first or save it as CSV.")
        for row in sheet.iter_rows(values_only=True):
            cells = ["" if value is None else _excel_cell(value) for value in row]
            while cells and cells[-1] == "":
                cells.pop()
            yield cells
    except (KeyError, ValueError, TypeError, ParseError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path.name}: a sheet could not be read ({err}). Save it again from Excel or "
                         "LibreOffice, or as CSV UTF-8.") from None
    finally:
        workbook.close()


def _parquet_records(path: Path) -> Iterator[list[str]]:
    """The column names, then every row as text cells (missing values ""), a batch at a time."""
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        parquet = pq.ParquetFile(path)
        yield [str(name) for name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            columns = [column.to_pylist() for column in batch.columns]
            for row in zip(*columns):
                yield ["" if value is None else _excel_cell(value) for value in row]
    except (ArrowException, OSError) as err:
        raise ValueError(f"{path.name} could not be read as Parquet ({err}): expected a valid Parquet file. "
                         "Write it again, or save the data as CSV UTF-8.") from None


def _excel_cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


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
# Header, columns and the counting pass


@dataclass
class _Counts:
    """What one pass over the rows found; filled while the rows go by."""

    header: list[str] | None = None
    leading_blank: int = 0
    trailing_blank: int = 0


def _body(records: Iterator[list[str]], has_header: bool, counts: _Counts) -> Iterator[list[str]]:
    """Rows below the header. Blank rows inside the table are kept; those at the very end are not
    rows anyone typed (editors and exports add them), so they are left out and counted."""
    pending: list[list[str]] = []
    for record in records:
        blank = not any(cell.strip() for cell in record)
        if has_header and counts.header is None:
            if blank:
                counts.leading_blank += 1
            else:
                counts.header = record
            continue
        if blank:
            pending.append(record)
            continue
        yield from pending
        pending = []
        yield record
    counts.trailing_blank = len(pending)


def _data_records(stream: TableStream) -> Iterator[list[str]]:
    records = _records(stream.path, stream.layout, stream.encoding)
    if stream.keys is not None:
        return ([_json_cell(item.get(key)) for key in stream.keys] for item in records)
    return _body(records, stream.has_header, _Counts())


def _describe_rows(path: Path, layout: Layout, encoding: str, notes: list[str], head_records: list,
                   max_rows: int | None, text_column: str | None, header: bool | None) -> TableStream:
    rows = [r for r in head_records if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"{path.name} holds no values (only empty rows): expected a table with at least "
                         "one filled row. Check that the right file or sheet was exported.")
    if layout.kind == "parquet":  # its column names are the header, always
        has_header = True
    else:
        has_header = _looks_like_header(rows) if header is None else header
    counts = _Counts()
    widths: dict[int, int] = {}
    n_rows = 0
    for record in _body(_records(path, layout, encoding), has_header, counts):
        n_rows += 1
        widths[len(record)] = widths.get(len(record), 0) + 1
        _check_rows(path, n_rows, max_rows)
    if n_rows == 0:
        raise ValueError(f"{path.name} has a header row ({', '.join(counts.header or [])}) but no rows "
                         "under it: expected at least one row to score. Check that the file was exported fully.")
    header_cells = counts.header or []
    width = max([len(header_cells), *widths])
    if layout.kind == "text;label" and not has_header and width == 2:
        header_cells = ["text", "label"]  # the format's own column names
    columns = _column_names(header_cells, width, notes)
    _note_shape(notes, widths, width, len(header_cells), counts, has_header, columns, layout)
    sample = [r + [""] * (width - len(r)) for r in (rows[1:] if has_header else rows)]
    chosen = _choose_text_column(path, columns, sample, has_header, text_column, notes)
    return TableStream(path=path, layout=layout, encoding=encoding, has_header=has_header,
                       columns=columns, text_column=chosen, n_rows=n_rows, notes=notes)


def _describe_json(path: Path, layout: Layout, encoding: str, notes: list[str], head_records: list,
                   max_rows: int | None, text_column: str | None) -> TableStream:
    keys: dict[str, None] = {}  # an ordered set: keys in order of first appearance
    n_rows = 0
    for item in _records(path, layout, encoding):
        n_rows += 1
        keys.update(dict.fromkeys(item))
        _check_rows(path, n_rows, max_rows)
    if n_rows == 0 or not keys:
        raise ValueError(f"{path.name} holds no records with fields: expected JSON objects such as "
                         '{"text": "..."}, one per line. Check the file.')
    columns = _column_names(list(keys), len(keys), notes)
    sample = [[_json_cell(item.get(key)) for key in keys] for item in head_records]
    chosen = _choose_text_column(path, columns, sample, True, text_column, notes)
    return TableStream(path=path, layout=layout, encoding=encoding, has_header=True, columns=columns,
                       text_column=chosen, n_rows=n_rows, notes=notes, keys=list(keys))


def _check_rows(path: Path, n_rows: int, max_rows: int | None) -> None:
    if max_rows is not None and n_rows > max_rows:
        raise ValueError(f"{path.name} has more than {max_rows:,} rows, over the limit of {max_rows:,} rows "
                         "for one file here. Split it into smaller files, or score it with the command "
                         "line (python -m emotion_app.score), which streams files of any size.")


def _looks_like_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns. When unsure, no: a data row read as a header
    would not be scored, while a header read as data is only one extra scored row."""
    first = [cell.strip() for cell in rows[0]]
    if any(_known_name(cell) for cell in first):
        return True
    if len(first) < 2 or len(rows) < 2:
        return False
    votes = 0
    for j, cell in enumerate(first):
        below = [r[j].strip() for r in rows[1:] if j < len(r) and r[j].strip()]
        votes += _header_vote(cell, below)
    return votes >= 2


def _header_vote(cell: str, below: list[str]) -> int:
    if not cell or not below:
        return 0
    if _is_number(cell) or cell in below:  # headers are not numbers, and do not repeat as values
        return -2
    if all(_is_number(value) for value in below):
        return 2
    if len(cell) > 40 or len(cell.split()) > 4 or cell[-1] in ".!?":
        return -1
    if len(below) >= 4 and len(set(below)) <= len(below) // 2:  # categories; the cell is not one
        return 1
    if statistics.median(len(value) for value in below) >= 3 * len(cell):
        return 1
    return 0


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _known_name(cell: str) -> bool:
    name = _normal(cell)
    return name in TEXT_NAMES or name in OTHER_HEADER_NAMES


def _is_number(value: str) -> bool:
    return re.fullmatch(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?%?", value) is not None


def _unique_name(name: str, taken) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def _column_names(header: list[str], width: int, notes: list[str]) -> list[str]:
    names: list[str] = []
    renamed, filled = [], []
    for i in range(width):
        given = header[i].strip() if i < len(header) else ""
        name = given or f"column_{i + 1}"
        if i < len(header) and not given:
            filled.append(name)
        unique = _unique_name(name, names)
        if unique != name:
            renamed.append(f"'{name}' -> '{unique}'")
        names.append(unique)
    if header and filled:
        notes.append(f"Empty column names were filled in: {', '.join(filled)}.")
    if renamed:
        notes.append(f"Duplicate column names were made unique: {', '.join(renamed)}.")
    return names


def _note_shape(notes: list[str], widths: dict[int, int], width: int, header_width: int,
                counts: _Counts, has_header: bool, columns: list[str], layout: Layout) -> None:
    if not has_header:
        notes.append(f"No header row found, so the first row is kept as data and the columns are named "
                     f"{_span(columns)}. If the first row is in fact a header, say so.")
    elif width > header_width:
        longer = sum(n for w, n in widths.items() if w > header_width)
        notes.append(f"{longer:,} row(s) have more cells than the header; the extra cells are kept in "
                     f"{_span(columns[header_width:])}.")
    shorter = sum(n for w, n in widths.items() if 0 < w < width)
    if shorter and layout.kind == "text;label":
        notes.append(f"{shorter:,} line(s) have no ';' and so no label; their label cell is empty.")
    elif shorter:
        notes.append(f"{shorter:,} row(s) have fewer cells than the widest row; the missing cells are empty.")
    if counts.leading_blank:
        notes.append(f"{counts.leading_blank:,} blank line(s) above the header were skipped.")
    if counts.trailing_blank:
        notes.append(f"{counts.trailing_blank:,} blank row(s) at the end of the file were left out.")


def _span(columns: list[str]) -> str:
    if len(columns) <= 2:
        return " and ".join(columns)
    return f"{columns[0]} to {columns[-1]}"


def _choose_text_column(path: Path, columns: list[str], sample: list[list[str]], has_header: bool,
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
    wordy = [j for j in range(len(columns)) if not filled[j] or not all(map(_is_number, filled[j]))]
    named = [c for c in columns if has_header and _normal(c) in TEXT_NAMES]
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
                if _normal(columns[j]) == wanted:
                    return columns[j], "its name says it holds text"
        for wanted in TEXT_NAMES:
            for j in wordy:
                if wanted in _normal(columns[j]).split("_"):
                    return columns[j], "its name says it holds text"
    if not sample:
        return columns[0], "the first column"
    averages = [sum(len(r[j]) for r in sample) / len(sample) if j in wordy else -1.0
                for j in range(len(columns))]
    best = max(range(len(columns)), key=lambda j: (averages[j], -j))
    return columns[best], "it holds the longest texts"


def _frame(rows: list[list[str]], columns: list[str], start: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype=object) if rows else \
        pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
    frame.index = pd.RangeIndex(start, start + len(rows))
    return frame
