"""The app's handlers and figures with a fake classifier (no model): shapes, sorting, the CSV round
trip, limits and errors shown as gr.Error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from support import REPO, FakePredictor, peaked, subprocess_env

from emotion_app.labels import EMOTIONS
from emotion_app.ui import figures
from emotion_app.ui.common import Limits
from emotion_app.ui.evaluation import ANY, CONFUSION_VIEWS
from emotion_app.ui.layout import Handlers, build_demo, describe_labels, model_info
from emotion_app.ui.layout import stored_metrics as read_metrics

# One trigger word per emotion; the fake classifier puts most of its mass on the words it sees.
TRIGGERS = {"sadness": "sad", "joy": "happy", "love": "adore", "anger": "angry", "fear": "scared",
            "surprise": "wow"}


def triggered(texts: list[str]) -> np.ndarray:
    """Most of the mass on the labels whose trigger words the text has (uniform without any)."""
    scores = np.ones((len(texts), len(EMOTIONS)))
    for i, text in enumerate(texts):
        words = text.lower().split()
        for j, label in enumerate(EMOTIONS):
            scores[i, j] += 20 * words.count(TRIGGERS[label])
    return scores / scores.sum(axis=1, keepdims=True)


METRICS = {
    "labels": list(EMOTIONS),
    "test": {
        "accuracy": 0.9, "macro_f1": 0.85, "weighted_f1": 0.89, "n": 60,
        "per_class": {label: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10} for label in EMOTIONS},
        "confusion_matrix": [[8 if i == j else (2 if j == (i + 1) % 6 else 0) for j in range(6)] for i in range(6)],
    },
    "coverage": [[0.0, 1.0, 0.9], [0.5, 0.8, 0.95], [0.9, 0.4, 0.99]],
}


@pytest.fixture
def fake():
    return FakePredictor(triggered, EMOTIONS)


@pytest.fixture
def handlers(fake, tmp_path):
    return Handlers.create(fake, metrics=METRICS, output_dir=tmp_path / "out")


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_text(text, encoding=encoding)
    return str(path)


# --- Predict --------------------------------------------------------------------------------------


def test_predict_returns_all_six_probabilities_most_probable_first(handlers):
    probs = handlers.predict_tab.predict("i am so happy , happy today")
    assert set(probs) == set(EMOTIONS)
    assert list(probs)[0] == "joy"
    values = list(probs.values())
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(1.0)


@pytest.mark.parametrize("text", [None, "", "   \n "])
def test_predict_rejects_an_empty_text(handlers, text):
    with pytest.raises(gr.Error, match="empty"):
        handlers.predict_tab.predict(text)


def test_predict_rejects_a_text_over_the_limit_and_names_it(fake, tmp_path):
    handlers = Handlers.create(fake, limits=Limits(max_text_chars=20))
    with pytest.raises(gr.Error, match="limit of 20"):
        handlers.predict_tab.predict("x" * 21)
    assert fake.calls == []  # refused before the model ran


def test_the_page_gets_the_probabilities_summary_and_word_importances_in_one_event(handlers, fake):
    probabilities, summary, words, note = handlers.predict_tab.show("so happy happy today")
    # the text goes through the model once: the explanation reuses the shown probabilities
    assert fake.calls[0] == ["so happy happy today"] and "so happy happy today" not in fake.calls[1]
    assert len(fake.calls) == 3 and fake.calls[2] == ["so", "happy", "happy", "today"]  # variants, then words alone
    assert probabilities == handlers.predict_tab.predict("so happy happy today")
    assert list(probabilities.values()) == sorted(probabilities.values(), reverse=True)  # as gr.Label sorts
    assert summary.startswith(f"### joy · {probabilities['joy']:.1%}")
    assert "".join(piece for piece, _ in words) == "so happy happy today" and "joy" in note
    assert "no shift detector" in summary  # the fake has none: the page says the check is unavailable
    with pytest.raises(gr.Error, match="empty"):
        handlers.predict_tab.show("   ")


def test_the_page_says_when_a_text_is_unlike_the_training_data(handlers):
    probs = handlers.predict_tab.predict("so happy today")
    assert "Unlike the training data" in handlers.predict_tab.summary(probs, familiar=False)
    assert "Unlike" not in handlers.predict_tab.summary(probs, familiar=True)


def test_sorted_probabilities_rejects_a_single_or_non_finite_value():
    for bad in ({"joy": 1.0}, {"joy": float("nan"), "fear": 0.5}):
        with pytest.raises(ValueError, match="one finite probability per label"):
            figures.sorted_probabilities(bad)


def test_explain_scores_each_word_and_scales_the_strongest_to_one(handlers):
    text = "today i feel happy again"
    pieces, note = handlers.predict_tab.explain(text)
    assert "".join(piece for piece, _ in pieces) == text
    scores = dict((piece.strip(), score) for piece, score in pieces)
    assert max(scores, key=scores.get) == "happy"
    assert max(abs(s) for s in scores.values()) == pytest.approx(1.0)
    assert "joy" in note and "happy" in note


def test_explain_leaves_empty_texts_alone(handlers, fake):
    assert handlers.predict_tab.explain("  ") == ([], "")
    assert fake.calls == []


# --- Batch CSV ------------------------------------------------------------------------------------

CSV = ('id,text,source\n'
       '1,"i am happy, really happy",mail\n'
       '2,"so sad\nand alone",chat\n'
       '3,,chat\n'
       '4,=1+2 angry,form\n'
       '5,wow what a wow,mail\n')


def test_read_upload_detects_the_text_column_and_previews_the_rows(handlers, tmp_path):
    dropdown, notes, preview = handlers.batch_tab.read_upload(write(tmp_path / "in.csv", CSV))
    assert dropdown["choices"] == [("id", "id"), ("text", "text"), ("source", "source")] or \
        [c if isinstance(c, str) else c[0] for c in dropdown["choices"]] == ["id", "text", "source"]
    assert dropdown["value"] == "text"
    assert "5 rows" in notes and "3 columns" in notes
    assert len(preview) == 5


def test_score_csv_round_trip_keeps_every_row_and_column_in_order(handlers, tmp_path):
    source = write(tmp_path / "in.csv", CSV)
    summary, preview, chart, result = handlers.batch_tab.score_csv(source, "", "auto", 0)
    out = pd.read_csv(result, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    original = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert len(out) == len(original) == 5
    assert list(out.columns[:3]) == ["id", "text", "source"]
    assert list(out.columns[3:]) == ["emotion", "confidence", *[f"p_{label}" for label in EMOTIONS], "note"]
    assert out["id"].tolist() == original["id"].tolist()
    assert out["source"].tolist() == original["source"].tolist()
    assert out["text"][1] == "so sad\nand alone"  # a quoted newline survives
    assert out["text"][3] == "'=1+2 angry"  # neutralised for spreadsheets
    assert out["emotion"].tolist() == ["joy", "sadness", "", "anger", "surprise"]
    probs = out.loc[out["emotion"] != "", [f"p_{label}" for label in EMOTIONS]].astype(float)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    assert out["note"][2] != ""  # the empty row says why it has no emotion
    assert "4" in summary and "5 rows" in summary and "empty text" in summary
    assert preview["emotion"].tolist() == ["joy", "sadness", "", "anger", "surprise"]
    assert list(chart.data[0].x) == [*EMOTIONS, figures.UNSCORED]
    assert list(chart.data[0].y) == [1, 1, 0, 1, 0, 1, 1]


def test_each_scored_file_gets_its_own_folder_and_old_ones_are_swept(handlers, tmp_path):
    import os

    source = write(tmp_path / "in.csv", CSV)
    first = Path(handlers.batch_tab.score_csv(source, "", "auto", 0)[3])
    second = Path(handlers.batch_tab.score_csv(source, "", "auto", 0)[3])
    assert first.name == second.name == "in-emotions.csv" and first.parent != second.parent
    assert first.parent.parent == tmp_path / "out" and first.parent.name.startswith("batch-")
    week_ago = first.stat().st_mtime - 7 * 24 * 3600
    for path in (first, first.parent):
        os.utime(path, (week_ago, week_ago))
    third = Path(handlers.batch_tab.score_csv(source, "", "auto", 0)[3])
    assert not first.parent.exists() and second.exists() and third.exists()


def test_score_csv_uses_the_chosen_text_column(handlers, tmp_path):
    source = write(tmp_path / "two.csv", "a,b\nhappy day,sad day\nhappy again,angry now\n")
    _, _, _, result = handlers.batch_tab.score_csv(source, "b", "auto", 0)
    assert pd.read_csv(result, dtype=str)["emotion"].tolist() == ["sadness", "anger"]


def test_score_csv_with_a_threshold_adds_needs_review_and_counts_it(handlers, tmp_path):
    source = write(tmp_path / "in.csv", "text\nhappy\nnothing special here\nsad sad sad\n")
    summary, preview, _, result = handlers.batch_tab.score_csv(source, "text", "auto", 0.5)
    out = pd.read_csv(result, dtype=str, keep_default_na=False)
    assert out["needs_review"].tolist() == ["False", "True", "False"]
    assert "needs_review" in preview.columns
    assert "**1** row(s)" in summary


def test_score_csv_without_header_keeps_the_first_row(handlers, tmp_path):
    source = write(tmp_path / "plain.csv", "happy day\nsad day\n")
    _, _, _, result = handlers.batch_tab.score_csv(source, "", "no", 0)
    assert pd.read_csv(result, dtype=str)["emotion"].tolist() == ["joy", "sadness"]


def test_score_csv_reads_text_label_lines(handlers, tmp_path):
    source = write(tmp_path / "data.txt", "i feel happy;joy\ni feel scared;fear\n")
    _, _, _, result = handlers.batch_tab.score_csv(source, "", "auto", 0)
    out = pd.read_csv(result, dtype=str)
    assert out["emotion"].tolist() == ["joy", "fear"]
    assert len(out) == 2


def test_each_request_gets_its_own_result_file(handlers, tmp_path):
    source = write(tmp_path / "in.csv", CSV)
    first = handlers.batch_tab.score_csv(source, "", "auto", 0)[3]
    second = handlers.batch_tab.score_csv(source, "", "auto", 0)[3]
    assert first != second and Path(first).is_file() and Path(second).is_file()


def test_row_limit_is_explained(fake, tmp_path):
    handlers = Handlers.create(fake, limits=Limits(max_rows=3), output_dir=tmp_path)
    source = write(tmp_path / "in.csv", CSV)
    with pytest.raises(gr.Error, match="limit of 3 rows"):
        handlers.batch_tab.score_csv(source, "", "auto", 0)
    with pytest.raises(gr.Error, match="limit of 3 rows"):
        handlers.batch_tab.read_upload(source)
    assert fake.calls == []


def test_size_limit_is_explained(fake, tmp_path):
    handlers = Handlers.create(fake, limits=Limits(max_bytes=20), output_dir=tmp_path)
    with pytest.raises(gr.Error, match="over the limit"):
        handlers.batch_tab.score_csv(write(tmp_path / "in.csv", CSV), "", "auto", 0)


@pytest.mark.parametrize("column, threshold, match", [
    ("no_such_column", 0, "no column 'no_such_column'"),
    ("", 1.5, "review threshold"),
])
def test_bad_choices_are_errors(handlers, tmp_path, column, threshold, match):
    with pytest.raises(gr.Error, match=match):
        handlers.batch_tab.score_csv(write(tmp_path / "in.csv", CSV), column, "auto", threshold)


def test_missing_empty_and_binary_files_are_errors(handlers, tmp_path):
    with pytest.raises(gr.Error, match="No file"):
        handlers.batch_tab.score_csv(None, "", "auto", 0)
    with pytest.raises(gr.Error, match="empty"):
        handlers.batch_tab.score_csv(write(tmp_path / "empty.csv", ""), "", "auto", 0)
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    with pytest.raises(gr.Error, match="gzip"):
        handlers.batch_tab.score_csv(str(junk), "", "auto", 0)


def test_review_hint_reads_the_test_coverage_curve(handlers, fake):
    assert "no `needs_review`" in handlers.batch_tab.review_hint(0)
    hint = handlers.batch_tab.review_hint(0.5)
    assert "80%" in hint and "95.0%" in hint and "20% need review" in hint
    assert "no test coverage curve" in Handlers.create(fake).batch_tab.review_hint(0.5)


def test_label_count_figure_counts_every_row():
    counts = figures.label_counts(["joy", "joy", "", "fear"], EMOTIONS)
    assert counts == {"sadness": 0, "joy": 2, "love": 0, "anger": 0, "fear": 1, "surprise": 0,
                      figures.UNSCORED: 1}
    bar = figures.label_count_figure(counts).data[0]
    assert list(bar.y) == [0, 2, 0, 0, 1, 0, 1]
    assert bar.text[1] == "2 (50%)"
    with pytest.raises(ValueError, match="unknown labels"):
        figures.label_counts(["joy", "happiness"], EMOTIONS)


# --- Evaluation -----------------------------------------------------------------------------------


def test_stored_evaluation_shows_the_metrics_json_figures(handlers):
    summary, table, confusion, state = handlers.evaluation_tab.stored_evaluation()
    assert "90.0%" in summary and "0.850" in summary and "60" in summary
    assert table["label"].tolist() == [*EMOTIONS, "macro average"]
    assert table["support"].tolist() == [10] * 6 + [60]
    assert np.array_equal(np.asarray(confusion.data[0].z), METRICS["test"]["confusion_matrix"])
    assert state["matrix"] == METRICS["test"]["confusion_matrix"]


def test_confusion_views_counts_and_row_shares(handlers):
    state = {"matrix": METRICS["test"]["confusion_matrix"], "rows": None}
    counts = handlers.evaluation_tab.show_confusion(state, CONFUSION_VIEWS[0])
    shares = handlers.evaluation_tab.show_confusion(state, CONFUSION_VIEWS[1])
    assert counts.data[0].text[0][0] == "8" and counts.data[0].text[0][1] == "2"
    assert np.allclose(np.asarray(shares.data[0].z).sum(axis=1), 1.0)
    assert shares.data[0].text[0][0] == "80%"
    assert list(counts.data[0].x) == list(EMOTIONS) and list(counts.data[0].y) == list(EMOTIONS)


def test_confusion_figure_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"expected \(6, 6\)"):
        figures.confusion_figure([[1, 2], [3, 4]], EMOTIONS)


def test_without_metrics_the_tab_says_so(fake, tmp_path):
    summary, table, confusion, state = Handlers.create(fake, metrics_note="No metrics here.").evaluation_tab.stored_evaluation()
    assert "No metrics here." in summary and table is None and confusion is None
    assert state == {"matrix": None, "rows": None, "labels": list(EMOTIONS)}


def test_read_metrics_explains_missing_and_broken_files(tmp_path):
    assert read_metrics(tmp_path)[0] is None and "no metrics.json" in read_metrics(tmp_path)[1]
    (tmp_path / "metrics.json").write_text("{not json", encoding="utf-8")
    metrics, note = read_metrics(tmp_path)
    assert metrics is None and "could not be read" in note
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    assert read_metrics(tmp_path) == (METRICS, "")


LABELLED = ("i feel happy;joy\n"
            "i feel sad;sadness\n"
            "i feel happy;sadness\n"  # the fake says joy: one sadness row goes to joy
            "i am scared;fear\n"
            "wow;surprise\n"
            "i adore you;love\n"
            "so angry;anger\n")


def test_evaluate_file_computes_metrics_and_lists_the_misclassified_rows(handlers, tmp_path):
    summary, table, state, reliability, coverage = handlers.evaluation_tab.evaluate_file(write(tmp_path / "l.txt", LABELLED))
    assert "7 rows" in summary and f"{6 / 7:.1%}" in summary
    matrix = np.asarray(state["matrix"])
    assert matrix.sum() == 7 and matrix[0, 1] == 1 and np.trace(matrix) == 6
    assert table.loc[table["label"] == "sadness", "recall"].item() == pytest.approx(0.5)
    confusion, count, rows = handlers.evaluation_tab.refresh(state, CONFUSION_VIEWS[0], ANY, ANY)
    assert rows[["row", "text", "true", "predicted"]].values.tolist() == [[3, "i feel happy", "sadness", "joy"]]
    assert "1 misclassified rows" in count
    assert reliability is not None and coverage is not None


def test_filtering_by_true_and_predicted_label(handlers, tmp_path):
    state = handlers.evaluation_tab.evaluate_file(write(tmp_path / "l.txt", LABELLED))[2]
    assert handlers.evaluation_tab.filter_rows(state, "joy", ANY).empty  # no joy row was misclassified
    assert len(handlers.evaluation_tab.filter_rows(state, "sadness", ANY)) == 1
    cell = handlers.evaluation_tab.filter_rows(state, "joy", "joy")  # a diagonal cell: the right predictions
    assert cell["text"].tolist() == ["i feel happy"]
    probabilities = cell[[f"p_{label}" for label in EMOTIONS]].to_numpy(dtype=float)
    assert probabilities.sum(axis=1) == pytest.approx([1.0], abs=1e-3)  # all six, rounded to 4 places
    assert cell["confidence"].item() == pytest.approx(probabilities.max())
    assert handlers.evaluation_tab.filter_rows(state, ANY, "joy")["true"].tolist() == ["sadness"]


def test_evaluate_file_errors(handlers, tmp_path):
    with pytest.raises(gr.Error, match="No file"):
        handlers.evaluation_tab.evaluate_file(None)
    with pytest.raises(gr.Error, match="unknown label 'happiness'"):
        handlers.evaluation_tab.evaluate_file(write(tmp_path / "bad.txt", "i feel happy;happiness\n"))
    small = Handlers.create(FakePredictor(triggered, EMOTIONS), limits=Limits(max_rows=3))
    with pytest.raises(gr.Error, match="limit of 3"):
        small.evaluation_tab.evaluate_file(write(tmp_path / "l.txt", LABELLED))


def test_hub_evaluation_offline_is_a_clear_error(fake):
    def offline():
        raise ConnectionError("Couldn't reach 'dair-ai/emotion' on the Hub (OfflineModeIsEnabled)")

    with pytest.raises(gr.Error, match="Could not load dair-ai/emotion test .*upload a labelled file"):
        Handlers.create(fake, hub_loader=offline).evaluation_tab.evaluate_hub()


def test_hub_evaluation_uses_the_loaded_split(fake):
    data = {"text": ["happy", "sad", "wow"], "label": [1, 0, 5]}
    summary, _, state, _, _ = Handlers.create(fake, hub_loader=lambda: data).evaluation_tab.evaluate_hub()
    assert "dair-ai/emotion test" in summary and "100.0%" in summary
    assert np.trace(np.asarray(state["matrix"])) == 3


# --- The page -------------------------------------------------------------------------------------


def test_handlers_take_the_labels_of_a_classifier_with_other_labels():
    other = FakePredictor(labels=("positive", "negative"))
    handlers = Handlers.create(other)
    assert handlers.evaluation_tab.labels == ("positive", "negative")
    assert "2 labels: positive, negative" in describe_labels(other.labels)


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_rows"):
        Limits(max_rows=0)


def test_model_info_names_base_adapter_labels_and_test_figures(fake):
    text = model_info(fake, METRICS)
    for part in ("fake-base", "someone/fake-adapter", ", ".join(EMOTIONS), "90.0%", "0.850", "60 rows"):
        assert part in text


def test_model_info_reads_a_model_with_neutral_on_the_six_emotions(fake):
    six_way = {"accuracy": 0.93, "macro_f1": 0.883, "n": 60}
    test = {**METRICS["test"], "macro_f1": 0.757, "called_neutral": {"rows": 2, "share": 0.003}, "six_way": six_way}
    text = model_info(fake, {**METRICS, "test": test})
    assert "on the six emotions, accuracy 93.0%, macro-F1 0.883 on 60 rows (0.3% called neutral)" in text
    assert "0.757" not in text


def test_build_demo_exposes_predict_classify_and_score_csv_and_reads_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    demo = build_demo(FakePredictor(triggered, EMOTIONS, directory=str(tmp_path)))
    public = {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert set(public) == {"predict", "classify", "score_csv"}
    assert public["score_csv"].concurrency_limit == 1
    assert public["predict"].concurrency_limit == 2
    assert public["classify"].batch and public["classify"].concurrency_limit == 1
    # waiting visitors hear their queue place once a second, not at every job start (one message each)
    assert demo._queue.live_updates is False and demo._queue.update_intervals == 1.0
    assert "90.0%" in json.dumps(demo.config, default=str)  # the model panel got the stored figures


def test_read_upload_follows_the_header_choice(handlers, tmp_path):
    source = write(tmp_path / "plain.csv", "happy day,1\nsad day,2\n")
    dropdown, notes, preview = handlers.batch_tab.read_upload(source, "no")
    assert len(preview) == 2 and "2 rows" in notes
    dropdown, notes, preview = handlers.batch_tab.read_upload(source, "yes")
    assert len(preview) == 1 and dropdown["value"] in ("happy day", "1")


# --- app.py ---------------------------------------------------------------------------------------


def test_the_default_adapter_is_found_from_any_directory(tmp_path, monkeypatch):
    import app
    from emotion_app.constants import DEFAULT_ADAPTER, resolve_adapter

    monkeypatch.chdir(tmp_path)
    assert resolve_adapter(DEFAULT_ADAPTER) == str(Path(app.__file__).resolve().parent / DEFAULT_ADAPTER)
    assert resolve_adapter("someone/adapter") == "someone/adapter"


def test_app_limits_come_from_flags_or_environment(monkeypatch):
    import app

    monkeypatch.setenv("EMOTION_MAX_ROWS", "123")
    monkeypatch.setenv("EMOTION_ADAPTER", "someone/adapter")
    args = app.build_parser().parse_args(["--max_mb", "2"])
    assert (args.max_rows, args.max_mb, args.adapter) == (123, 2.0, "someone/adapter")
    monkeypatch.setenv("EMOTION_MAX_ROWS", "many")
    with pytest.raises(SystemExit, match="EMOTION_MAX_ROWS='many' is not a number"):
        app.build_parser()


def test_prepare_builds_the_onnx_model_and_exits(trained_bert_adapter, tmp_path):
    cache = tmp_path / "cache"
    env = dict(subprocess_env(), EMOTION_APP_CACHE=str(cache))
    command = [sys.executable, "app.py", "--prepare", "--adapter", str(trained_bert_adapter)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "in the cache" in result.stderr and len(list(cache.glob("*.onnx"))) == 1
    [table] = cache.glob("*.words.npz")  # the explanation's word table beside the model
    assert table.with_suffix("").with_suffix(".onnx").is_file()
    table.unlink()
    result = subprocess.run([*command, "--prepare_model_only"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and not list(cache.glob("*.words.npz"))  # what a first start runs beside itself
    result = subprocess.run([*command, "--runtime", "torch"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "none needed" in result.stderr
    result = subprocess.run([*command[:-1], str(tmp_path / "missing")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "error: adapter" in result.stderr


class FakePopen:
    def __init__(self, command, **kwargs):
        self.command = command

    def wait(self):
        return 0


@pytest.mark.parametrize("argv, cores, memory_gib, started", [
    (["--max_rows", "5"], 2, 8.0, True),
    (["--runtime", "torch"], 2, 8.0, False),
    ([], 1, 8.0, False),
    ([], 2, 1.5, False),
])
def test_the_background_build_needs_two_cores_and_memory_and_not_torch(monkeypatch, argv, cores, memory_gib, started):
    import app

    monkeypatch.setattr(app.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(app, "available_memory_gib", lambda: memory_gib)
    child = app.start_background_prepare(app.build_parser().parse_args(argv), argv)
    assert (child is not None) == started
    if started:
        assert child.command[1:] == [str(Path(app.__file__).resolve()), "--prepare_model_only", *argv]


def test_available_memory_is_read_from_meminfo():
    import app

    memory = app.available_memory_gib()
    assert 0 < memory < float("inf")  # this suite runs on Linux


# --- Review & adapt -------------------------------------------------------------------------------


def test_review_orders_rows_needing_review_first_and_downloads_the_corrections(handlers, tmp_path):
    source = write(tmp_path / "in.csv", "id,text\n1,i am so happy today\n2,hmm\n3,wow wow\n4,\n5,i am sad sad\n")
    *_, scored = handlers.batch_tab.score_for_review(source, "", "auto", 0.6)
    review = handlers.adapt_tab
    state, card, _label, count = review.start_review(scored)
    order = state["rows"]["row"].tolist()
    assert 4 not in order  # the empty row has nothing to correct
    assert order[0] == 2  # "hmm": no trigger word, the least confident, needs review
    assert "Row **2**" in card and "needs review" in card and "0** row(s) corrected" in count
    state, card, _label, count = review.save_label(state, "surprise")
    state, card, _label, count = review.save_label(state, "skip")
    assert "1** row(s) corrected" in count
    path = review.download_corrections(state)
    out = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert out[["text", "label", "original_id", "original_text"]].values.tolist() == [["hmm", "surprise", "2", "hmm"]]


def test_adapting_without_corrections_says_what_to_do(handlers):
    with pytest.raises(gr.Error, match="No corrections"):
        handlers.adapt_tab.adapt(None, None)
    with pytest.raises(gr.Error, match="No adapted model"):
        handlers.adapt_tab.use()


def test_one_session_adapting_never_changes_what_another_session_gets(handlers, tmp_path):
    from types import SimpleNamespace

    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")
    before = handlers.predict_tab.predict("i am so happy", bob)

    def sad(texts):
        return peaked([0] * len(texts), 0.9)

    handlers.models._load = lambda directory: FakePredictor(sad, EMOTIONS)
    key, directory = handlers.models.new_directory("alice")
    directory.mkdir(parents=True)
    handlers.models.register("alice", key, directory, "adapted from the fake on 12 corrections")
    assert "adapted from the fake" in handlers.adapt_tab.use(alice)
    assert max(handlers.predict_tab.predict("i am so happy", alice).items(), key=lambda kv: kv[1])[0] == "sadness"
    assert handlers.predict_tab.predict("i am so happy", bob) == before
    assert "app's model" in handlers.adapt_tab.header(bob)
    handlers.adapt_tab.end_session(alice)
    assert not directory.exists()
    assert handlers.predict_tab.predict("i am so happy", alice) == before
