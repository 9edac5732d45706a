"""Labels come from the model: a seven-label adapter (the six emotions + neutral) trained through the
real train.py works in the engine, the scoring CLI, evaluation, the app's handlers, adaptation and
export; bad label sets are refused with what was expected; six-label adapters stay as they were."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from support import (
    LABEL_NAMES,
    all_texts,
    NEUTRAL_TEXTS,
    REPO,
    SEVEN_LABELS,
    quick_train_args,
    run_train,
    subprocess_env,
)

from emotion_app.artifacts import LABELS_FILE, read_labels
from emotion_app.cli import evaluate as evaluate_cli
from emotion_app.cli.score import main as score_main
from emotion_app.data.labelled import DataArguments, load_splits, read_labeled_file
from emotion_app.engine.adapters import read_adapter
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.errors import EXIT_INPUT, EXIT_OK
from emotion_app.labels import EMOTIONS

PLAIN = "the meeting is moved to room north"


@pytest.fixture(scope="module")
def seven(seven_label_adapter):
    return EmotionClassifier.from_adapter(str(seven_label_adapter))


def test_train_py_records_the_labels_it_found_in_the_data(seven_label_adapter):
    assert read_labels(seven_label_adapter) == SEVEN_LABELS
    metrics = json.loads((seven_label_adapter / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == list(SEVEN_LABELS) and metrics["training"]["labels"] == list(SEVEN_LABELS)
    card = (seven_label_adapter / "README.md").read_text(encoding="utf-8")
    assert "6 neutral" in card and "num_labels=7" in card


def test_a_six_label_run_records_the_six_emotions_and_an_adapter_without_the_file_loads_as_six(
        trained_bert_adapter, tmp_path):
    assert read_labels(trained_bert_adapter) == EMOTIONS
    old = tmp_path / "old-adapter"
    shutil.copytree(trained_bert_adapter, old)
    (old / LABELS_FILE).unlink()  # as every adapter made before labels were recorded
    assert read_adapter(str(old)).labels == EMOTIONS
    np.testing.assert_array_equal(EmotionClassifier.from_adapter(str(old), runtime="torch").predict_proba(["i feel sad"]),
                                  EmotionClassifier.from_adapter(str(trained_bert_adapter),
                                                                 runtime="torch").predict_proba(["i feel sad"]))


def test_the_engine_answers_with_the_models_labels(seven):
    assert seven.labels == SEVEN_LABELS
    probs = seven.predict_proba([PLAIN, "i feel so sad today"])
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert seven.predict([PLAIN])[0] in SEVEN_LABELS


def test_the_scoring_cli_writes_p_neutral_and_neutral_answers(seven_label_adapter, tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"text": [*NEUTRAL_TEXTS[:4], "i feel so happy today"]}).to_csv(source, index=False)
    assert score_main([str(source), "-o", str(target), "--adapter", str(seven_label_adapter)]) == EXIT_OK
    out = pd.read_csv(target, keep_default_na=False)
    assert [c for c in out.columns if c.startswith("p_")] == [f"p_{name}" for name in SEVEN_LABELS]
    probs = out[[f"p_{name}" for name in SEVEN_LABELS]].to_numpy()
    assert list(out["emotion"]) == [SEVEN_LABELS[i] for i in probs.argmax(axis=1)]


def test_evaluating_a_seven_label_model_on_a_six_label_file_gives_both_figures(seven_label_adapter, data_dir,
                                                                               tmp_path, capsys):
    output = tmp_path / "m.json"
    evaluate_cli.main(["--adapter", str(seven_label_adapter), "--file", str(data_dir / "test.txt"),
                       "--output", str(output)])
    figures = json.loads(output.read_text(encoding="utf-8"))["test"]
    assert figures["n"] == 24 and set(figures["per_class"]) == set(SEVEN_LABELS)
    assert figures["six_way"]["n"] == 24 and figures["six_way"]["accuracy"] >= figures["accuracy"]
    assert 0 <= figures["called_neutral"]["rows"] <= 24
    matrix = np.array(figures["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix[6].sum() == 0  # no true neutral row; answers may be neutral
    assert figures["accuracy"] == pytest.approx(np.trace(matrix) / 24)
    assert "six-way" in capsys.readouterr().out


def test_a_file_with_a_label_the_model_lacks_is_refused_naming_the_row(trained_bert_adapter, tmp_path, capsys):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"text": ["i feel sad", PLAIN], "label": ["sadness", "neutral"]}).to_csv(path, index=False)
    assert evaluate_cli.main(["--adapter", str(trained_bert_adapter), "--file", str(path),
                              "--output", str(tmp_path / "m.json")]) == EXIT_INPUT
    assert re.search(r"row 3.*unknown label 'neutral'", capsys.readouterr().err)


def test_the_page_says_no_clear_emotion_when_neutral_wins(seven, tmp_path):
    from emotion_app.ui.layout import Handlers

    handlers = Handlers.create(seven, output_dir=tmp_path / "out", adapted_dir=tmp_path / "adapted")
    answer = handlers.predict_tab.predict(PLAIN)
    assert set(answer) == set(SEVEN_LABELS)
    neutral_first = {"neutral": 0.7, **{name: 0.05 for name in EMOTIONS}}
    assert "No clear emotion" in handlers.predict_tab.summary(neutral_first)
    assert "No clear emotion" not in handlers.predict_tab.summary({**neutral_first, "joy": 0.9, "neutral": 0.01})
    [classified] = handlers.predict_tab.classify([PLAIN])
    assert set(classified[0]) - {"in_distribution"} == set(SEVEN_LABELS)


def test_adaptation_learns_from_neutral_corrections(seven_label_adapter, tmp_path):
    from emotion_app.train.adaptation import AdaptOptions, adapt

    texts = [*NEUTRAL_TEXTS[:8], *(f"i feel so {w} today" for w in ("sad", "happy", "angry", "scared"))]
    labels = ["neutral"] * 8 + ["sadness", "joy", "anger", "fear"]
    out, summary = adapt(str(seven_label_adapter), texts, labels, tmp_path / "adapted",
                         AdaptOptions(epochs=5, learning_rate=3e-2, batch_size=8, max_length=32, holdout="none"))
    assert read_labels(out) == SEVEN_LABELS
    assert summary["corrections"]["per_label"]["neutral"] == 8
    assert not any("None of the corrections" in note for note in summary["notes"])


def test_corrections_without_neutral_for_a_neutral_model_come_with_a_warning():
    from emotion_app.train.adaptation.inputs import Plain
    from emotion_app.train.adaptation.run import neutral_note

    offline = Plain(None, [], "the Hub is unreachable")
    note = neutral_note(SEVEN_LABELS, np.array([0, 1, 3, 1]), offline)
    assert note.startswith("None of the corrections is `neutral` and no plain text was replayed (the Hub is "
                           "unreachable)") and "label some plain rows `neutral`" in note
    assert neutral_note(SEVEN_LABELS, np.array([0, 6, 1]), offline) is None  # one neutral correction is enough
    assert neutral_note(SEVEN_LABELS, np.array([0, 1]), Plain("file", ["a plain line"])) is None  # or replay
    assert neutral_note(tuple(EMOTIONS), np.array([0, 1]), offline) is None  # no label, nothing to lose


def test_adaptation_replays_plain_text_as_neutral_for_a_neutral_model(seven_label_adapter, data_dir, tmp_path):
    from emotion_app.train.adaptation import AdaptOptions, adapt
    from emotion_app.train.adaptation.inputs import load_neutral

    plain = tmp_path / "goemotions.csv"  # GoEmotions' layout: only rows rated neutral alone are replayed
    rows = [(text, "neutral") for text in NEUTRAL_TEXTS] + [("so glad", "joy"), ("fine i guess", "neutral joy")]
    pd.DataFrame(rows, columns=["text", "labels"]).to_csv(plain, index=False)
    assert load_neutral(str(plain)).texts == NEUTRAL_TEXTS
    texts = [f"i feel so {w} today" for w in ("sad", "happy", "angry", "scared")] * 3
    labels = ["sadness", "joy", "anger", "fear"] * 3
    options = dict(epochs=1, batch_size=8, max_length=32, holdout="none", replay_data=str(data_dir))
    out, summary = adapt(str(seven_label_adapter), texts, labels, tmp_path / "replayed",
                         AdaptOptions(neutral_data=str(plain), **options))
    guard = summary["forgetting_guard"]
    assert guard["neutral_replay_rows"] == len(texts) and guard["neutral_source"] == str(plain)  # 1 per correction
    assert f"{len(texts)} plain texts of {plain} replayed as neutral" in (out / "README.md").read_text(encoding="utf-8")
    assert not any("None of the corrections" in note for note in summary["notes"])
    _, summary = adapt(str(seven_label_adapter), texts, labels, tmp_path / "not-replayed",
                       AdaptOptions(neutral_data=str(plain), neutral_rows=0, **options))
    assert summary["forgetting_guard"]["neutral_replay_rows"] == 0
    assert any("no plain text was replayed (neutral_rows is 0)" in note for note in summary["notes"])
    _, summary = adapt(str(seven_label_adapter), texts, labels, tmp_path / "offline", AdaptOptions(**options))
    assert summary["forgetting_guard"]["neutral_source"] is None  # the Hub is unreachable here: noted, not fatal
    assert any("could not be loaded from the Hub" in note for note in summary["notes"])

    emotional = tmp_path / "emotional.csv"
    pd.DataFrame([("so glad", "joy"), ("fine i guess", "neutral joy")], columns=["text", "labels"]).to_csv(
        emotional, index=False)
    with pytest.raises(ValueError, match="has no row labelled 'neutral' alone"):
        load_neutral(str(emotional))


def test_corrections_with_a_label_the_model_lacks_are_refused(trained_bert_adapter, tmp_path):
    from emotion_app.train.adaptation import adapt

    with pytest.raises(ValueError, match=r"correction 2 .*unknown label 'neutral'"):
        adapt(str(trained_bert_adapter), ["i feel sad", PLAIN] * 4, ["sadness", "neutral"] * 4, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_the_merged_export_loads_in_a_pipeline_with_seven_named_labels(seven_label_adapter, tmp_path):
    from transformers import pipeline

    from emotion_app.publish.export import export

    out = tmp_path / "merged"
    export(str(seven_label_adapter), merged=out)
    classify = pipeline("text-classification", model=str(out), top_k=None)
    assert {row["label"] for row in classify([PLAIN])[0]} == set(SEVEN_LABELS)


def test_train_py_maps_multi_label_rows_and_records_what_it_dropped(tiny_bert_dir, data_dir, tmp_path):
    extra = tmp_path / "reddit.csv"
    pd.DataFrame({"text": ["so happy for you", "this is awful", PLAIN, "what is this", "lol ok"],
                  "labels": ["joy amusement", "anger sadness", "neutral", "curiosity", "amusement,approval"],
                  "id": ["a", "b", "c", "d", "e"]}).to_csv(extra, index=False)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"amusement": "joy", "curiosity": None, "approval": None}), encoding="utf-8")
    out = tmp_path / "mapped"
    run_train(quick_train_args(tiny_bert_dir, data_dir, out, steps=3)
              + ["--extra_train_files", str(extra), "--label_mapping", str(mapping)])
    training = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]
    assert training["labels"] == list(SEVEN_LABELS) and training["train_rows"] == 48 + 3
    assert training["rows_dropped"] == {
        str(extra): {"several labels after mapping": 1, "no label after mapping": 1}}


def test_extra_files_can_be_capped_per_label_with_a_seeded_sample(tiny_bert_dir, data_dir, tmp_path):
    from emotion_app.data.labelled import RawRows, split_by_cap

    rows = lambda: RawRows(tmp_path / "x.csv", [f"t{i}" for i in range(10)],  # noqa: E731
                           ["neutral"] * 7 + ["joy", "JOY ", "fear"], [f"row {i}" for i in range(10)])
    capped = split_by_cap(rows(), 2, seed=1)[0]
    assert sorted(c.strip().lower() for c in capped.cells) == ["fear", "joy", "joy", "neutral", "neutral"]
    assert capped.places == sorted(capped.places, key=lambda p: int(p.split()[1]))  # file order kept
    assert capped.dropped == {"over --extra_train_max_per_label": 5}
    assert split_by_cap(rows(), 2, seed=1)[0].texts == capped.texts  # the seed fixes the sample
    assert {tuple(split_by_cap(rows(), 2, seed=s)[0].texts) for s in range(6)} != {tuple(capped.texts)}
    assert split_by_cap(rows(), None, seed=1)[0].texts == rows().texts
    kept, aside = split_by_cap(rows(), 2, seed=1)
    assert kept.texts == capped.texts and sorted(kept.texts + aside.texts) == sorted(rows().texts)
    assert sorted(aside.cells) == ["neutral"] * 5 and not aside.dropped

    extra = tmp_path / "reddit.csv"
    pd.DataFrame({"text": [f"plain line {i}" for i in range(6)] + ["so happy"],
                  "labels": ["neutral"] * 6 + ["joy"]}).to_csv(extra, index=False)
    out = tmp_path / "capped"
    run_train(quick_train_args(tiny_bert_dir, data_dir, out, steps=2)
              + ["--extra_train_files", str(extra), "--extra_train_max_per_label", "2"])
    training = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]
    assert training["train_rows"] == 48 + 3 and training["extra_train_max_per_label"] == 2
    assert training["rows_dropped"] == {str(extra): {"over --extra_train_max_per_label": 4}}


@pytest.mark.parametrize("rows, flags, problem", [
    ({"train": ["a;joy", "b;joy"]}, [], "all have the label 'joy'"),
    ({}, ["--labels", "joy", "Joy"], "more than once"),
    ({}, ["--labels", "joy", ""], "non-empty"),
    ({"validation": ["a;joy", "b;billing"]}, [], "line 2: unknown label 'billing'"),
])
def test_bad_label_sets_are_refused_before_training(tiny_bert_dir, data_dir, tmp_path, rows, flags, problem):
    import subprocess
    import sys

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    for split, lines in rows.items():
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *quick_train_args(tiny_bert_dir, data, out),
                           *flags], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and problem in done.stderr
    assert not (out / "adapter_config.json").exists()


def test_an_adapter_whose_head_does_not_match_its_labels_is_refused(seven_label_adapter, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(seven_label_adapter, broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / LABELS_FILE).write_text(json.dumps({"labels": list(LABEL_NAMES)}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"head with 7 outputs but its labels.json name 6 labels"):
        read_adapter(str(broken))


def test_local_files_are_read_against_a_given_label_list(neutral_data_dir):
    data = load_splits(DataArguments(data_dir=str(neutral_data_dir)))
    assert data["train"].features["label"].names == list(SEVEN_LABELS)
    test = read_labeled_file(neutral_data_dir / "test.txt", labels=SEVEN_LABELS)
    assert "neutral" in {SEVEN_LABELS[i] for i in test["label"]}
    with pytest.raises(ValueError, match="unknown label 'neutral'"):
        read_labeled_file(neutral_data_dir / "test.txt")  # the six emotions by default


def test_a_six_label_adapter_mixes_into_a_seven_label_soup_with_a_neutral_margin(seven_label_adapter,
                                                                                  trained_bert_adapter, data_dir,
                                                                                  tmp_path):
    from emotion_app.cli.soup import main as soup_main

    def soup(margin: str) -> np.ndarray:
        out = tmp_path / f"soup{margin}"
        assert soup_main(["--adapters", str(seven_label_adapter), str(trained_bert_adapter), "--weights", "0.6",
                          "0.4", "--neutral_margin", margin, "--output_dir", str(out), "--data_dir",
                          str(data_dir)]) == EXIT_OK
        assert read_labels(out) == SEVEN_LABELS
        assert json.loads((out / "metrics.json").read_text())["soup"]["neutral_margin"] == float(margin)
        return EmotionClassifier.from_adapter(str(out), quantize=False).logits([PLAIN, "i am thrilled"])

    plain, eager = soup("0"), soup("-1.5")  # a negative margin: neutral more often
    np.testing.assert_allclose(eager - plain, [[0, 0, 0, 0, 0, 0, 1.5]] * 2, atol=1e-4)


def test_train_py_mixes_a_seven_label_run_with_a_six_label_partner(seven_label_adapter, trained_bert_adapter,
                                                                   tiny_bert_dir, neutral_data_dir, tmp_path):
    from safetensors.torch import load_file

    from emotion_app.cli.soup import main as soup_main

    # the seven_label_adapter run again, mixed by train.py itself, against the soup command's mix of it
    trained = tmp_path / "trained-soup"
    run_train(quick_train_args(tiny_bert_dir, neutral_data_dir, trained, steps=12) + [
        "--soup_with", str(trained_bert_adapter), "--soup_weight", "0.35", "--soup_neutral_margin", "-0.75"])
    commanded = tmp_path / "command-soup"
    assert soup_main(["--adapters", str(trained_bert_adapter), str(seven_label_adapter), "--weights", "0.35", "0.65",
                      "--neutral_margin", "-0.75", "--output_dir", str(commanded), "--data_dir",
                      str(neutral_data_dir)]) == EXIT_OK
    assert read_labels(trained) == SEVEN_LABELS
    mine, theirs = (load_file(str(d / "adapter_model.safetensors")) for d in (trained, commanded))
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_allclose(mine[key].numpy(), theirs[key].numpy(), atol=1e-6, rtol=1e-5)
    soup = json.loads((trained / "metrics.json").read_text(encoding="utf-8"))["soup"]
    assert soup["neutral_margin"] == -0.75 and [a["weight"] for a in soup["adapters"]] == [0.35, 0.65]


def test_train_py_fits_the_neutral_margin_on_held_out_neutral_rows(trained_bert_adapter, tiny_bert_dir,
                                                                   neutral_data_dir, tmp_path):
    from emotion_app.data.labelled import read_raw_rows, split_by_cap
    from emotion_app.train.trainer import MIN_NEUTRAL_FIT_ROWS

    extra = tmp_path / "reddit.csv"  # neutral rows beyond the cap are held out: what the margin is fitted on
    words = sorted({word for text in all_texts() for word in text.split()})
    rng = np.random.default_rng(0)  # varied rows, so that their neutral logits spread
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(260)]
    pd.DataFrame({"text": texts + ["so happy today", "this is great"],
                  "labels": ["neutral"] * 260 + ["joy"] * 2}).to_csv(extra, index=False)
    out, seed = tmp_path / "fitted", 7
    run_train(quick_train_args(tiny_bert_dir, neutral_data_dir, out, steps=6) + [
        "--extra_train_files", str(extra), "--extra_train_max_per_label", "40", "--soup_with",
        str(trained_bert_adapter), "--soup_weight", "0.35", "--soup_neutral_recall", "0.65"])
    soup = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["soup"]
    held_out = split_by_cap(read_raw_rows(extra), 40, seed)[1].texts
    in_validation = (neutral_data_dir / "validation.txt").read_text(encoding="utf-8").count(";neutral\n")
    assert len(held_out) == 220 >= MIN_NEUTRAL_FIT_ROWS and in_validation > 0  # both are held out
    assert soup["neutral_margin_fit"] == {"recall": 0.65, "held_out_neutral_rows": 220 + in_validation}
    probs = EmotionClassifier.from_adapter(str(out), quantize=False).predict_proba(held_out)
    assert (probs.argmax(axis=1) == SEVEN_LABELS.index("neutral")).mean() == pytest.approx(0.65, abs=0.03)

    few = tmp_path / "few"  # too few held-out neutral rows: refused before training
    done = subprocess.run([sys.executable, str(REPO / "train.py"),
                           *quick_train_args(tiny_bert_dir, neutral_data_dir, few), "--extra_train_files", str(extra),
                           "--extra_train_max_per_label", "200", "--soup_with", str(trained_bert_adapter),
                           "--soup_neutral_recall", "0.65"],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and f"found {60 + in_validation} ({in_validation} in validation, 60 set aside" \
        in done.stderr
    assert not (few / "checkpoints").exists()


def test_a_soup_of_seven_label_adapters_keeps_their_labels(seven_label_adapter, data_dir, tmp_path):
    from emotion_app.cli.soup import main as soup_main

    out = tmp_path / "soup"  # measured on six-label files (dair-ai's), as the v3 candidates are
    assert soup_main(["--adapters", str(seven_label_adapter), str(seven_label_adapter), "--weights", "0.5", "0.5",
                      "--output_dir", str(out), "--data_dir", str(data_dir)]) == 0
    assert read_labels(out) == SEVEN_LABELS
    assert "accuracy" in json.loads((out / "metrics.json").read_text())["validation"]["six_way"]
    assert EmotionClassifier.from_adapter(str(out), quantize=False).predict_proba(["a plain line"]).shape == (1, 7)


def test_neutral_replay_from_the_hub_takes_the_comments_rated_neutral_alone(monkeypatch):
    """The Hub path of load_neutral, offline: GoEmotions' `simplified` layout built here."""
    import datasets

    from emotion_app import network
    from emotion_app.train.adaptation.inputs import NEUTRAL_DATASET, load_neutral

    features = datasets.Features({"text": datasets.Value("string"), "id": datasets.Value("string"),
                                  "labels": datasets.List(datasets.ClassLabel(names=["admiration", "joy", "neutral"]))})
    hub = datasets.Dataset.from_dict({"text": ["the bus leaves at nine", "fine, so glad", "wow"],
                                      "labels": [[2], [1, 2], [0]], "id": ["a", "b", "c"]}, features=features)
    asked = []
    monkeypatch.setattr(network, "require_hub", lambda purpose, timeout=None: asked.append(purpose))
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name, config, split: hub if (name, config, split) == (*NEUTRAL_DATASET, "train") else None)
    plain = load_neutral(None)
    assert plain.texts == ["the bus leaves at nine"] and plain.source == f"{NEUTRAL_DATASET[0]} (Hub)"
    assert asked == [f"the data set {NEUTRAL_DATASET[0]}"]  # reachability checked before the download
