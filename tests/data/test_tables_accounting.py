"""The table reader accounts for every row: quotes that do not close (at any depth), quotes that
are text in a TSV, a headerless file with a short first row, Excel's `sep=` line, repeated header
rows and end-of-file marks. Each case checks the rows counted and the note or error naming the line.

Every file is written by the test itself.
"""

from __future__ import annotations

import pandas as pd
import pytest

from emotion_app.data.tables import HEAD_BYTES, iter_chunks, open_table, read_table


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def notes_of(table) -> str:
    return " ".join(table.notes)


def rows_csv(n: int, start: int = 0) -> str:
    return "".join(f"{i},text number {i},joy\n" for i in range(start, start + n))


# --- 1. quotes that never close, or close too late, at any depth --------------------------------


@pytest.mark.parametrize("depth", [3, 5_000, 20_000])
def test_an_unclosed_quote_at_any_depth_is_refused_naming_its_line(tmp_path, depth):
    text = "id,text,label\n" + rows_csv(depth) + f'{depth},"i never close,joy\n' + rows_csv(999, depth + 1)
    path = write(tmp_path, "deep.csv", text)
    line = depth + 2  # the header is line 1
    with pytest.raises(ValueError, match=rf"deep\.csv, line {line}: a quote .* never closes.*"
                                         rf"lines {line} to {depth + 1001}"):
        read_table(path)
    with pytest.raises(ValueError, match=rf"line {line}: a quote"):
        open_table(path)  # refused before any row is scored


def test_a_stray_quote_that_closes_far_below_does_not_swallow_the_rows(tmp_path):
    # line 5,002 opens a quote; line 6,001 happens to end a cell with a quote (12"), closing it
    text = ("id,text,label\n" + rows_csv(5_000) + '5000,"i never close this,joy\n' + rows_csv(998, 5_001)
            + '5999,a screen of 12",joy\n')
    table = read_table(write(tmp_path, "late.csv", text))
    assert len(table.frame) == 6_000
    assert table.frame["id"].tolist() == [str(i) for i in range(6_000)]
    assert table.frame.loc[5_000, "text"] == '"i never close this'
    assert table.frame.loc[5_999].tolist() == ["5999", 'a screen of 12"', "joy"]
    assert table.lines[5_000] == 5_002
    assert "Line 5,002 opens a quote" in notes_of(table) and "lines 5,003 to 6,001" in notes_of(table)


def test_a_quote_closed_before_its_cell_ends_is_read_as_written_without_merging_rows(tmp_path):
    text = ('id,text,label\n1,"oops i left this open,joy\n2,fine,joy\n3,he said "hi" there,anger\n'
            '4,"Hello" she said,joy\n5,"a, quoted",sadness\n')
    table = read_table(write(tmp_path, "loose.csv", text))
    assert table.frame.values.tolist() == [
        ["1", '"oops i left this open', "joy"], ["2", "fine", "joy"], ["3", 'he said "hi" there', "anger"],
        ["4", '"Hello" she said', "joy"], ["5", "a, quoted", "sadness"]]
    notes = notes_of(table)
    assert "2 line(s) start a cell with a quote" in notes and "lines 2 and 5" in notes
    assert "no rows were merged" in notes


def test_a_valid_quoted_cell_over_thousands_of_lines_is_read_whole(tmp_path):
    poem = "\n".join(f"verse {i} of a very long poem" for i in range(5_000))  # past the sniffed head too
    text = f'id,text,label\n1,"{poem}",joy\n2,short one,sadness\n3,"two\nlines",anger\n'
    assert len(text.encode()) > HEAD_BYTES / 2
    table = read_table(write(tmp_path, "poem.csv", text))
    assert table.frame["text"].tolist() == [poem, "short one", "two\nlines"]
    assert table.lines == [2, 5_002, 5_003]
    assert "2 row(s) hold line breaks inside quoted cells" in notes_of(table)
    assert "lines 2 to 5,001" in notes_of(table)


def test_a_valid_quoted_cell_larger_than_the_head_is_read(tmp_path):
    long_text = "\n".join("word " * 20 for _ in range(4_000))  # 400 kB over 4,000 lines
    text = f'text,label\n"{long_text}",joy\nafter,sadness\n'
    assert len(text.encode()) > HEAD_BYTES
    table = read_table(write(tmp_path, "big.csv", text))
    assert table.frame["text"].tolist() == [long_text, "after"]


def test_chunks_agree_with_the_whole_table_after_recovering_lines(tmp_path):
    text = "id,text,label\n" + rows_csv(300) + '300,"open,joy\n' + rows_csv(98, 301) + '399,"x" y,joy\n'
    path = write(tmp_path, "c.csv", text)
    whole = read_table(path).frame
    assert len(whole) == 400
    assert pd.concat(list(iter_chunks(path, 64))).equals(whole)


# --- 2. a TSV whose texts start with a quote mark -----------------------------------------------


def test_tsv_texts_that_start_with_a_quote_are_each_their_own_row(tmp_path):
    texts = ['"why does this always happen to me', "i am fine", '"what a day', "so happy",
             '"really?! no way', "the end"]
    labels = ["sadness", "joy", "surprise", "joy", "surprise", "joy"]
    text = "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in zip(texts, labels))
    table = read_table(write(tmp_path, "q.tsv", text))
    assert table.frame["text"].tolist() == texts and table.frame["label"].tolist() == labels
    assert "Quote marks in this tab-separated file do not enclose cells" in notes_of(table)
    assert "line 2" in notes_of(table)


def test_tsv_with_properly_quoted_cells_still_reads_them(tmp_path):
    text = 'text\tlabel\n"two\nlines"\tjoy\n"a ""quoted"" tab\there"\tsadness\n'
    table = read_table(write(tmp_path, "ok.tsv", text))
    assert table.frame["text"].tolist() == ["two\nlines", 'a "quoted" tab\there']
    assert "do not enclose" not in notes_of(table)


def test_a_deep_unclosed_quote_in_a_tsv_makes_quotes_text(tmp_path):
    body = "".join(f"plain text {i}\tjoy\n" for i in range(5_000))
    text = "text\tlabel\n" + body + '"never closed\tanger\n' + body
    table = read_table(write(tmp_path, "deep.tsv", text))
    assert len(table.frame) == 10_001
    assert table.frame.loc[5_000, "text"] == '"never closed'
    assert "line 5,002" in notes_of(table)


# --- 3. a headerless table whose first row is short ---------------------------------------------


def test_a_headerless_csv_with_a_short_first_text_keeps_that_row(tmp_path):
    text = ("hi,joy\ni have been feeling really low about everything lately,sadness\n"
            "this is the worst week i have had in a very long time,sadness\n"
            "i cannot believe they did that to me again,anger\nwhy does nobody ever listen to me,anger\n")
    table = read_table(write(tmp_path, "nohead.csv", text))
    assert not table.has_header and len(table.frame) == 5
    assert table.frame.iloc[0].tolist() == ["hi", "joy"]
    assert "No header row found" in notes_of(table)


def test_a_headerless_csv_whose_first_row_has_fewer_cells_keeps_that_row(tmp_path):
    text = ("good,joy\nwhat a lovely long afternoon with friends,joy,4\n"
            "i am worried about the results tomorrow,fear,2\nthey lied to me again and again,anger,1\n")
    table = read_table(write(tmp_path, "short.csv", text))
    assert not table.has_header and len(table.frame) == 4
    assert table.frame.iloc[0].tolist() == ["good", "joy", ""]


def test_a_real_header_over_short_categories_is_still_a_header(tmp_path):
    text = "Kommentar,Gefühl\n" + "".join(f"ein recht langer deutscher satz nummer {i},{'froh' if i % 2 else 'traurig'}\n"
                                         for i in range(6))
    table = read_table(write(tmp_path, "de.csv", text))
    assert table.has_header and list(table.frame.columns) == ["Kommentar", "Gefühl"]


# --- 4. Excel's sep= line, repeated header rows, end-of-file marks -------------------------------


@pytest.mark.parametrize("prefix", ["", "\ufeff"])
def test_excel_sep_line_sets_the_delimiter_and_is_not_a_row(tmp_path, prefix):
    text = prefix + "sep=;\ntext;label\nhello, world;joy\nbye;sadness\n"
    table = read_table(write(tmp_path, "excel.csv", text))
    assert table.delimiter == ";" and list(table.frame.columns) == ["text", "label"]
    assert table.frame.values.tolist() == [["hello, world", "joy"], ["bye", "sadness"]]
    assert table.lines == [3, 4]
    assert any("'sep=;'" in note and "not read as a row" in note for note in table.notes)


def test_repeated_header_rows_are_left_out_and_named(tmp_path):
    part = "id,text,label\n1,one,joy\n2,two,anger\n"
    table = read_table(write(tmp_path, "joined.csv", part + part + part.replace("id,", " id ,")))
    assert table.frame["id"].tolist() == ["1", "2"] * 3
    assert "2 row(s) repeat the header row" in notes_of(table) and "lines 4 and 7" in notes_of(table)


@pytest.mark.parametrize("ending", ["\x1a", "\r\n\x1a", "\x1a\r\n", "\n\x1a\x1a"])
def test_a_stray_end_of_file_mark_is_left_out_with_a_note(tmp_path, ending):
    text = "text,label\r\nhello,joy\r\nbye,sadness" + ending
    table = read_table(write(tmp_path, "dos.csv", text))
    assert table.frame.values.tolist() == [["hello", "joy"], ["bye", "sadness"]]
    assert "Ctrl-Z (\\x1a)" in notes_of(table)


def test_end_of_file_mark_in_a_text_label_file(tmp_path):
    table = read_table(write(tmp_path, "train.txt", "i feel lost;sadness\nyay;joy\n\x1a"))
    assert table.frame.values.tolist() == [["i feel lost", "sadness"], ["yay", "joy"]]


def test_blank_rows_are_named_by_line(tmp_path):
    table = read_table(write(tmp_path, "b.csv", "\n\ntext,label\nfirst,joy\n\nlast,anger\n\n,\n"))
    assert table.frame.values.tolist() == [["first", "joy"], ["", ""], ["last", "anger"]]
    assert table.lines == [4, 5, 6]
    notes = notes_of(table)
    assert "2 blank line(s) above the header were skipped (lines 1 to 2)" in notes
    assert "2 blank row(s) at the end of the file were left out (lines 7 to 8)" in notes


def test_blank_lines_in_json_lines_are_named(tmp_path):
    table = read_table(write(tmp_path, "d.jsonl", '{"text": "a"}\n\n{"text": "b"}\n'))
    assert table.frame["text"].tolist() == ["a", "b"] and table.lines == [1, 3]
    assert "1 blank line(s) hold no record and were skipped (line 2)" in notes_of(table)
