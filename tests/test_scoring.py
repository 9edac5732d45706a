"""score_frame and the safe writers, with a fake Predictor (tests/support.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from support import FakePredictor, peaked

from emotion_app.analysis.predictions import (
    MODEL_MAX_CHARS,
    NOTE_EMPTY,
    output_names,
    score_frame,
)
from emotion_app.data.writers import TableWriter, neutralize_formulas, to_safe_csv
from emotion_app.labels import EMOTIONS


def keywords(texts: list[str]) -> np.ndarray:
    """0.9 on the first label named in the text (joy if none), 0.02 on the others."""
    return peaked([next((j for j, label in enumerate(EMOTIONS) if label in text), 1) for text in texts], 0.9)


PROB_COLUMNS = [f"p_{label}" for label in EMOTIONS]


def frame_of(texts, **extra) -> pd.DataFrame:
    return pd.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts, **extra})


def test_every_row_and_column_kept_in_order_with_the_output_columns_after():
    frame = frame_of(["pure fear here", "some love", "nothing named", "anger!"], extra=list("abcd"))
    frame.index = pd.RangeIndex(100, 104)  # a chunk from the middle of a file
    out = score_frame(FakePredictor(keywords), frame, "text")
    assert list(out.columns) == ["id", "text", "extra", "emotion", "confidence", *PROB_COLUMNS, "note"]
    assert out[["id", "text", "extra"]].equals(frame)
    assert list(out.index) == [100, 101, 102, 103]
    assert out["emotion"].tolist() == ["fear", "love", "joy", "anger"]
    assert out["confidence"].tolist() == [0.9] * 4
    assert out.loc[100, "p_fear"] == 0.9 and out.loc[100, "p_joy"] == 0.02
    assert out["note"].tolist() == [""] * 4


def test_blank_and_missing_texts_are_kept_unscored_with_a_note():
    frame = frame_of(["sadness", "", "   ", None, float("nan"), "surprise"])
    classifier = FakePredictor(keywords)
    out = score_frame(classifier, frame, "text")
    assert len(out) == 6 and out["id"].tolist() == [str(i) for i in range(6)]
    assert out["emotion"].tolist() == ["sadness", "", "", "", "", "surprise"]
    assert out["note"].tolist() == ["", NOTE_EMPTY, NOTE_EMPTY, NOTE_EMPTY, NOTE_EMPTY, ""]
    assert out.loc[1:4, ["confidence", *PROB_COLUMNS]].isna().all().all()
    assert [t for call in classifier.calls for t in call] == ["sadness", "surprise"]


def test_all_blank_frame_and_empty_frame():
    out = score_frame(FakePredictor(keywords), frame_of(["", ""]), "text")
    assert out["note"].tolist() == [NOTE_EMPTY, NOTE_EMPTY]
    empty = score_frame(FakePredictor(keywords), frame_of([]), "text")
    assert len(empty) == 0 and "emotion" in empty.columns


def test_long_text_is_cut_for_the_model_only():
    long_text = "fear " * 5000
    classifier = FakePredictor(keywords)
    out = score_frame(classifier, frame_of([long_text, "joy"]), "text")
    assert classifier.calls[0][0] == long_text[:MODEL_MAX_CHARS]
    assert out.loc[0, "text"] == long_text
    assert out.loc[0, "emotion"] == "fear" and "first 4,000 characters" in out.loc[0, "note"]


def test_non_text_values_are_scored_as_their_text():
    frame = pd.DataFrame({"text": [12, 3.5, True, "love"]})
    classifier = FakePredictor(keywords)
    out = score_frame(classifier, frame, "text")
    assert classifier.calls == [["12", "3.5", "True", "love"]]
    assert out["text"].tolist() == [12, 3.5, True, "love"]


def test_threshold_adds_needs_review():
    def unsure_first(texts):
        out = keywords(texts)
        out[0] = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
        return out

    out = score_frame(FakePredictor(unsure_first), frame_of(["a", "b", ""]), "text", threshold=0.6)
    assert list(out.columns)[-2:] == ["needs_review", "note"]
    assert out["needs_review"].tolist() == [True, False, pd.NA]
    with pytest.raises(ValueError, match="between 0 and 1"):
        score_frame(FakePredictor(keywords), frame_of(["a"]), "text", threshold=1.5)


def test_output_names_never_collide_with_input_columns():
    frame = pd.DataFrame({"text": ["joy"], "emotion": ["gold"], "note": ["mine"], "emotion_pred": ["x"]})
    out = score_frame(FakePredictor(keywords), frame, "text")
    assert out[["text", "emotion", "note", "emotion_pred"]].equals(frame)
    assert out["emotion_pred_2"].tolist() == ["joy"] and out["note_pred"].tolist() == [""]
    assert output_names(["p_joy"], threshold=0.5)["p_joy"] == "p_joy_pred"
    assert output_names([], threshold=0.5)["needs_review"] == "needs_review"


def test_progress_reports_rows_done_up_to_the_total():
    seen = []
    score_frame(FakePredictor(keywords), frame_of(["joy"] * 10 + [""] * 3), "text",
                progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 13) and seen[-1] == (13, 13)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_bad_classifier_or_column_is_a_clear_error():
    other_order = FakePredictor(keywords, tuple(reversed(EMOTIONS)))
    wrong_shape = FakePredictor(lambda texts: np.full((len(texts), 3), 1 / 3))
    # labels are the model's own: another order gives its columns in that order
    assert [c for c in score_frame(other_order, frame_of(["a"]), "text").columns if c.startswith("p_")] == [
        f"p_{name}" for name in reversed(EMOTIONS)]
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        score_frame(wrong_shape, frame_of(["a"]), "text")
    with pytest.raises(ValueError, match="no column 'body'"):
        score_frame(FakePredictor(keywords), frame_of(["a"]), "body")


# --- CSV injection and writing ------------------------------------------------------------------


DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://x","y")', " =after spaces"]
HARMLESS = ["plain", "'=already", "", "a=b", "100%"]


def test_neutralize_formulas_quotes_dangerous_cells_only():
    frame = pd.DataFrame({"text": DANGEROUS + HARMLESS, "n": range(len(DANGEROUS) + len(HARMLESS))})
    frame["=evil header"] = "x"
    safe = neutralize_formulas(frame)
    assert safe["text"].tolist() == ["'" + v for v in DANGEROUS] + HARMLESS
    assert safe["n"].tolist() == frame["n"].tolist()
    assert "'=evil header" in safe.columns
    assert frame["text"].tolist() == DANGEROUS + HARMLESS  # the input is not changed
    assert neutralize_formulas(safe).equals(safe)  # idempotent


def read_csv_cells(path, delimiter=",") -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def test_to_safe_csv_neutralises_and_raw_keeps_text(tmp_path):
    frame = pd.DataFrame({"text": DANGEROUS + ["two\nlines, with comma"], "p": [0.5] * 9})
    safe = read_csv_cells(to_safe_csv(frame, tmp_path / "safe.csv"))
    raw = read_csv_cells(to_safe_csv(frame, tmp_path / "raw.csv", raw=True))
    assert [row[0] for row in safe[1:]] == ["'" + v for v in DANGEROUS] + ["two\nlines, with comma"]
    assert [row[0] for row in raw[1:]] == DANGEROUS + ["two\nlines, with comma"]
    assert safe[0] == ["text", "p"] and safe[1][1] == "0.5"


def test_tsv_and_jsonl_outputs(tmp_path):
    frame = pd.DataFrame({"text": ["=x", "tab\there"], "p": [0.25, float("nan")],
                          "flag": pd.array([True, None], dtype="boolean")})
    tsv = read_csv_cells(to_safe_csv(frame, tmp_path / "o.tsv"), delimiter="\t")
    assert tsv == [["text", "p", "flag"], ["'=x", "0.25", "True"], ["tab\there", "", ""]]
    lines = (to_safe_csv(frame, tmp_path / "o.jsonl")).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"text": "=x", "p": 0.25, "flag": True},
                                                    {"text": "tab\there", "p": None, "flag": None}]


def test_excel_bom_and_unknown_suffix(tmp_path):
    path = to_safe_csv(pd.DataFrame({"text": ["é"]}), tmp_path / "x.csv", excel_bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbftext\r\n")
    with pytest.raises(ValueError, match="expected one of .csv"):
        to_safe_csv(pd.DataFrame({"text": ["a"]}), tmp_path / "x.xlsx")


def test_writer_in_chunks_equals_one_write_and_a_failure_leaves_no_file(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(10)], "n": range(10)})
    with TableWriter(tmp_path / "chunked.csv") as writer:
        for start in range(0, 10, 3):
            writer.write(frame.iloc[start:start + 3])
    assert (tmp_path / "chunked.csv").read_text() == to_safe_csv(frame, tmp_path / "one.csv").read_text()
    with pytest.raises(RuntimeError), TableWriter(tmp_path / "failed.csv") as writer:
        writer.write(frame)
        raise RuntimeError("crash half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.csv", "one.csv"]
