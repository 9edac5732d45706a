"""The table reader recognises what is not a table before anything is scored (web pages, XML,
Git LFS pointers, binary workbooks, JSON in a .csv, JSON records under a key), reads workbooks
by their real content (not the size they claim; formulas without results named; the first visible
sheet), and writes Parquet and JSON cells as text (bytes decoded, nested values as JSON).

Every file is written by the test itself.
"""

from __future__ import annotations

import json
import re
import time
import zipfile

import pandas as pd
import pytest

from emotion_app.data.tables import read_table


def write(tmp_path, name: str, data):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def error_of(path) -> str:
    with pytest.raises(ValueError) as caught:
        read_table(path)
    return str(caught.value)


def notes_of(table) -> str:
    return " ".join(table.notes)


# --- 5. what is not a table ---------------------------------------------------------------------


@pytest.mark.parametrize("name,data,what", [
    ("data.csv", "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n<body>x, y</body></html>\n",
     "a web page (HTML)"),
    ("data.csv", "\n  <html lang='en'>\n<body><p>404, not found</p></body>\n</html>\n", "a web page (HTML)"),
    ("data.tsv", '<?xml version="1.0"?>\n<rows>\n<row text="hi"/>\n</rows>\n', "an XML document"),
    ("export", "<rows>\n  <row>hi, there</row>\n</rows>\n", "an XML document"),
    ("data.csv", "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 1048576\n",
     "a Git LFS pointer"),
    ("notes.csv", "{\\rtf1\\ansi hello, world}", "an RTF document"),
])
def test_pages_pointers_and_documents_are_refused_with_what_they_are(tmp_path, name, data, what):
    message = error_of(write(tmp_path, name, data))
    assert what in message and "not a table" in message and "expected" in message


def test_lfs_pointer_says_how_to_get_the_real_file(tmp_path):
    message = error_of(write(tmp_path, "train.csv", "version https://git-lfs.github.com/spec/v1\n"
                                                    "oid sha256:abc\nsize 12\n"))
    assert "git lfs pull" in message


def test_one_html_snippet_a_line_is_still_a_table_of_texts(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "<b>so happy</b>,joy\n<i>so sad</i>,sadness\n"))
    assert table.frame.values.tolist() == [["<b>so happy</b>", "joy"], ["<i>so sad</i>", "sadness"]]


def test_xlsb_has_its_own_message(tmp_path):
    path = tmp_path / "book.xlsb"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.bin", b"\x83\x01\x00")
    message = error_of(path)
    assert "Excel binary workbook (.xlsb)" in message and "Excel Workbook (.xlsx)" in message


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".tsv"])
def test_json_lines_inside_a_csv_are_read_as_json_lines(tmp_path, suffix):
    lines = [{"text": "i am happy, really", "label": "joy"}, {"text": "so sad", "label": "sadness", "id": 3}]
    path = write(tmp_path, f"data{suffix}", "".join(json.dumps(x) + "\n" for x in lines))
    table = read_table(path)
    assert table.kind == "jsonl" and list(table.frame.columns) == ["text", "label", "id"]
    assert table.frame.values.tolist() == [["i am happy, really", "joy", ""], ["so sad", "sadness", "3"]]
    assert f"This {suffix} file holds JSON Lines" in notes_of(table)


def test_a_json_list_inside_a_csv_is_read_as_json(tmp_path):
    table = read_table(write(tmp_path, "d.csv", json.dumps([{"text": "a, b"}, {"text": "c"}], indent=2)))
    assert table.frame["text"].tolist() == ["a, b", "c"] and "one JSON document" in notes_of(table)


@pytest.mark.parametrize("document,key", [
    ({"data": [{"text": "hi", "label": "joy"}, {"text": "yo", "label": "anger"}], "count": 2}, "data"),
    ({"meta": {"v": 1}, "result": {"items": [{"text": "hi", "label": "joy"}, {"text": "yo", "label": "anger"}]}},
     "result.items"),
])
def test_json_records_under_a_key_are_read_and_the_key_named(tmp_path, document, key):
    table = read_table(write(tmp_path, "d.json", json.dumps(document, indent=2)))
    assert table.frame.values.tolist() == [["hi", "joy"], ["yo", "anger"]]
    assert f"under the key '{key}'" in notes_of(table)
    assert "were not read" in notes_of(table)  # the other keys are named


def test_a_pretty_printed_jsonl_file_is_read_as_one_document(tmp_path):
    path = write(tmp_path, "d.jsonl", json.dumps({"texts": ["one", "two"]}, indent=2))
    assert read_table(path).frame["text"].tolist() == ["one", "two"]


@pytest.mark.parametrize("document,words", [
    ({"text": {"0": "a", "1": "b"}, "label": {"0": "joy", "1": "anger"}}, "orient='records'"),
    ({"train": [{"text": "a"}], "test": [{"text": "b"}]}, "several lists of records"),
    ({"a": {"b": 1}, "c": [1, 2]}, "no list of records"),
    (42, "holds a JSON int"),
])
def test_json_that_holds_no_records_is_refused_saying_what_it_is(tmp_path, document, words):
    message = error_of(write(tmp_path, "d.json", json.dumps(document, indent=1)))
    assert words in message and "expected" in message


def test_a_flat_pretty_printed_object_is_one_record(tmp_path):
    table = read_table(write(tmp_path, "one.json", json.dumps({"text": "hello", "label": "joy"}, indent=2)))
    assert table.frame.values.tolist() == [["hello", "joy"]]


# --- 6. workbooks -------------------------------------------------------------------------------


openpyxl = pytest.importorskip("openpyxl")


def _save(workbook, path, dimension: str | None = None, extra: bytes = b""):
    """Save; then, as some exporters do, claim a `dimension` and add `extra` rows to the sheet XML."""
    workbook.save(path)
    if dimension is None:
        return path
    patched = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{dimension}"/>'.encode(), data)
                data = data.replace(b"</sheetData>", extra + b"</sheetData>")
            target.writestr(item, data)
    patched.replace(path)
    return path


def test_a_workbook_claiming_the_whole_grid_reads_only_its_real_cells_quickly(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["i am so happy today"])
    # a formatted but empty last cell, as Excel leaves after formatting whole columns
    path = _save(workbook, tmp_path / "claims.xlsx", dimension="A1:XFD1048576",
                 extra=b'<row r="1048576"><c r="XFD1048576" s="0"/></row>')
    assert b"XFD1048576" in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    started = time.perf_counter()
    table = read_table(path)
    assert time.perf_counter() - started < 10  # walking the claimed grid took minutes
    assert table.frame.values.tolist() == [["i am so happy today"]]
    assert "blank row(s) at the end of the file were left out (rows 2 to 1,048,576)" in notes_of(table)


def test_a_claimed_dimension_alone_does_not_pad_rows(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["text", "label"])
    workbook.active.append(["fine", "joy"])
    table = read_table(_save(workbook, tmp_path / "claims.xlsx", dimension="A1:XFD1048576"))
    assert list(table.frame.columns) == ["text", "label"] and table.frame.values.tolist() == [["fine", "joy"]]


def test_formulas_saved_without_results_are_named_by_column(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["id", "first", "text"])
    for i in range(1, 4):
        sheet.append([i, f"part {i}", f'=B{i + 1}&" more words"'])  # openpyxl saves no result
    table = read_table(_save(workbook, tmp_path / "formulas.xlsx"))
    assert table.frame["text"].tolist() == ["", "", ""]
    assert "Column 'text' (C) holds 3 formula cell(s) saved without a result (rows 2 to 4)" in notes_of(table)


def test_the_first_visible_sheet_is_read_and_named(tmp_path):
    workbook = openpyxl.Workbook()
    hidden = workbook.active
    hidden.title = "lookup"
    hidden.append(["code", "meaning"])
    hidden.sheet_state = "hidden"
    data = workbook.create_sheet("answers")
    data.append(["text", "label"])
    data.append(["i love it", "joy"])
    workbook.create_sheet("later").append(["text"])
    table = read_table(_save(workbook, tmp_path / "hidden.xlsx"))
    assert table.frame.values.tolist() == [["i love it", "joy"]]
    assert "Read 'answers', the first visible sheet of 3" in notes_of(table) and "'lookup'" in notes_of(table)


def test_a_single_sheet_is_named_too(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.title = "Feedback"
    workbook.active.append(["text"])
    workbook.active.append(["fine"])
    table = read_table(_save(workbook, tmp_path / "one.xlsx"))
    assert "only sheet, 'Feedback'" in notes_of(table)


# --- 7. Parquet and JSON cells ------------------------------------------------------------------


def test_parquet_bytes_and_nested_values_become_text_and_json(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "text": pa.array([b"caf\xc3\xa9 time", b"plain"], type=pa.binary()),
        "tags": pa.array([["a", "b"], []], type=pa.list_(pa.string())),
        "meta": pa.array([{"k": 1, "when": None}, None], type=pa.struct([("k", pa.int64()), ("when", pa.string())])),
        "blob": pa.array([[b"x"], None], type=pa.list_(pa.binary())),
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    read = read_table(path)
    assert read.frame.values.tolist() == [["café time", '["a", "b"]', '{"k": 1, "when": null}', '["x"]'],
                                          ["plain", "[]", "", ""]]


def test_parquet_bytes_that_are_not_text_are_refused_naming_column_and_row(tmp_path):
    path = tmp_path / "b.parquet"
    pd.DataFrame({"text": ["ok", "fine"], "raw": [b"fine", b"\xff\xfe\x00"]}).to_parquet(path)
    message = error_of(path)
    assert "column 'raw', row 2" in message and "not UTF-8 text" in message and "expected text" in message


def test_json_nested_values_are_json_text(tmp_path):
    path = write(tmp_path, "n.jsonl", json.dumps({"text": "hi", "tags": ["a", "b"], "meta": {"k": 1}}) + "\n")
    assert read_table(path).frame.values.tolist() == [["hi", '["a", "b"]', '{"k": 1}']]
