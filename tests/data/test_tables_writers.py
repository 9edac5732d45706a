"""What the project writes reads back the same: formula injection is neutralised (also after
leading spaces or line breaks, and in full-width forms), a cell holding the delimiter is quoted,
and any table written as CSV, TSV or JSON Lines comes back from read_table row for row and cell
for cell (with the formula guard's leading ' where it applies, or exactly with raw=True)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emotion_app.data.tables import read_table
from emotion_app.data.writers import is_formula, neutralize_formulas, to_safe_csv

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- 8. formula injection and quoting -----------------------------------------------------------

RUN_AFTER_SPACES = [" =1+1", "   @SUM(A1)", "\n=HYPERLINK(\"http://x\")", "\r\n+1", " \t-2", "\u00a0=1",
                    "\u3000=1"]
FULL_WIDTH = ["\uff1d1+1", "\uff0bA1", "\uff0d2", "\uff20cmd", " \uff1dcmd"]
STILL_HARMLESS = ["plain", "a=b", "'=already", "", "100%", " spaced words", "\nnew line first"]


def test_cells_run_after_leading_spaces_or_line_breaks_and_full_width_forms_are_neutralised():
    frame = pd.DataFrame({"text": RUN_AFTER_SPACES + FULL_WIDTH + STILL_HARMLESS})
    safe = neutralize_formulas(frame)["text"].tolist()
    dangerous = RUN_AFTER_SPACES + FULL_WIDTH
    assert safe == ["'" + v for v in dangerous] + STILL_HARMLESS
    assert [is_formula(v) for v in frame["text"]] == [True] * len(dangerous) + [False] * len(STILL_HARMLESS)
    assert neutralize_formulas(neutralize_formulas(frame)).equals(neutralize_formulas(frame))  # idempotent


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_a_cell_or_name_holding_the_delimiter_is_quoted(tmp_path, suffix, delimiter):
    frame = pd.DataFrame({f"a{delimiter}b": [f"one{delimiter}two", "plain"], "label": ["joy", "anger"]})
    path = to_safe_csv(frame, tmp_path / f"out{suffix}")
    text = path.read_text(encoding="utf-8")
    assert f'"a{delimiter}b"' in text and f'"one{delimiter}two"' in text
    table = read_table(path, header=True)
    assert list(table.frame.columns) == [f"a{delimiter}b", "label"]
    assert table.frame.values.tolist() == [[f"one{delimiter}two", "joy"], ["plain", "anger"]]


# --- 9. round trip: whatever the project writes, read_table reads back the same -------------------

# Any text but the controls a text file cannot carry as data (NUL, Ctrl-Z... are refused or dropped
# as binary or end-of-file marks) and the byte-order mark; tabs and line breaks stay in.
cell = st.text(st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="\ufeff")
               | st.sampled_from(["\n", "\r", "\t", '"', ",", ";", "|", " ", "=", "-", "@", "\uff1d"]),
               max_size=25)
# Column names as the reader keeps them: no surrounding spaces (it strips names), none empty.
name = cell.map(str.strip).filter(bool)


@st.composite
def tables(draw, min_columns: int = 2):
    names = draw(st.lists(name, min_size=min_columns, max_size=5, unique=True))
    n_rows = draw(st.integers(1, 12))
    rows = [draw(st.lists(cell, min_size=len(names), max_size=len(names))) for _ in range(n_rows)]
    rows[-1][0] = "x" + rows[-1][0]  # blank rows at the very end are left out (with a note)
    header = [n.strip() for n in names]
    rows = [r for r in rows if [c.strip() for c in r] != header]  # a row repeating the header is dropped
    return pd.DataFrame(rows or [["x"] * len(names)], columns=names, dtype=object)


def read_back(frame: pd.DataFrame, suffix: str, raw: bool, excel_bom: bool, header: bool | None = True):
    with tempfile.TemporaryDirectory() as directory:
        path = to_safe_csv(frame, Path(directory) / f"out{suffix}", raw=raw, excel_bom=excel_bom)
        written = frame if raw or suffix == ".jsonl" else neutralize_formulas(frame)
        table = read_table(path, header=header, text_column=str(written.columns[0]))
    return table, written


@SETTINGS
@given(frame=tables(), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]), raw=st.booleans(),
       excel_bom=st.booleans())
@example(frame=pd.DataFrame({"text": ['"why, me', "=1+1", " @x", "a\tb", "two\nlines", "x"],
                             "label": ["joy", "", "\r", '"', "sep=;", "end"]}), suffix=".tsv", raw=False,
         excel_bom=True)
@example(frame=pd.DataFrame({"text": ["\n" * 3000 + "x"], "n": ["1"]}), suffix=".csv", raw=True, excel_bom=False)
def test_any_written_table_reads_back_with_the_same_rows_and_cells(frame, suffix, raw, excel_bom):
    table, written = read_back(frame, suffix, raw, excel_bom)
    assert list(table.frame.columns) == [str(c) for c in written.columns]
    assert table.frame.values.tolist() == written.values.tolist()
    assert not any("left out" in note or "merged" in note or "read on its own" in note for note in table.notes)


@SETTINGS
@given(frame=tables(min_columns=1), suffix=st.sampled_from([".csv", ".tsv"]))
def test_a_scored_table_is_recognised_with_its_header(frame, suffix):
    scored = frame.assign(emotion="joy", confidence="0.91", note="")  # the shape score and the app write
    table, written = read_back(scored, suffix, raw=False, excel_bom=False, header=None)
    assert table.has_header and list(table.frame.columns) == [str(c) for c in written.columns]
    assert table.frame.values.tolist() == written.values.tolist()
