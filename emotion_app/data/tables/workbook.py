"""Rows of an Excel workbook (.xlsx, via openpyxl): the first visible sheet, only the cells that
exist (a workbook may claim a size covering the whole grid), and the formula cells that were saved
without a result, which read as empty."""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from emotion_app.data.tables.cells import cell_text
from emotion_app.data.tables.common import Row, Tally

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELATIONS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PACKAGE_RELATIONS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
REBUILD = "Save it again from Excel or LibreOffice, or as CSV UTF-8."


def xlsx_rows(path: Path, tally: Tally) -> Iterator[Row]:
    """Every row of the chosen sheet from row 1 (its number in the sheet), trailing empty cells cut."""
    openpyxl = _openpyxl(path)
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError,
            ElementTree.ParseError, EOFError) as err:
        raise ValueError(f"{path.name} could not be read as an Excel workbook ({err}). {REBUILD}") from None
    try:
        yield from _sheet_rows(path, _choose_sheet(path, workbook, tally), tally)
    finally:
        workbook.close()


def _sheet_rows(path: Path, sheet, tally: Tally) -> Iterator[Row]:
    """Rows with values as they come; empty rows only when a filled row follows them, so that the
    formatted but empty rows far below the data (common in Excel) cost next to nothing."""
    sheet.reset_dimensions()  # the size it claims may be the whole grid: read the cells that exist
    number, blank_from = 0, None  # the first empty row since the last filled one
    try:
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if values.count(None) == len(values):
                blank_from = blank_from or number
                continue
            if blank_from is not None:
                yield from (Row(gap, []) for gap in range(blank_from, number))
                blank_from = None
            cells = [cell_text(value) for value in values]
            while cells and cells[-1] == "":
                cells.pop()
            yield Row(number, cells)
    except (KeyError, ValueError, TypeError, ElementTree.ParseError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path.name}: sheet '{sheet.title}' could not be read ({err}). {REBUILD}") from None
    if blank_from is not None:
        tally.trailing_blank.extend(range(blank_from, number + 1))


def _openpyxl(path: Path):
    try:
        import openpyxl
    except ImportError:
        raise ValueError(f"{path.name} is an Excel workbook, and reading .xlsx needs the openpyxl package, "
                         "which is not installed. Either run `pip install openpyxl`, or in Excel use "
                         "File > Save As > CSV UTF-8 (comma delimited) and upload the CSV.") from None
    return openpyxl


def _choose_sheet(path: Path, workbook, tally: Tally):
    """The first visible worksheet: a hidden one is usually lookups or scratch, not the data."""
    sheets = workbook.worksheets
    if not sheets:
        raise ValueError(f"{path.name} holds no worksheet (only charts): expected a sheet of rows. {REBUILD}")
    visible = [sheet for sheet in sheets if sheet.sheet_state == "visible"] or sheets
    sheet = visible[0]
    tally.sheet_title = sheet.title
    if len(sheets) == 1:
        tally.sheet_note = f"Read the workbook's only sheet, '{sheet.title}'."
    elif sheet is sheets[0]:
        tally.sheet_note = (f"Read the first sheet, '{sheet.title}', of {len(sheets)}; to score another, move it "
                            "first or save it as CSV.")
    else:
        hidden = [s.title for s in sheets[:sheets.index(sheet)]]
        tally.sheet_note = (f"Read '{sheet.title}', the first visible sheet of {len(sheets)} (before it, "
                            f"{', '.join(map(repr, hidden))} {'is' if len(hidden) == 1 else 'are'} hidden); "
                            "to score another, move it first or save it as CSV.")
    return sheet


def formulas_without_results(path: Path, title: str) -> dict[int, list[int]]:
    """Column index (from 0) -> sheet rows of formula cells saved without a result (files written by
    programs that do not calculate): openpyxl reads those as empty, which must not pass unnoticed."""
    found: dict[int, list[int]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            member = _sheet_member(archive, title)
            if member is None:
                return found
            with archive.open(member) as source:
                _scan_formulas(source, found)
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile, OSError):
        return found  # the rows were read, so the sheet is sound; only this check is skipped
    return found


def _scan_formulas(source, found: dict[int, list[int]]) -> None:
    row = column = 0
    for event, element in ElementTree.iterparse(source, events=("start", "end")):
        if event == "start":
            if element.tag == f"{MAIN}row":
                row = int(element.get("r") or row + 1)
                column = 0
            continue
        if element.tag == f"{MAIN}c":
            reference = re.match(r"([A-Z]+)(\d+)$", element.get("r") or "")
            column = _column_index(reference.group(1)) if reference else column + 1
            if element.find(f"{MAIN}f") is not None and not _has_result(element):
                found.setdefault(column - 1, []).append(row)
            element.clear()
        elif element.tag == f"{MAIN}row":
            element.clear()


def _has_result(cell: ElementTree.Element) -> bool:
    """A saved result: a <v> with a value, or an empty one on a text formula (its result is "")."""
    value = cell.find(f"{MAIN}v")
    if value is None:
        return False
    return bool(value.text) or cell.get("t") == "str"


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index


def column_letter(index: int) -> str:
    """Column index from 0 -> its letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _sheet_member(archive: zipfile.ZipFile, title: str) -> str | None:
    """The sheet's XML file in the package, from the workbook and its relationships."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    ids = [s.get(f"{RELATIONS}id") for s in workbook.iter(f"{MAIN}sheet") if s.get("name") == title]
    if not ids:
        return None
    relations = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for relation in relations.iter(f"{PACKAGE_RELATIONS}Relationship"):
        if relation.get("Id") == ids[0]:
            target = relation.get("Target") or ""
            return target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    return None
