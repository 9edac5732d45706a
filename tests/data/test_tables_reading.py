"""The shared table reader: encodings, layouts, headers, odd cells, hostile files and limits.

Every file is written by the test itself.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import sys
import zipfile

import pandas as pd
import pytest

from emotion_app.data.tables import (
    HEAD_BYTES,
    iter_chunks,
    open_table,
    read_table,
    resolve_column,
)


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_bytes(data.encode("utf-8"))
    else:
        path.write_bytes(data)
    return path


def rows(table) -> list[list[str]]:
    return table.frame.values.tolist()


def error_of(path, **kwargs) -> str:
    with pytest.raises(ValueError) as caught:
        read_table(path, **kwargs)
    return str(caught.value)


# --- plain CSV ----------------------------------------------------------------------------------


def test_csv_with_quotes_newlines_and_blank_text_keeps_every_row_and_cell(tmp_path):
    path = write(tmp_path, "in.csv", 'id,text,label\n1,"hello, world",joy\n2,"two\nlines ""quoted""",sadness\n'
                 "3,,anger\n4,   ,fear\n")
    table = read_table(path)
    assert list(table.frame.columns) == ["id", "text", "label"]
    assert rows(table) == [["1", "hello, world", "joy"], ["2", 'two\nlines "quoted"', "sadness"],
                           ["3", "", "anger"], ["4", "   ", "fear"]]
    assert table.text_column == "text"
    assert table.encoding == "utf-8" and table.delimiter == "," and table.has_header
    assert all(isinstance(cell, str) for cell in table.frame.values.ravel())


def test_crlf_and_old_mac_line_endings(tmp_path):
    for name, data in (("crlf.csv", "text,label\r\nhi there,joy\r\nbye now,sadness\r\n"),
                       ("cr.csv", "text,label\rhi there,joy\rbye now,sadness\r")):
        assert rows(read_table(write(tmp_path, name, data))) == [["hi there", "joy"], ["bye now", "sadness"]]


def test_numbers_stay_text_exactly_as_written(tmp_path):
    table = read_table(write(tmp_path, "n.csv", "id,text,score\n007,i am fine,1.50\n8,ok then,-2e3\n"))
    assert rows(table) == [["007", "i am fine", "1.50"], ["8", "ok then", "-2e3"]]


def test_very_long_text_is_read_whole(tmp_path):
    long_text = "word " * 300_000  # 1.5 MB, beyond the csv module's default field cap and the sniffed head
    path = write(tmp_path, "long.csv", f'id,text\n1,"{long_text}"\n2,short one\n')
    table = read_table(path)
    assert table.frame["text"].tolist() == [long_text, "short one"]


# --- encodings ----------------------------------------------------------------------------------


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    table = read_table(write(tmp_path, "bom.csv", codecs.BOM_UTF8 + "id,text\n1,café\n".encode("utf-8")))
    assert list(table.frame.columns) == ["id", "text"] and rows(table) == [["1", "café"]]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(tmp_path, codec):
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    path = write(tmp_path, "u16.csv", bom + "text\tlabel\nça va 😀\tjoy\n".encode(codec))
    table = read_table(path)
    assert rows(table) == [["ça va 😀", "joy"]]
    assert table.encoding == "utf-16" and any("UTF-16" in note for note in table.notes)


def test_utf16_without_bom_is_recognised_and_reported(tmp_path):
    table = read_table(write(tmp_path, "u16.csv", "text,label\nhello there,joy\n".encode("utf-16-le")))
    assert rows(table) == [["hello there", "joy"]]
    assert any("UTF-16-LE" in note for note in table.notes)


def test_cp1252_fallback_is_reported(tmp_path):
    table = read_table(write(tmp_path, "win.csv", "text,label\ncafé — déjà vu,joy\n".encode("cp1252")))
    assert rows(table) == [["café — déjà vu", "joy"]]
    assert table.encoding == "cp1252"
    assert any("not valid UTF-8" in note and "cp1252" in note for note in table.notes)


def test_latin1_fallback_when_cp1252_cannot_decode(tmp_path):
    data = b"text,label\nabc\x81def,joy\n"  # 0x81 is undefined in cp1252
    table = read_table(write(tmp_path, "l1.csv", data))
    assert table.encoding == "latin-1" and rows(table) == [["abc\x81def", "joy"]]
    assert any("Latin-1" in note for note in table.notes)


def test_a_bad_byte_far_below_the_head_still_selects_the_fallback(tmp_path):
    body = "".join(f"{i},plain ascii text number {i}\n" for i in range(20_000))
    data = ("id,text\n" + body).encode("utf-8") + "99999,naïve ending\n".encode("cp1252")
    assert len(data) > HEAD_BYTES
    table = read_table(write(tmp_path, "late.csv", data))
    assert table.encoding == "cp1252" and table.frame["text"].iloc[-1] == "naïve ending"
    assert len(table.frame) == 20_001


# --- delimiters and layouts ---------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, delimiter):
    lines = ["id", "text", "label"], ["1", "so happy, really", "joy"], ["2", "sad", "sadness"]
    if delimiter == ",":
        lines = [[f'"{c}"' if "," in c else c for c in line] for line in lines]
    path = write(tmp_path, "data.csv", "".join(delimiter.join(line) + "\n" for line in lines))
    table = read_table(path)
    assert table.delimiter == delimiter
    assert rows(table) == [["1", "so happy, really", "joy"], ["2", "sad", "sadness"]]
    assert (delimiter == ",") != any("separated by" in note for note in table.notes)


def test_tsv_with_commas_and_semicolons_in_the_texts(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\nwell, i; think so\tjoy\nno, no; no\tanger\n")
    assert rows(read_table(path)) == [["well, i; think so", "joy"], ["no, no; no", "anger"]]


def test_text_label_txt_lines_as_in_the_original_data_set(tmp_path):
    path = write(tmp_path, "val.txt", "i feel lost;sadness\nwhat a day; really;joy\ni am so angry at this;anger\n")
    table = read_table(path)
    assert list(table.frame.columns) == ["text", "label"] and not table.has_header
    assert rows(table) == [["i feel lost", "sadness"], ["what a day; really", "joy"],
                           ["i am so angry at this", "anger"]]
    assert table.text_column == "text"
    assert any("text;label" in note for note in table.notes)


def test_text_label_txt_with_a_header_line(tmp_path):
    table = read_table(write(tmp_path, "val.txt", "text;label\ni feel lost;sadness\nyay;joy\n"))
    assert table.has_header and rows(table) == [["i feel lost", "sadness"], ["yay", "joy"]]


def test_one_column_text_file_one_text_a_line(tmp_path):
    table = read_table(write(tmp_path, "t.txt", 'first text, with a comma\n"quoted" words\n\nlast\n'))
    assert rows(table) == [["first text, with a comma"], ['"quoted" words'], [""], ["last"]]
    assert table.text_column == "column_1"


# --- headers and columns ------------------------------------------------------------------------


def test_no_header_is_detected_named_and_reported(tmp_path):
    path = write(tmp_path, "nohead.csv", "i feel awful and grey today,sadness\nwhat a lovely surprise,surprise\n"
                 "so angry at all of this,anger\nwarm and loved,love\n")
    table = read_table(path)
    assert not table.has_header
    assert list(table.frame.columns) == ["column_1", "column_2"]
    assert rows(table)[0] == ["i feel awful and grey today", "sadness"]  # the first row is data
    assert table.text_column == "column_1"
    assert any("No header row" in note for note in table.notes)


def test_header_can_be_forced_either_way(tmp_path):
    path = write(tmp_path, "x.csv", "alpha,beta\ngamma,delta\n")
    assert rows(read_table(path, header=True)) == [["gamma", "delta"]]
    assert rows(read_table(path, header=False)) == [["alpha", "beta"], ["gamma", "delta"]]


def test_header_detected_from_a_numeric_column(tmp_path):
    table = read_table(write(tmp_path, "x.csv", "Kommentar,Sterne\nsehr gut gemacht,5\nnicht gut,1\n"))
    assert table.has_header and table.text_column == "Kommentar"


def test_duplicate_and_empty_column_names_are_made_unique_and_reported(tmp_path):
    table = read_table(write(tmp_path, "dup.csv", "text,text,,label,text_2\na,b,c,d,e\n"))
    assert list(table.frame.columns) == ["text", "text_2", "column_3", "label", "text_2_2"]
    assert rows(table) == [["a", "b", "c", "d", "e"]]
    assert any("Duplicate column names" in note and "'text' -> 'text_2'" in note for note in table.notes)
    assert any("column_3" in note for note in table.notes)


def test_ragged_rows_are_padded_or_widened_never_cut(tmp_path):
    table = read_table(write(tmp_path, "r.csv", "text,label\nshort row\na,b,extra one,extra two\nc,d\n"))
    assert list(table.frame.columns) == ["text", "label", "column_3", "column_4"]
    assert rows(table) == [["short row", "", "", ""], ["a", "b", "extra one", "extra two"], ["c", "d", "", ""]]
    assert any("more cells than the header" in note for note in table.notes)
    assert any("fewer cells" in note for note in table.notes)


def test_blank_rows_inside_are_kept_and_blank_rows_at_the_end_left_out_with_a_note(tmp_path):
    table = read_table(write(tmp_path, "b.csv", "text,label\nfirst,joy\n\n,\nlast,anger\n\n,\n\n"))
    assert rows(table) == [["first", "joy"], ["", ""], ["", ""], ["last", "anger"]]
    assert any("3 blank row(s) at the end" in note for note in table.notes)


def test_text_column_is_guessed_from_its_name_then_from_text_length(tmp_path):
    named = read_table(write(tmp_path, "a.csv", "id,Tweet,lang\n1,hi,english language text here\n"))
    assert named.text_column == "Tweet"
    longest = read_table(write(tmp_path, "b.csv", "id,a,b\n1,short,a much longer piece of writing\n"
                                              "2,tiny,another long sentence of prose\n"))
    assert longest.text_column == "b"


def test_text_column_can_be_named_in_any_case_or_by_position(tmp_path):
    path = write(tmp_path, "c.csv", "id,Review,label\n1,good stuff,joy\n")
    assert read_table(path, text_column="Review").text_column == "Review"
    assert read_table(path, text_column="review").text_column == "Review"
    assert read_table(path, text_column="1").text_column == "id"
    message = error_of(path, text_column="body")
    assert "no column 'body'" in message and "'Review'" in message
    assert resolve_column("3", ["a", "b", "c"]) == "c"


# --- other formats ------------------------------------------------------------------------------


def test_jsonl_keys_become_columns_and_values_text(tmp_path):
    lines = ['{"text": "hi", "n": 1, "ok": true}', "", '{"text": "yo", "tags": ["a", "b"], "n": null}',
             '"just a string"', '{"text": "x", "text": "dup"}']
    table = read_table(write(tmp_path, "d.jsonl", "\n".join(lines) + "\n"))
    assert list(table.frame.columns) == ["text", "n", "ok", "tags", "text_2"]
    assert rows(table) == [["hi", "1", "true", "", ""], ["yo", "", "", '["a", "b"]', ""],
                           ["just a string", "", "", "", ""], ["x", "", "", "", "dup"]]


def test_json_array_file(tmp_path):
    table = read_table(write(tmp_path, "d.json", json.dumps([{"text": "a"}, {"text": "b", "id": 2}])))
    assert rows(table) == [["a", ""], ["b", "2"]]


def test_bad_jsonl_line_names_the_line(tmp_path):
    message = error_of(write(tmp_path, "d.jsonl", '{"text": "ok"}\n{"text": broken}\n'))
    assert "line 2" in message and "not valid JSON" in message and "Expected" in message
    assert "nested too deeply" in error_of(write(tmp_path, "deep.jsonl", "[" * 100_000 + "\n"))
    assert "found a JSON list" in error_of(write(tmp_path, "l.jsonl", "[1, 2]\n"))


def _minimal_xlsx(path) -> None:
    """Just enough of a workbook package to be recognised as one (no openpyxl needed)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")


def test_xlsx_without_openpyxl_says_how_to_get_a_csv(tmp_path, monkeypatch):
    path = tmp_path / "book.xlsx"
    _minimal_xlsx(path)
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl now fails
    message = error_of(path)
    assert "openpyxl" in message and "pip install openpyxl" in message and "CSV UTF-8" in message


def test_xlsx_is_read_when_openpyxl_is_installed(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "answers"
    for row in (["id", "text", "score"], [1, "i love this", 4.0], [2, None, 2.5], [3, "@user thanks", None]):
        sheet.append(row)
    workbook.create_sheet("other").append(["ignored"])
    path = tmp_path / "book.xlsx"
    workbook.save(path)
    table = read_table(path)
    assert table.kind == "xlsx" and table.text_column == "text"
    assert rows(table) == [["1", "i love this", "4"], ["2", "", "2.5"], ["3", "@user thanks", ""]]
    assert any("first sheet, 'answers', of 2" in note for note in table.notes)


def test_file_named_xlsx_that_is_not_a_workbook(tmp_path):
    assert "not one" in error_of(write(tmp_path, "fake.xlsx", "text,label\na,b\n"))


# --- hostile and empty files --------------------------------------------------------------------


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "text\nhi\n")
    return buffer.getvalue()


@pytest.mark.parametrize("name,data,what", [
    ("a.zip", _zip_bytes(), "ZIP archive"),
    ("a.csv", _zip_bytes(), "ZIP archive"),
    ("a.csv.gz", gzip.compress(b"text\nhi\n"), "gzip"),
    ("a.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
    ("a.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
    ("a.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"),
    ("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old-style Office"),
    ("a.bin", bytes(range(256)) * 8, "binary data"),
    ("a.csv", b"text\n" + b"\x01\x02\x03\x04\x05\x06\x07\x08" * 20, "binary data"),
])
def test_archives_images_and_binary_junk_are_rejected_clearly(tmp_path, name, data, what):
    message = error_of(write(tmp_path, name, data))
    assert what in message and "not a table" in message and "expected" in message


def test_empty_blank_and_header_only_files(tmp_path):
    assert "empty (0 bytes)" in error_of(write(tmp_path, "e.csv", b""))
    assert "no text" in error_of(write(tmp_path, "w.csv", "  \n\n \r\n"))
    assert "no text" in error_of(write(tmp_path, "bom.csv", codecs.BOM_UTF8 + b"\n"))
    message = error_of(write(tmp_path, "h.csv", "text,label\n"))
    assert "header row (text, label)" in message and "no rows" in message
    assert "only empty rows" in error_of(write(tmp_path, "c.csv", ",,\n,,\n"))


def test_missing_file(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope.csv")


def test_size_and_row_limits_name_the_limit(tmp_path):
    path = write(tmp_path, "big.csv", "text\n" + "some words here\n" * 2000)
    message = error_of(path, max_bytes=10_000)
    assert "over the limit of 10,000 bytes" in message and "python -m emotion_app score" in message
    message = error_of(path, max_rows=1500)
    assert "more than 1,500 rows" in message and "limit of 1,500 rows" in message
    assert len(read_table(path, max_rows=2000, max_bytes=10**6).frame) == 2000


# --- streaming ----------------------------------------------------------------------------------


def test_chunks_concatenate_to_the_whole_table(tmp_path):
    body = "".join(f'{i},"text {i}\nsecond line",{i % 6}\n' if i % 7 == 0 else f"{i},text {i},{i % 6}\n"
                   for i in range(1000))
    path = write(tmp_path, "s.csv", "id,text,label\n" + body)
    whole = read_table(path).frame
    chunks = list(iter_chunks(path, 64))
    assert [len(c) for c in chunks] == [64] * 15 + [40]
    joined = pd.concat(chunks)
    assert joined.equals(whole)
    assert joined["id"].tolist() == [str(i) for i in range(1000)]
    assert list(joined.index) == list(range(1000))


def test_stream_knows_rows_and_columns_before_reading_them(tmp_path):
    path = write(tmp_path, "s.tsv", "text\tlabel\n" + "".join(f"t{i}\tjoy\n" for i in range(300)))
    stream = open_table(path)
    assert stream.n_rows == 300 and stream.columns == ["text", "label"] and stream.text_column == "text"
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        next(stream.chunks(0))


# --- input bugs: a table without text, an unclosed quote, ragged rows ---------------------------


def test_a_table_of_numbers_only_is_refused_unless_a_column_is_named(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,score\n1,2\n3,4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no column holds text.*'id', 'score'.*--text_column"):
        read_table(path)
    assert read_table(path, text_column="score").text_column == "score"


def test_an_unclosed_quote_is_refused_with_the_line_it_opened_on(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('text,id\n"i never close this quote,1\ni am sad,2\ni am happy,3\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"quote\.csv, line 2: a quote .* never closes.*lines 2 to 4") as err:
        read_table(path)
    assert "one column" not in str(err.value)


def test_closed_and_escaped_quotes_still_read(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text('text,id\n"a ""quoted"" word, ok",1\n"two\nlines",2\n', encoding="utf-8")
    frame = read_table(path).frame
    assert frame["text"].tolist() == ['a "quoted" word, ok', "two\nlines"]


def test_ragged_rows_keep_their_columns_and_say_so(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("text,id,extra\na\nb,1\nc,1,x\nd,1,x,y\ne,1,x,y,z\n", encoding="utf-8")
    table = read_table(path)
    assert table.frame["text"].tolist() == ["a", "b", "c", "d", "e"]
    assert table.frame.iloc[4].tolist() == ["e", "1", "x", "y", "z"]
    notes = " ".join(table.notes)
    assert "one column" not in notes.lower()
    assert "more cells than the header" in notes and "fewer cells" in notes


def test_parquet_reads_like_any_table_and_a_broken_one_is_explained(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"id": [1, 2], "text": ["i am sad", None]}).to_parquet(path)
    table = read_table(path)
    assert table.kind == "parquet" and table.text_column == "text"
    assert table.frame.to_dict("list") == {"id": ["1", "2"], "text": ["i am sad", ""]}
    message = error_of(write(tmp_path, "b.parquet", b"PAR1\x15\x04"))
    assert "could not be read as Parquet" in message and "expected" in message
