"""What a file is, decided from its head: not a table at all (archives, images, web pages, Git LFS
pointers...), a workbook or Parquet file, or text in some encoding and layout (delimiter, JSON
Lines or one JSON document, `text;label` lines or one text a line)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import statistics
import zipfile
from pathlib import Path

from emotion_app.data.tables.common import ACCEPTED, Layout

HEAD_BYTES = 256 * 1024  # what encoding, layout and header are decided from
BLOCK_BYTES = 1 << 20
SAMPLE_RECORDS = 200
# The csv module caps a field at 128 KiB by default (a process-wide setting). Very long texts are
# legitimate; the file size limit bounds memory instead.
CSV_FIELD_LIMIT = 2**31 - 1

DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes (|)"}
SUFFIX_DELIMITER = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}
DELIMITER_PREFERENCE = ("\t", ";", "|", ",")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_MAGIC = b"PAR1"
LFS_POINTER = b"version https://git-lfs.github.com/spec/"

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
    (b"{\\rtf", "an RTF document", "Save it as plain text (one text a line) or export the data as CSV UTF-8."),
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
# A web page or XML document: always so when it opens like one, else when its first element
# closes on a later line and the text ends with a tag (one `<b>text</b>` a line, or a row that
# starts with a tag, is a table of texts, not a document).
DOCUMENT_START = re.compile(r"<(\?xml|!doctype\s|html[\s>]|!--)", re.IGNORECASE)
FIRST_ELEMENT = re.compile(r"<([A-Za-z][\w.:-]*)[\s>/]")
END_OF_FILE = re.compile(r"[\x1a\x04\x00]+[\r\n]*\Z")
SEP_LINE = re.compile(r"sep=(.)[ \t]*\r?\n", re.IGNORECASE)


def not_a_table(path: Path, what: str, fix: str) -> str:
    return f"{path.name} is {what}, not a table: expected {ACCEPTED}. {fix}"


def check_file(path: Path, max_bytes: int | None) -> int:
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file: expected {ACCEPTED}. Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes): expected a table with a header and at least "
                         "one row. Check that the file was saved or exported fully.")
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path.name} is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} "
                         "for one file here. Split it into smaller files, or score it with the command "
                         "line (python -m emotion_app score), which streams files of any size.")
    return size


def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 100 * 1024 else f"{n:,} bytes"


def read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError as err:
        raise ValueError(f"{path.name} could not be opened ({err.strerror}): expected a readable file. "
                         "Check its permissions.") from None


def sniff(path: Path, head: bytes, size: int) -> tuple[Layout, str, list[str]]:
    """(layout, encoding, notes) of the file, or ValueError when it is not a table."""
    kind = _binary_kind(path, head)
    if kind in ("xlsx", "parquet"):
        return Layout(kind), "", []
    # NUL padding at the very end of a small file is an end-of-file mark, not UTF-16 or binary data
    encoding, notes = _detect_encoding(path, head.rstrip(b"\x00") if size <= HEAD_BYTES else head)
    head_text = _decode_head(head, encoding, whole=size <= HEAD_BYTES)
    if size <= HEAD_BYTES:  # an end-of-file mark (Ctrl-Z) is not part of the layout
        head_text = END_OF_FILE.sub("", head_text)
    _check_not_binary(path, head_text)
    if not head_text.strip("\ufeff \t\r\n"):
        raise ValueError(f"{path.name} holds no text (only blank lines or spaces): expected a table "
                         "with a header and at least one row. Check that the right file was exported.")
    _check_not_markup(path, head_text)
    return _detect_layout(path, head_text, notes), encoding, notes


# ---------------------------------------------------------------------------------------------
# Binary formats and files that are not tables


def _binary_kind(path: Path, head: bytes) -> str:
    """'xlsx' for an Excel workbook, 'parquet', or 'text'; raises for archives, images and the like."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(path)
    for magic, what, fix in SIGNATURES:
        if head.startswith(magic):
            raise ValueError(not_a_table(path, what, fix))
    if len(head) > 262 and head[257:262] == b"ustar":
        raise ValueError(not_a_table(path, "a tar archive", UNPACK))
    if head.startswith(LFS_POINTER):
        raise ValueError(not_a_table(path, f"a Git LFS pointer ({len(head):,} bytes that name the real file "
                                     "kept on a Git LFS server)",
                                     "Fetch the real file (`git lfs pull` in the repository, or download it "
                                     "from the repository's web page) and upload that."))
    if path.suffix.lower() in EXCEL_SUFFIXES:
        raise ValueError(f"{path.name} is named like an Excel workbook but is not one (an .xlsx file is a "
                         "ZIP package): expected a workbook saved by Excel or LibreOffice. Save it again "
                         "as .xlsx, or as CSV UTF-8 and upload that.")
    return "text"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ValueError(not_a_table(path, "a damaged ZIP file", UNPACK)) from None
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        raise ValueError(f"{path.name} is an Excel binary workbook (.xlsb), which cannot be read here: "
                         f"expected {ACCEPTED}. In Excel use File > Save As and choose Excel Workbook "
                         "(.xlsx) or CSV UTF-8, and upload that.")
    if "content.xml" in names and "mimetype" in names:
        raise ValueError(not_a_table(path, "an OpenDocument file (.ods/.odt)",
                                     "In LibreOffice use File > Save As > CSV (UTF-8) or .xlsx."))
    if any(name.startswith("word/") for name in names):
        raise ValueError(not_a_table(path, "a Word document", EXPORT))
    raise ValueError(not_a_table(path, "a ZIP archive", UNPACK))


def _check_not_binary(path: Path, text: str) -> None:
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r\f\v") or ch == "\x7f")
    if controls > 0.02 * len(text):
        raise ValueError(not_a_table(path, f"binary data ({controls} control characters in its first "
                                     f"{len(text)} characters)", EXPORT))


def _check_not_markup(path: Path, head_text: str) -> None:
    """Refuse a web page or XML document (often an error or login page saved in place of the data)."""
    text = head_text.lstrip("\ufeff \t\r\n")
    if not text.startswith("<"):
        return
    if not DOCUMENT_START.match(text):
        element = FIRST_ELEMENT.match(text)
        if element is None:
            return
        closing = text.find(f"</{element.group(1)}>")
        if closing < 0 or "\n" not in text[:closing] or not text.rstrip().endswith(">"):
            return
    if re.search(r"<(!doctype\s+html|html[\s>]|head>|body[\s>])", text[:4096], re.IGNORECASE):
        raise ValueError(not_a_table(path, "a web page (HTML)",
                                     "It is often an error or sign-in page saved in place of the data: "
                                     "download the file itself (e.g. the site's \"raw\" or \"download\" "
                                     "link) and upload that, or export the data as CSV UTF-8."))
    raise ValueError(not_a_table(path, "an XML document", EXPORT))


# ---------------------------------------------------------------------------------------------
# Encodings


def _detect_encoding(path: Path, head: bytes) -> tuple[str, list[str]]:
    """(encoding, notes). The whole file is checked, so a bad byte far down is caught up front."""
    for bom, encoding, name in BOMS:
        if head.startswith(bom):
            _require_decodes(path, encoding, name or "UTF-8")
            return encoding, [f"Read as {name} (the file starts with a {name} byte-order mark)."] if name else []
    if b"\x00" in head:
        encoding = _utf16_without_bom(head)
        if encoding is None:
            raise ValueError(not_a_table(path, "binary data (it holds NUL bytes)", EXPORT))
        _require_decodes(path, encoding, "UTF-16")
        return encoding, [f"Read as {encoding.upper()} (no byte-order mark; guessed from the zero bytes)."]
    bad = _first_bad_byte(path, "utf-8")
    if bad is None:
        return "utf-8", []
    if _first_bad_byte(path, "cp1252") is None:
        encoding, name = "cp1252", "Windows-1252 (cp1252)"
    else:
        encoding, name = "latin-1", "Latin-1 (ISO-8859-1)"  # decodes any bytes
    note = (f"The file is not valid UTF-8 (first bad byte at offset {bad}), so it was read as {name}. "
            "If some characters look wrong, save the file as UTF-8 and upload it again.")
    return encoding, [note]


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


# ---------------------------------------------------------------------------------------------
# Layout: JSON, delimiter, `text;label` or plain lines


def _detect_layout(path: Path, head_text: str, notes: list[str]) -> Layout:
    suffix = path.suffix.lower()
    text = head_text.lstrip("\ufeff")
    starts_json = text.lstrip(" \t\r\n")[:1] in ("{", "[")
    if suffix in JSON_SUFFIXES or (suffix not in SUFFIX_DELIMITER and suffix != ".txt" and starts_json):
        return _json_layout(path, text, suffix, notes)
    if starts_json and _json_inside(text):
        layout = _json_layout(path, text, ".json", notes)
        what = "JSON Lines (one JSON object per line)" if layout.kind == "jsonl" else "one JSON document"
        notes.append(f"This {suffix or 'file'} file holds {what}, not a delimited table, so it was read as "
                     "JSON: each object is a row and its keys are the columns.")
        return layout
    if suffix == ".txt" and _text_label_lines(text):
        notes.append("Read as `text;label` lines (the dair-ai/emotion format): the label follows the last ';'.")
        return Layout("text;label", ";")
    sep = SEP_LINE.match(text)
    if sep is not None:
        delimiter = sep.group(1)
        body = text[sep.end():]
        notes.append(f"The first line, 'sep={delimiter}', tells Excel how the columns are separated: it was "
                     f"used ({DELIMITER_NAMES.get(delimiter, repr(delimiter))}) and not read as a row.")
        return Layout("csv", delimiter, skip_lines=1, width=_width(body, delimiter),
                      typical_chars=_typical_chars(body, delimiter))
    delimiter = _best_delimiter(text, suffix)
    if delimiter is None:
        if suffix == ".csv":
            notes.append("Found one column (no comma, semicolon, tab or pipe separates columns).")
            return Layout("csv", ",", typical_chars=_typical_chars(text, ","))
        notes.append("Found one column: each line is one text.")
        return Layout("lines")
    if delimiter != SUFFIX_DELIMITER.get(suffix):
        notes.append(f"Columns are separated by {DELIMITER_NAMES[delimiter]} (detected).")
    return Layout("csv", delimiter, width=_width(text, delimiter), typical_chars=_typical_chars(text, delimiter))


def _json_layout(path: Path, text: str, suffix: str, notes: list[str]) -> Layout:
    """JSON Lines when the first line is a record of its own; else one JSON document (a list, or
    an object that holds the records) read whole. A .jsonl name is believed unless its first line
    only opens a document (a pretty-printed file)."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if suffix in JSON_LINES_SUFFIXES and first_line not in ("[", "{"):
        return Layout("jsonl")
    if _is_record(first_line):
        return Layout("jsonl")
    notes.append("Read as one JSON document (held in memory whole); JSON Lines streams better.")
    return Layout("json")


def _is_record(line: str) -> bool:
    try:
        return isinstance(json.loads(line), (dict, str))
    except (json.JSONDecodeError, RecursionError):
        return False


def _json_inside(text: str) -> bool:
    """A .csv/.tsv/.txt file whose lines are JSON objects, or that holds a JSON list of objects."""
    stripped = text.lstrip(" \t\r\n")
    if stripped.startswith("[") and stripped[1:].lstrip(" \t\r\n").startswith("{"):
        return True
    lines = [line for line in text.splitlines() if line.strip()][:20]
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                return False
        except (json.JSONDecodeError, RecursionError):
            return False
    return bool(lines)


def _text_label_lines(head_text: str) -> bool:
    """Every line ends in ';' and a one-word label (the texts themselves may hold ';')."""
    lines = [line for line in head_text.splitlines() if line.strip()][:SAMPLE_RECORDS]
    return bool(lines) and all(re.fullmatch(r"[^\s;]{1,30}", line.rpartition(";")[2].strip())
                               and ";" in line for line in lines)


def csv_rows_of(text: str, delimiter: str, n: int = 100) -> list[list[str]]:
    """The first `n` non-empty records of `text` as the csv module reads them (quotes forgiven)."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    out = []
    for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False):
        if record:
            out.append(record)
            if len(out) >= n:
                break
    return out


def _line_widths(text: str, delimiter: str, n: int = 100) -> list[int]:
    """Cells a line when quotes are not read as quoting (a file whose quotes are text)."""
    return [line.count(delimiter) + 1 for line in text.splitlines()[:n] if line.strip()]


def _best_delimiter(head_text: str, suffix: str) -> str | None:
    """The delimiter whose records most often have the same number (>= 2) of fields, read with
    quotes as quoting or, where that fits better, as text."""
    preferred = SUFFIX_DELIMITER.get(suffix)
    order = ([preferred] if preferred else []) + [d for d in DELIMITER_PREFERENCE if d != preferred]
    best: tuple[float, int, str | None] = (0.0, 0, None)
    for rank, delimiter in enumerate(order):
        for widths in ([len(r) for r in csv_rows_of(head_text, delimiter)], _line_widths(head_text, delimiter)):
            if not widths:
                continue
            width = statistics.mode(widths)
            share = widths.count(width) / len(widths)
            if width >= 2 and share >= 0.8 and (share, -rank) > best[:2]:
                best = (share, -rank, delimiter)
    if best[2] is None:
        return _ragged_delimiter(head_text, order)
    return best[2]


def _ragged_delimiter(head_text: str, order: list[str]) -> str | None:
    """Rows of differing widths: the delimiter that splits the header row and at least half of the
    rows in two or more cells (the short and long rows are then reported, never hidden as one column)."""
    for delimiter in order:
        for widths in ([len(r) for r in csv_rows_of(head_text, delimiter)], _line_widths(head_text, delimiter)):
            if len(widths) >= 2 and widths[0] >= 2 and sum(w >= 2 for w in widths) >= len(widths) / 2:
                return delimiter
    return None


def _width(text: str, delimiter: str) -> int:
    widths = [len(r) for r in csv_rows_of(text, delimiter)]
    return statistics.mode(widths) if widths else 1


def _typical_chars(text: str, delimiter: str) -> int:
    sizes = [sum(map(len, r)) + len(r) for r in csv_rows_of(text, delimiter)]
    return max(int(statistics.median(sizes)), 1) if sizes else 80
