import json

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from emotion_app.data import labelled as data_module
from emotion_app.data.labelled import (
    DataArguments,
    load_hub_splits,
    load_splits,
    read_labeled_file,
)
from emotion_app.labels import EMOTIONS

ROWS = [  # (text, label as written, expected id)
    ("i feel so lonely since she left", "sadness", 0),
    ("what a wonderful, happy morning", "JOY", 1),
    ("i adore you; more than words can say", "Love", 2),
    ("this traffic makes me furious", "3", 3),
    ("i am terrified of the exam", "fear", 4),
    ("wow i did not expect that at all", "Surprise", 5),
]
TEXTS = [text for text, _, _ in ROWS]
IDS = [label_id for _, _, label_id in ROWS]


def _frame(rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame({"text": [r[0] for r in rows], "label": [r[1] for r in rows]})


def _check(ds: Dataset, texts=TEXTS, ids=IDS):
    assert ds["text"] == texts
    assert ds["label"] == ids
    assert ds.features["label"].names == list(EMOTIONS)
    assert ds.features["text"] == Value("string")


# ---- formats ------------------------------------------------------------------------------------

def test_txt_splits_on_the_last_semicolon_and_skips_blank_lines(tmp_path):
    path = tmp_path / "train.txt"
    lines = [f"{text};{label}" for text, label, _ in ROWS]
    lines.insert(2, "")  # a blank line is not a row
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    ds = read_labeled_file(path)
    _check(ds)
    assert ds["text"][2] == "i adore you; more than words can say"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_txt_line_endings_bom_and_unicode_separators_keep_every_text_whole(tmp_path, newline):
    path = tmp_path / "train.txt"
    texts = ["caf\u00e9 made me happy", "a line\u2028separator and a\x85next-line inside"]
    path.write_bytes(("\ufeff" + newline.join(f"{t};joy" for t in texts) + newline).encode("utf-8"))
    ds = read_labeled_file(path)
    assert ds["text"] == texts
    assert ds["label"] == [1, 1]


def test_csv_with_header_quotes_ids_and_extra_columns(tmp_path):
    frame = _frame()
    frame.insert(0, "id", range(len(frame)))
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    assert '"what a wonderful, happy morning"' in path.read_text(encoding="utf-8")  # really quoted
    _check(read_labeled_file(path))


def test_csv_with_utf8_bom_header(tmp_path):
    path = tmp_path / "data.csv"
    _frame().to_csv(path, index=False, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    _check(read_labeled_file(path))


def test_tsv(tmp_path):
    path = tmp_path / "data.tsv"
    _frame().to_csv(path, index=False, sep="\t")
    _check(read_labeled_file(path))


def test_jsonl_with_names_and_int_ids(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"text": text, "label": label_id if i % 2 else label} for i, (text, label, label_id) in enumerate(ROWS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    _check(read_labeled_file(path))


def test_parquet_with_int_labels(tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({"text": TEXTS, "label": IDS}).to_parquet(path)
    _check(read_labeled_file(path))


def test_other_column_names_can_be_chosen(tmp_path):
    path = tmp_path / "data.csv"
    _frame().rename(columns={"text": "sentence", "label": "emotion"}).to_csv(path, index=False)
    _check(read_labeled_file(path, text_column="sentence", label_column="emotion"))


# ---- errors -------------------------------------------------------------------------------------

def test_txt_unknown_label_names_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("i feel fine;joy\n\ni feel odd;happiness\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.txt, line 3: unknown label 'happiness': expected one of"):
        read_labeled_file(path)


def test_txt_line_without_semicolon(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("i feel fine;joy\nno label here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: found 'no label here' with no ';'.*text;label"):
        read_labeled_file(path)


def test_txt_empty_text_names_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("i feel fine;joy\n   ;sadness\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: the text is empty"):
        read_labeled_file(path)


def test_csv_unknown_label_counts_the_header_line(tmp_path):
    path = tmp_path / "data.csv"
    _frame(ROWS[:2] + [("i am bored", "boredom", None)]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"data\.csv, row 4: unknown label 'boredom'"):
        read_labeled_file(path)


def test_csv_empty_label_cell_is_an_error_not_dropped(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\ni am fine,joy\ni am not,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 3: unknown label ''"):
        read_labeled_file(path)


def test_jsonl_rows_are_numbered_from_one(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": "joy"}\n{"text": "odd", "label": 9}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.jsonl, row 2: unknown label 9"):
        read_labeled_file(path)


def _write_frame(frame: pd.DataFrame, path) -> None:
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_missing_label_column_lists_the_columns_found(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    _write_frame(_frame().assign(label=["x"] * len(ROWS)).rename(columns={"label": "other"}), path)
    with pytest.raises(ValueError) as err:
        read_labeled_file(path)
    message = str(err.value)
    assert str(path) in message and "expected a label column" in message
    assert "'text'" in message and "'other'" in message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_columns_are_found_by_name_in_any_case_or_by_their_content(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    _write_frame(_frame().rename(columns={"text": "Comment", "label": "Emotion"}), path)
    _check(read_labeled_file(path))
    headerless = tmp_path / "plain.csv"
    headerless.write_text("".join(f'"{t}",{lab}\n' for t, lab, _ in ROWS), encoding="utf-8")
    _check(read_labeled_file(headerless))  # the column of label names is the label column


@pytest.mark.parametrize("name, content", [
    ("data.csv", "text,label\ncaf\xe9 is nice,joy\n".encode("cp1252")),
    ("data.tsv", "text\tlabel\ncaf\xe9 is nice\tjoy\n".encode("cp1252")),
    ("train.txt", "caf\xe9 is nice;joy\n".encode("cp1252")),
    ("data.csv", "\ufefftext;label\ncaf\xe9 is nice;joy\n".encode("utf-16")),
])
def test_every_encoding_and_delimiter_the_batch_tab_reads_evaluates_too(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    data = read_labeled_file(path)
    assert data["text"] == ["caf\xe9 is nice"] and data["label"] == [1]


def test_an_excel_workbook_evaluates(tmp_path):
    path = tmp_path / "data.xlsx"
    _frame().to_excel(path, index=False)
    _check(read_labeled_file(path))


@pytest.mark.parametrize("name", ["train.txt", "data.csv", "data.tsv", "data.jsonl", "data.parquet"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is empty: expected labelled rows"):
        read_labeled_file(path)


@pytest.mark.parametrize("name, content", [
    ("train.txt", "\n  \n\n"),
    ("data.csv", "text,label\n"),
    ("data.jsonl", "\n"),
])
def test_file_without_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"no data rows|could not be read"):
        read_labeled_file(path)


def test_binary_parquet_junk_is_a_clear_error(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PK\x03\x04 this is a zip, not parquet")
    with pytest.raises(ValueError, match=r"ZIP (archive|file).*not a table"):
        read_labeled_file(path)


def test_a_fake_workbook_and_a_missing_file(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"not empty")
    with pytest.raises(ValueError, match=r"named like an Excel workbook but is not one"):
        read_labeled_file(path)
    with pytest.raises(ValueError, match=r"does not exist"):
        read_labeled_file(tmp_path / "nope.csv")


# ---- splits -------------------------------------------------------------------------------------

def test_load_splits_from_the_shared_fixture_directory(data_dir, split_rows):
    data = load_splits(DataArguments(data_dir=str(data_dir)))
    assert list(data) == ["train", "validation", "test"]
    for split, rows in split_rows.items():
        assert data[split]["text"] == [t for t, _ in rows]
        assert data[split]["label"] == [label for _, label in rows]
        assert set(data[split]["label"]) == set(range(6))


def test_directory_with_mixed_formats(tmp_path):
    _frame().to_csv(tmp_path / "train.csv", index=False)
    _frame().to_json(tmp_path / "validation.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": TEXTS, "label": IDS}).to_parquet(tmp_path / "test.parquet")
    (tmp_path / "notes.txt").write_text("ignored, not a split name", encoding="utf-8")
    data = load_splits(DataArguments(data_dir=str(tmp_path)))
    for split in ("train", "validation", "test"):
        _check(data[split])


def test_file_flags_override_the_directory(tmp_path, data_dir):
    path = tmp_path / "my-test.tsv"
    _frame().to_csv(path, index=False, sep="\t")
    data = load_splits(DataArguments(data_dir=str(data_dir), test_file=str(path)))
    _check(data["test"])
    assert len(data["train"]) == 48


def test_max_samples_keep_the_first_rows(data_dir, split_rows):
    data = load_splits(DataArguments(data_dir=str(data_dir), max_train_samples=5, max_eval_samples=3))
    assert data["train"]["text"] == [t for t, _ in split_rows["train"][:5]]
    assert data["validation"]["text"] == [t for t, _ in split_rows["validation"][:3]]
    assert data["test"]["text"] == [t for t, _ in split_rows["test"][:3]]
    bigger = load_splits(DataArguments(data_dir=str(data_dir), max_train_samples=1000))
    assert len(bigger["train"]) == 48


def test_missing_split_is_named(tmp_path):
    (tmp_path / "train.txt").write_text("fine;joy\n", encoding="utf-8")
    (tmp_path / "validation.txt").write_text("fine;joy\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no test split found.*--data_dir"):
        load_splits(DataArguments(data_dir=str(tmp_path)))


def test_two_files_for_one_split(tmp_path):
    (tmp_path / "train.txt").write_text("fine;joy\n", encoding="utf-8")
    _frame().to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"several train files \(train\.txt, train\.csv\)|several train files"):
        load_splits(DataArguments(data_dir=str(tmp_path)))


def test_data_dir_that_is_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match=r"is not a directory"):
        load_splits(DataArguments(data_dir=str(tmp_path / "missing")))


def test_only_requested_splits_are_read(tmp_path):
    (tmp_path / "test.txt").write_text("fine;joy\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("broken line without a label\n", encoding="utf-8")
    data = load_splits(DataArguments(data_dir=str(tmp_path)), splits=("test",))
    assert list(data) == ["test"]


# ---- the Hub data set, offline ------------------------------------------------------------------

def _hub_like(label_names=EMOTIONS, text_column="text") -> DatasetDict:
    features = Features({text_column: Value("string"), "label": ClassLabel(names=list(label_names)),
                         "extra": Value("int64")})
    split = {text_column: TEXTS, "label": IDS, "extra": list(range(6))}
    return DatasetDict({name: Dataset.from_dict(split, features=features)
                        for name in ("train", "validation", "test")})


def test_hub_splits_use_load_dataset_and_keep_text_and_label(monkeypatch):
    calls = []

    def fake_load_dataset(name, config):
        calls.append((name, config))
        return _hub_like()

    monkeypatch.setattr("emotion_app.network.require_hub", lambda purpose: None)
    monkeypatch.setattr(data_module, "load_dataset", fake_load_dataset)
    data = load_splits(DataArguments(max_train_samples=4))
    assert calls == [("dair-ai/emotion", "split")]
    assert len(data["train"]) == 4
    for split in ("validation", "test"):
        _check(data[split])
        assert data[split].column_names == ["text", "label"]


def test_hub_label_names_in_another_order_are_rejected(monkeypatch):
    swapped = ["joy", "sadness", "love", "anger", "fear", "surprise"]
    monkeypatch.setattr("emotion_app.network.require_hub", lambda purpose: None)
    monkeypatch.setattr(data_module, "load_dataset", lambda name, config: _hub_like(label_names=swapped))
    with pytest.raises(ValueError, match=r"has labels .*joy', 'sadness'.* expected"):
        load_hub_splits("someone/emotion", None, ("train",))


def test_hub_data_set_without_a_text_column(monkeypatch):
    monkeypatch.setattr("emotion_app.network.require_hub", lambda purpose: None)
    monkeypatch.setattr(data_module, "load_dataset", lambda name, config: _hub_like(text_column="sentence"))
    with pytest.raises(ValueError, match=r"someone/emotion split train has columns .*expected `text` and `label`"):
        load_hub_splits("someone/emotion", "default", ("train",))


def test_hub_data_set_without_a_test_split(monkeypatch):
    only_train = DatasetDict({"train": _hub_like()["train"]})
    monkeypatch.setattr("emotion_app.network.require_hub", lambda purpose: None)
    monkeypatch.setattr(data_module, "load_dataset", lambda name, config: only_train)
    with pytest.raises(ValueError, match=r"no validation, test split found"):
        load_splits(DataArguments(dataset_name="someone/emotion"))
