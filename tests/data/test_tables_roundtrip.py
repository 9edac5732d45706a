"""Property-based tests: whatever bytes arrive, the reader returns a table or the project's ValueError,
never another exception; well-formed tables come back cell for cell; scoring and writing keep
every row and neutralise exactly the cells a spreadsheet would run."""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import FakePredictor, peaked

from emotion_app.analysis.predictions import NOTE_EMPTY, score_frame
from emotion_app.data.tables import iter_chunks, read_table
from emotion_app.data.writers import FORMULA_STARTS, is_formula, neutralize_formulas, to_safe_csv
from emotion_app.labels import EMOTIONS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".csv", ".tsv", ".txt", ".jsonl", ".json", ".xlsx", ".xls", ""]
MAGIC = [b"PK\x03\x04", b"\x1f\x8b", b"%PDF", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00",
         b'{"text": ', b"[", b'"', b"text;label\n", b"id,text\n"]


def read_bytes(data: bytes, suffix: str, **kwargs):
    """read_table on a file holding `data`; returns the Table or the ValueError."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read_table(path, **kwargs)
        except ValueError as err:
            return err


def check_table(table) -> None:
    frame = table.frame
    assert all(isinstance(cell, str) for cell in frame.values.ravel())
    assert len(set(frame.columns)) == len(frame.columns)
    assert table.text_column in frame.columns
    assert len(frame) >= 1 and list(frame.index) == list(range(len(frame)))
    assert all(isinstance(note, str) and note for note in table.notes)


junk = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda m, b: m + b, st.sampled_from(MAGIC), st.binary(max_size=500)),
    st.builds(lambda t, c: t.encode(c, errors="replace"), st.text(max_size=500),
              st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "cp1252", "latin-1"])),
)


@SETTINGS
@given(data=junk, suffix=st.sampled_from(SUFFIXES), max_rows=st.sampled_from([None, 3]))
@example(data=b"", suffix=".csv", max_rows=None)
@example(data=b'"unclosed, quote\n1,2\n', suffix=".csv", max_rows=None)
@example(data=b"\xff\xfe\x00", suffix=".csv", max_rows=None)
@example(data=b"[" * 5000, suffix=".jsonl", max_rows=None)
@example(data=b"PK\x05\x06" + b"\x00" * 18, suffix=".xlsx", max_rows=None)
def test_any_bytes_give_a_table_or_a_clear_value_error(data, suffix, max_rows):
    result = read_bytes(data, suffix, max_rows=max_rows, max_bytes=10_000)
    if isinstance(result, ValueError):
        message = str(result)
        assert message and ("expected" in message.lower() or "limit" in message), message
    else:
        check_table(result)
        assert max_rows is None or len(result.frame) <= max_rows


# Texts without the other delimiters or control characters (those are covered above); commas,
# quotes, line breaks and any other Unicode stay in.
cell_text = st.text(st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters=";|\t")
                    | st.sampled_from(["\n", "\r", '"', ",", " "]), max_size=40)


@SETTINGS
@given(rows=st.lists(st.lists(cell_text, min_size=2, max_size=2), min_size=1, max_size=30),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]), chunk_rows=st.integers(1, 7))
def test_well_formed_csv_round_trips_cell_for_cell(rows, encoding, chunk_rows):
    rows = [[f"{i}{a}", b] for i, (a, b) in enumerate(rows)]  # a non-blank first cell: no blank rows
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([["id", "text"], *rows])
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "table.csv"
        path.write_bytes(buffer.getvalue().encode(encoding))
        table = read_table(path)
        chunks = list(iter_chunks(path, chunk_rows))
    assert list(table.frame.columns) == ["id", "text"]
    assert table.frame.values.tolist() == rows
    assert pd.concat(chunks).equals(table.frame)


def by_length(texts: list[str]) -> np.ndarray:
    """0.5 on the label the text's length picks."""
    return peaked([len(text) % len(EMOTIONS) for text in texts], 0.5)


@SETTINGS
@given(texts=st.lists(st.one_of(st.text(max_size=60), st.none(), st.floats(allow_nan=True)), max_size=40))
def test_scoring_keeps_every_row_and_scores_exactly_the_non_blank_texts(texts):
    frame = pd.DataFrame({"text": pd.Series(texts, dtype=object)})
    out = score_frame(FakePredictor(by_length), frame, "text", threshold=0.4)
    assert len(out) == len(texts) and out["text"].equals(frame["text"])
    blank = [t is None or (isinstance(t, float) and np.isnan(t)) or not str(t).strip() for t in texts]
    assert [e == "" for e in out["emotion"]] == blank
    assert [n == NOTE_EMPTY for n in out["note"]] == blank


@SETTINGS
@given(texts=st.lists(st.text(max_size=30) | st.sampled_from(list(FORMULA_STARTS)).flatmap(
    lambda start: st.text(max_size=10).map(lambda rest: start + rest)), min_size=1, max_size=20))
def test_written_csv_is_neutralised_exactly_and_raw_is_exact(texts):
    frame = pd.DataFrame({"text": texts})
    with tempfile.TemporaryDirectory() as directory:
        safe = _read_back(to_safe_csv(frame, Path(directory) / "safe.csv"))
        raw = _read_back(to_safe_csv(frame, Path(directory) / "raw.csv", raw=True))
    assert raw == texts
    assert safe == ["'" + t if is_formula(t) else t for t in texts]
    assert neutralize_formulas(frame)["text"].tolist() == safe


def _read_back(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row[0] if row else "" for row in list(csv.reader(handle))[1:]]


def test_codecs_used_by_the_fuzzer_exist():
    for name in ("utf-16", "utf-16-le", "utf-32", "cp1252", "latin-1"):
        codecs.lookup(name)
