"""Writing scored tables: CSV/TSV (neutralised against spreadsheet formula injection) or JSON
Lines, written beside the target and renamed into place, so a failure leaves no half file."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_app.artifacts import temporary_name

# Characters a spreadsheet runs a cell from: the ASCII ones, their full-width forms (which Excel and
# LibreOffice also accept in some locales) and the small forms.
FORMULA_CHARS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b")
# A cell starting with one of these is guarded (kept for callers that test with str.startswith);
# `is_formula` is the whole rule, which also looks past leading spaces and line breaks.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# What a spreadsheet skips before it looks for a formula: spaces and line breaks of any kind, and
# invisible characters.
LEADING = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]*")
PARTIAL = ".partial"  # a table being written
OUTPUT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def is_formula(value: str) -> bool:
    """Whether a spreadsheet opening the file could run `value` as a formula: it starts with one of
    = + - @ (or a full-width form), after any leading spaces or line breaks, or with a tab or CR."""
    if value.startswith(("\t", "\r")):
        return True
    return value[LEADING.match(value).end():][:1] in FORMULA_CHARS


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which text cells and column names a spreadsheet would run as a formula start with '."""
    out = frame.copy()
    for position in range(out.shape[1]):
        series = out.iloc[:, position]
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out.isetitem(position, series.map(_neutral, na_action="ignore").astype(object))
    out.columns = [_neutral(c) if isinstance(c, str) else c for c in out.columns]
    return out


def _neutral(value: object) -> object:
    if isinstance(value, str) and is_formula(value):
        return "'" + value
    return value


def output_format(path: str | Path) -> str:
    """csv, tsv or jsonl, from the file name's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"output {Path(path).name} has suffix {suffix or '(none)'}: expected one of "
                         f"{', '.join(OUTPUT_SUFFIXES)}. Name the output e.g. scored.csv.")
    return OUTPUT_SUFFIXES[suffix]


class TableWriter:
    """Writes a table chunk by chunk (format from the suffix) to a temporary file beside `path`,
    renamed into place by close(): a run that fails half-way never leaves a file that looks complete.
    CSV/TSV cells are neutralised against formula injection unless raw, and a cell holding the
    delimiter, a quote or a line break is quoted; JSON Lines is for programs and is written as is."""

    def __init__(self, path: str | Path, raw: bool = False, excel_bom: bool = False):
        self.path = Path(path)
        self.format = output_format(self.path)
        self.raw = raw
        self.rows = 0
        self._columns: list[str] | None = None
        # mkstemp adds 8 random characters between the prefix and the suffix
        prefix = temporary_name(self.path, ".", reserve=8 + len(PARTIAL)).name
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=PARTIAL,
                                             dir=self.path.parent if str(self.path.parent) else ".")
        self._temporary = Path(temporary)
        encoding = "utf-8-sig" if excel_bom and self.format != "jsonl" else "utf-8"
        self._handle = os.fdopen(handle, "w", encoding=encoding, newline="")

    def write(self, frame: pd.DataFrame) -> None:
        columns = [str(c) for c in frame.columns]
        if self._columns is not None and columns != self._columns:
            raise ValueError(f"chunk columns {columns} differ from the first chunk's {self._columns}: "
                             "every chunk of one table needs the same columns.")
        if self.format == "jsonl":
            self._write_jsonl(frame)
        else:
            safe = frame if self.raw else neutralize_formulas(frame)
            # CRLF as RFC 4180 and Excel expect; it also makes the writer quote a lone \r in a cell,
            # which it leaves bare when the line ends are \n (the row would then break in two)
            safe.to_csv(self._handle, sep="\t" if self.format == "tsv" else ",", index=False,
                        header=self._columns is None, lineterminator="\r\n", na_rep="",
                        quoting=csv.QUOTE_MINIMAL, quotechar='"', doublequote=True)
        self._columns = columns
        self.rows += len(frame)

    def _write_jsonl(self, frame: pd.DataFrame) -> None:
        names = [str(c) for c in frame.columns]
        for row in frame.itertuples(index=False, name=None):
            record = dict(zip(names, (_json_value(v) for v in row)))
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> Path:
        self._handle.close()
        os.replace(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        self._handle.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _json_value(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_safe_csv(frame: pd.DataFrame, path: str | Path, raw: bool = False, excel_bom: bool = False) -> Path:
    """Write `frame` to `path` (.csv, .tsv or .jsonl), neutralised against CSV injection unless raw.

    excel_bom=True starts a CSV with a UTF-8 byte-order mark, which Excel needs to show non-ASCII
    characters correctly when the file is opened with a double-click.
    """
    with TableWriter(path, raw=raw, excel_bom=excel_bom) as writer:
        writer.write(frame)
    return Path(path)
