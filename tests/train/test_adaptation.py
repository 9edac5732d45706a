"""Adaptation to corrected rows (emotion_app.train.adaptation, python -m emotion_app adapt) on the tiny
BERT adapter that conftest trains through train.py.

The shifted set: very short texts whose emotion is carried by words that are, in the training
data, only template filler ("today", "letter", ...), so the parent is at chance on them and a
model has to learn them from the corrections.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import NEUTRAL_TEXTS, REPO, SPLIT_ROWS, subprocess_env

from emotion_app.cli import adapt as adapt_cli
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.errors import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT
from emotion_app.labels import EMOTIONS
from emotion_app.train import adaptation
from emotion_app.train.adaptation import (
    AdaptOptions,
    adapt,
    check_corrections,
    holdout_folds,
    inputs,
    progress,
    read_corrections,
)

pytestmark = pytest.mark.slow

CUES = {0: ["today", "letter"], 1: ["everything", "hide"], 2: ["happened", "honestly"],
        3: ["read", "keep"], 4: ["cannot", "about"], 5: ["when", "that"]}
TRAIN_FORMS = ["{}", "i {}", "{} i", "so {}"]
UNSEEN_FORMS = ["the {}", "{} it"]
# Tiny models need a far larger learning rate and more passes than MiniLM's defaults.
TINY = {"epochs": 20, "learning_rate": 3e-2, "batch_size": 8, "max_length": 32, "folds": 3, "seed": 7}


def shifted(forms: list[str]) -> tuple[list[str], list[int]]:
    rows = [(form.format(word), label) for form in forms for label, words in CUES.items() for word in words]
    return [text for text, _ in rows], [label for _, label in rows]


def tree_hashes(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def accuracy(adapter: Path, texts: list[str], labels: list[int]) -> float:
    classifier = EmotionClassifier.from_adapter(str(adapter), quantize=False, runtime="torch", num_threads=1)
    return float((classifier.predict_proba(texts).argmax(axis=1) == np.asarray(labels)).mean())


def weights(adapter: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def run_adapt(parent: Path, out: Path, **options) -> tuple[Path, dict]:
    texts, labels = shifted(TRAIN_FORMS)
    return adapt(str(parent), texts, labels, out, AdaptOptions(**{**TINY, **options}))


@pytest.fixture(scope="module")
def adapted(trained_bert_adapter, data_dir, tmp_path_factory):
    """One run with 3-fold cross-validation and replay from the local files, and what it touched."""
    before = tree_hashes(trained_bert_adapter)
    steps = []
    texts, labels = shifted(TRAIN_FORMS)
    out, summary = adapt(str(trained_bert_adapter), texts, labels, tmp_path_factory.mktemp("adapted") / "out",
                         AdaptOptions(**TINY, replay_data=str(data_dir)),
                         progress=lambda step, total: steps.append((step, total)))
    return {"out": out, "summary": summary, "before": before, "steps": steps,
            "metrics": json.loads((out / "metrics.json").read_text(encoding="utf-8"))}


# ---- what it gains, and what it leaves alone ----------------------------------------------------

def test_adaptation_raises_accuracy_on_the_shifted_rows_and_leaves_the_parent_untouched(
        adapted, trained_bert_adapter):
    heldout = adapted["summary"]["heldout"]
    assert heldout["method"] == "3-fold cross-validation"
    assert heldout["adapted"]["n"] == heldout["parent"]["n"] == len(shifted(TRAIN_FORMS)[0])
    assert heldout["adapted"]["accuracy"] >= heldout["parent"]["accuracy"] + 0.2
    assert heldout["accuracy_change"] == pytest.approx(heldout["adapted"]["accuracy"] - heldout["parent"]["accuracy"])
    # and on sentence forms no training run saw, through the engine that loads saved adapters
    texts, labels = shifted(UNSEEN_FORMS)
    assert accuracy(adapted["out"], texts, labels) >= accuracy(trained_bert_adapter, texts, labels) + 0.2
    assert tree_hashes(trained_bert_adapter) == adapted["before"]


def test_dair_test_figures_of_parent_and_adapted_model_are_measured(adapted, trained_bert_adapter, data_dir):
    dair = adapted["summary"]["dair_test"]
    assert dair["source"] == str(data_dir)
    assert dair["adapted"]["n"] == dair["parent"]["n"] == len(SPLIT_ROWS["test"])
    test_texts = [text for text, _ in SPLIT_ROWS["test"]]
    test_labels = [label for _, label in SPLIT_ROWS["test"]]
    assert dair["parent"]["accuracy"] == pytest.approx(accuracy(trained_bert_adapter, test_texts, test_labels))
    assert adapted["metrics"]["test"]["accuracy"] == dair["adapted"]["accuracy"]
    assert adapted["metrics"]["test"]["n"] == len(test_texts)


def test_progress_counts_every_step_of_every_training(adapted):
    steps = adapted["steps"]
    total = steps[0][1]
    assert [step for step, _ in steps] == list(range(1, total + 1))
    assert {t for _, t in steps} == {total}
    final = adapted["metrics"]["training"]["steps"]
    assert final < total  # the three held-out trainings come on top of the final one


# ---- lineage, card, calibration -----------------------------------------------------------------

def test_metrics_hold_the_lineage(adapted, trained_bert_adapter, data_dir, tiny_bert_dir):
    summary, metrics = adapted["summary"], adapted["metrics"]
    parent = summary["parent"]
    assert parent["adapter"] == str(trained_bert_adapter)
    weights_file = trained_bert_adapter / "adapter_model.safetensors"
    assert parent["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert parent["base_model"] == str(tiny_bert_dir)
    n = len(shifted(TRAIN_FORMS)[0])
    assert summary["corrections"] == {"n": n, "per_label": {label: n // 6 for label in EMOTIONS}}
    assert summary["forgetting_guard"] == {"method": "replay", "replay_source": str(data_dir),
                                           "replay_rows": len(SPLIT_ROWS["train"])}  # capped at what there is
    assert summary["seed"] == TINY["seed"]
    assert metrics["adaptation"]["parent"] == parent
    assert metrics["training"]["parent_adapter"] == str(trained_bert_adapter)
    assert metrics["training"]["train_rows"] == n + len(SPLIT_ROWS["train"])
    assert metrics["labels"] == list(EMOTIONS)
    assert metrics["heldout"]["adapted"]["accuracy"] == summary["heldout"]["adapted"]["accuracy"]
    timing = summary["timing"]
    assert timing["to_saved_adapter_s"] == pytest.approx(timing["adaptation_s"] + timing["heldout_s"], abs=0.02)


def test_model_card_names_the_parent_and_the_gain(adapted, trained_bert_adapter, tiny_bert_dir):
    card = (adapted["out"] / "README.md").read_text(encoding="utf-8")
    summary = adapted["summary"]
    front = re.fullmatch(r"---\n(.*?)\n---\n.*", card, flags=re.S).group(1)
    assert f"base_model: {json.dumps(str(tiny_bert_dir))}" in front.splitlines()
    assert "## Adaptation" in card
    assert f"Adapted from `{trained_bert_adapter}`" in card
    assert summary["parent"]["sha256"] in card
    assert f"on {summary['corrections']['n']} corrected rows, seed {TINY['seed']}" in card
    heldout = summary["heldout"]
    assert (f"| held-out corrections (3-fold cross-validation) | {heldout['adapted']['n']} | "
            f"{heldout['parent']['accuracy']:.2%} | {heldout['adapted']['accuracy']:.2%} |") in card
    assert "| dair-ai/emotion test | 24 |" in card


def test_temperature_is_refitted_on_held_out_corrections_and_validation(adapted):
    calibration = adapted["metrics"]["calibration"]
    n = len(shifted(TRAIN_FORMS)[0])
    validation_rows = min(n, len(SPLIT_ROWS["validation"]))
    assert calibration["fitted_on"] == (f"{n} held-out corrections (out-of-fold) + "
                                        f"{validation_rows} dair-ai/emotion validation rows")
    stored = json.loads((adapted["out"] / "calibration.json").read_text(encoding="utf-8"))
    assert stored["temperature"] == calibration["temperature"]
    assert adapted["metrics"]["coverage"]


def test_the_adapted_adapter_loads_with_plain_transformers_and_peft(adapted, trained_bert_adapter):
    import torch

    out = adapted["out"]
    parent_config = json.loads((trained_bert_adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == parent_config["base_model_name_or_path"]
    assert not (out / ".staging").exists() and not list(out.glob("*.bin"))
    card = (out / "README.md").read_text(encoding="utf-8")
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", card, flags=re.S) if "PeftModel" in block)
    namespace = {}
    exec(snippet.replace("<this repo or directory>", str(out)), namespace)  # noqa: S102 - our own card
    texts = shifted(UNSEEN_FORMS)[0]
    with torch.inference_mode():
        logits = namespace["model"](**namespace["tokenizer"](texts, return_tensors="pt", padding=True)).logits
    ours = EmotionClassifier.from_adapter(str(out), quantize=False, num_threads=1).logits(texts)
    assert np.allclose(logits.numpy(), ours, atol=1e-5)


# ---- training continues from the parent, reproducibly -------------------------------------------

def test_training_continues_from_the_parents_weights(trained_bert_adapter, data_dir, tmp_path):
    out, _ = run_adapt(trained_bert_adapter, tmp_path / "out", epochs=1, learning_rate=1e-9, holdout="none",
                       replay_data=str(data_dir))
    parent, child = weights(trained_bert_adapter), weights(out)
    assert set(child) == set(parent)
    lora_b = [key for key in parent if "lora_B" in key]
    assert lora_b and all(np.abs(parent[key]).sum() > 0 for key in lora_b)  # a fresh LoRA B would be zero
    for key in parent:  # a learning rate of 1e-9 leaves the parent's weights, head included, as they were
        assert np.allclose(child[key], parent[key], atol=1e-6), key


def test_a_fixed_seed_reproduces_the_adapter_whatever_the_holdout(adapted, trained_bert_adapter, data_dir, tmp_path):
    first, _ = run_adapt(trained_bert_adapter, tmp_path / "a", holdout="none", replay_data=str(data_dir))
    again, _ = run_adapt(trained_bert_adapter, tmp_path / "b", holdout="none", replay_data=str(data_dir))
    other, _ = run_adapt(trained_bert_adapter, tmp_path / "c", holdout="none", replay_data=str(data_dir), seed=8)
    a, b, c, cv = weights(first), weights(again), weights(other), weights(adapted["out"])
    assert all(np.array_equal(a[key], b[key]) for key in a)
    assert all(np.array_equal(a[key], cv[key]) for key in a)  # the held-out trainings do not leak into it
    assert not all(np.array_equal(a[key], c[key]) for key in a)


# ---- without replay: distillation ---------------------------------------------------------------

def _offline(monkeypatch):
    def unreachable():
        raise ConnectionError("Couldn't reach 'dair-ai/emotion' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(inputs, "_hub_reference", unreachable)


def _drift(parent: Path, adapted_dir: Path) -> float:
    """Mean KL(parent || adapted) over the original data's texts."""
    texts = [text for text, _ in SPLIT_ROWS["train"] + SPLIT_ROWS["test"]]
    def probs(adapter: Path) -> np.ndarray:
        engine = EmotionClassifier.from_adapter(str(adapter), quantize=False, runtime="torch", num_threads=1)
        return softmax(engine.logits(texts))

    p, q = probs(parent), probs(adapted_dir)
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def test_offline_without_replay_data_it_distils_toward_the_parent_and_says_so(
        trained_bert_adapter, tmp_path, monkeypatch):
    _offline(monkeypatch)
    out, summary = run_adapt(trained_bert_adapter, tmp_path / "distilled", holdout="none", distill_weight=1.0)
    guard = summary["forgetting_guard"]
    assert guard["method"] == "distillation" and "Hub" in guard["reason"]
    assert any("distillation toward the parent" in note for note in summary["notes"])
    assert summary["dair_test"] is None
    assert any("No dair-ai/emotion test split" in note for note in summary["notes"])
    assert "distillation toward the parent's predictions" in (out / "README.md").read_text(encoding="utf-8")
    # the guard works: without it (weight 0) the model drifts further from the parent
    unguarded, _ = run_adapt(trained_bert_adapter, tmp_path / "unguarded", holdout="none", distill_weight=0.0)
    assert _drift(trained_bert_adapter, out) < _drift(trained_bert_adapter, unguarded)
    calibration = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["calibration"]
    assert calibration["fitted_on"] == "parent"  # nothing held out and no validation rows


def test_replay_rows_0_distils_even_with_replay_data(trained_bert_adapter, data_dir, tmp_path):
    _, summary = run_adapt(trained_bert_adapter, tmp_path / "out", holdout="none", replay_data=str(data_dir),
                           replay_rows=0, epochs=1)
    assert summary["forgetting_guard"]["method"] == "distillation"
    assert summary["forgetting_guard"]["reason"] == "replay_rows is 0"
    assert summary["dair_test"]["parent"]["n"] == len(SPLIT_ROWS["test"])  # still measured


def test_epochs_default_by_guard_longer_when_distilling(trained_bert_adapter, data_dir, tmp_path):
    def epochs(**options) -> int:
        out, _ = run_adapt(trained_bert_adapter, tmp_path / str(len(list(tmp_path.iterdir()))), holdout="none",
                           replay_data=str(data_dir), learning_rate=1e-9, **{**options, "epochs": None})
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]["epochs"]

    assert epochs() == adaptation.REPLAY_EPOCHS
    assert epochs(replay_rows=0) == adaptation.DISTILL_EPOCHS > adaptation.REPLAY_EPOCHS


# ---- refusals -----------------------------------------------------------------------------------

def test_refuses_too_few_corrections_and_names_the_minimum(trained_bert_adapter, tmp_path):
    texts, labels = shifted(TRAIN_FORMS)
    with pytest.raises(ValueError, match=r"found 9 corrections: expected at least 10"):
        adapt(str(trained_bert_adapter), texts[:9], labels[:9], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_a_label_outside_the_six_and_names_the_row(tmp_path):
    path = tmp_path / "fixed.csv"
    path.write_text("text,label\ni am glad,joy\ni am sad,Sadness\nwhat a day,3\nyuck,disgust\n", encoding="utf-8")
    rows = read_corrections(path)  # labels are read against the adapter's own, in adapt()
    with pytest.raises(ValueError, match=r"fixed\.csv, row 5 \('yuck'\): unknown label 'disgust'"):
        check_corrections(rows.texts, rows.cells, rows.places)
    with pytest.raises(ValueError, match=r"correction 3 \('c'\): unknown label 6"):
        check_corrections(list("abcdefghijkl"), [0, 1, 6] + [0] * 9)


def test_refuses_an_output_directory_that_is_the_parent_or_inside_it(trained_bert_adapter):
    before = tree_hashes(trained_bert_adapter)
    texts, labels = shifted(TRAIN_FORMS)
    with pytest.raises(ValueError, match=r"is the parent adapter's directory"):
        adapt(str(trained_bert_adapter), texts, labels, trained_bert_adapter)
    with pytest.raises(ValueError, match=r"is inside the parent adapter"):
        adapt(str(trained_bert_adapter), texts, labels, trained_bert_adapter / "adapted")
    assert tree_hashes(trained_bert_adapter) == before
    assert not (trained_bert_adapter / "adapted").exists()


def test_refuses_a_corrections_file_with_no_label_column(tmp_path):
    path = tmp_path / "fixed.csv"
    path.write_text("text,comment\ni am glad,ok\ni am sad,fine\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fixed\.csv has columns \['text', 'comment'\]: expected a label column"):
        read_corrections(path)


def test_refuses_bad_options_before_loading_anything(trained_bert_adapter, tmp_path):
    texts, labels = shifted(TRAIN_FORMS)
    with pytest.raises(ValueError, match=r"epochs must be a whole number of at least 1, found 0.*holdout must be"):
        adapt(str(trained_bert_adapter), texts, labels, tmp_path / "out", AdaptOptions(epochs=0, holdout="kfold"))


def test_an_interrupted_run_leaves_no_adapter_and_the_parent_whole(trained_bert_adapter, data_dir, tmp_path):
    before = tree_hashes(trained_bert_adapter)

    def interrupt(step, total):
        if step == 5:
            raise KeyboardInterrupt

    texts, labels = shifted(TRAIN_FORMS)
    with pytest.raises(KeyboardInterrupt):
        adapt(str(trained_bert_adapter), texts, labels, tmp_path / "out",
              AdaptOptions(**TINY, replay_data=str(data_dir)), progress=interrupt)
    assert not (tmp_path / "out" / "adapter_config.json").exists()
    assert not (tmp_path / "out" / ".staging").exists()
    assert tree_hashes(trained_bert_adapter) == before


# ---- corrections files and the held-out plan ----------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("fixed.csv", "Comment,Emotion\ni am glad,JOY\ni am sad,0\n"),
    ("fixed.txt", "i am glad;joy\ni am sad;sadness\n"),
    ("fixed.jsonl", '{"text": "i am glad", "label": 1}\n{"text": "i am sad", "label": "Sadness"}\n'),
])
def test_reads_corrections_through_the_shared_table_reader(tmp_path, monkeypatch, name, content):
    monkeypatch.setattr(inputs, "MIN_CORRECTIONS", 2)
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    rows = read_corrections(path)
    corrections = check_corrections(rows.texts, rows.cells, rows.places)
    assert corrections.texts == ["i am glad", "i am sad"]
    assert corrections.labels.tolist() == [1, 0]


def test_holdout_keeps_duplicates_together_and_stratifies():
    texts = [f"text {i % 30}" for i in range(60)]  # every text twice
    labels = np.array([i % 30 % 6 for i in range(60)])
    corrections = check_corrections(texts, labels)
    method, folds = holdout_folds(corrections, "cv", 5, seed=1)
    assert method == "5-fold cross-validation"
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    for fold in folds:
        held = {texts[i] for i in fold}
        assert all(texts[i] not in held for i in np.setdiff1d(np.arange(60), fold))
        assert np.bincount(labels[fold], minlength=6).tolist() == [2] * 6
    big = check_corrections([f"t{i}" for i in range(250)], [i % 6 for i in range(250)])
    method, folds = holdout_folds(big, "auto", 5, seed=1)
    assert method == "held-out 20 %" and len(folds) == 1 and len(folds[0]) == 50
    assert holdout_folds(big, "none", 5, seed=1) == ("none", [])


# ---- the command line ---------------------------------------------------------------------------

def _write_corrections(path: Path) -> Path:
    texts, labels = shifted(TRAIN_FORMS)
    rows = [f"{text},{EMOTIONS[label].upper()}" for text, label in zip(texts, labels)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = subprocess_env()
    env["HF_HOME"] = str(tmp_path / "hf-home")  # nothing cached: offline means no dair-ai/emotion
    return subprocess.run([sys.executable, "-m", "emotion_app", "adapt", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _tiny_flags() -> list[str]:
    return ["--epochs", "20", "--learning_rate", "3e-2", "--batch_size", "8", "--max_length", "32",
            "--folds", "3", "--seed", "7"]


def test_cli_end_to_end(trained_bert_adapter, data_dir, tmp_path):
    corrections = _write_corrections(tmp_path / "fixed.csv")
    out = tmp_path / "cli-out"
    done = _cli(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections), "-o", str(out),
                 "--replay_data", str(data_dir), *_tiny_flags()], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["adaptation"]["corrections"]["n"] == 48
    assert metrics["adaptation"]["forgetting_guard"]["method"] == "replay"
    assert f"Adapted {trained_bert_adapter} on 48 corrections into {out}." in done.stdout
    assert "held-out corrections (3-fold cross-validation, n 48): accuracy" in done.stdout
    assert "dair-ai/emotion test (test, n 24)" in done.stdout
    assert "training step" in done.stderr  # progress
    EmotionClassifier.from_adapter(str(out), num_threads=1).predict_proba(["i am so today"])


def test_cli_offline_falls_back_to_distillation(trained_bert_adapter, tmp_path):
    corrections = _write_corrections(tmp_path / "fixed.csv")
    done = _cli(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections), "-o",
                 str(tmp_path / "out"), "--holdout", "none", *_tiny_flags()], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forgetting guard: distillation" in done.stdout
    assert "note: No replay (dair-ai/emotion could not be loaded from the Hub" in done.stdout


def test_cli_refusal_exits_4_naming_the_parent(trained_bert_adapter, tmp_path, capsys):
    corrections = _write_corrections(tmp_path / "fixed.csv")
    code = adapt_cli.main(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections),
                           "-o", str(trained_bert_adapter)])
    assert code == EXIT_OUTPUT
    assert f"-o {trained_bert_adapter} and --adapter {trained_bert_adapter} are the same" in capsys.readouterr().err


def test_cli_json_progress_lines_are_the_protocols_events(trained_bert_adapter, data_dir, tmp_path, capsys,
                                                         monkeypatch):
    """The child's side of the app's protocol: --progress json writes step events up to the total,
    then done naming the adapter; its summary and log lines are no events. --niceness lowers its
    priority (os.nice, stubbed here so the test process keeps its own)."""
    niced = []
    monkeypatch.setattr(adapt_cli.os, "nice", niced.append)
    corrections = _write_corrections(tmp_path / "fixed.csv")
    out = tmp_path / "json-out"
    code = adapt_cli.main(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections), "-o",
                           str(out), "--replay_data", str(data_dir), "--holdout", "none", "--progress", "json",
                           "--niceness", "10", *_tiny_flags()])
    assert code == EXIT_OK and niced == [10]
    lines = capsys.readouterr().out.splitlines()
    events = [progress.decode(line) for line in lines]
    assert all(event is not None for line, event in zip(lines, events) if line.startswith("{"))
    steps = [event for event in events if event and event.kind == progress.STEP]
    total = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]["steps"]
    assert steps[-1] == progress.Event(progress.STEP, step=total, total=total)
    assert [e for e in events if e and e.kind != progress.STEP] == [progress.Event(progress.DONE,
                                                                                   output_dir=str(out.resolve()))]
    assert any(f"into {out}" in line for line, event in zip(lines, events) if event is None)  # the summary


def test_cli_json_refusal_is_an_error_event_and_its_exit_code(trained_bert_adapter, tmp_path, capsys):
    corrections = _write_corrections(tmp_path / "fixed.csv")
    code = adapt_cli.main(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections),
                           "-o", str(trained_bert_adapter), "--progress", "json"])
    assert code == EXIT_OUTPUT
    captured = capsys.readouterr()
    [event] = [progress.decode(line) for line in captured.out.splitlines()]
    assert event.kind == progress.ERROR and "are the same file" in event.message
    assert "error: " in captured.err  # the command's own error line, as without --progress json


def test_cli_refuses_a_negative_niceness(trained_bert_adapter, tmp_path, capsys):
    corrections = _write_corrections(tmp_path / "fixed.csv")
    code = adapt_cli.main(["--adapter", str(trained_bert_adapter), "--corrections", str(corrections),
                           "-o", str(tmp_path / "out"), "--niceness", "-5"])
    assert code == EXIT_INPUT
    assert "--niceness -5: expected 0 or more" in capsys.readouterr().err


def test_default_adapter_is_the_embedded_one_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(adapt_cli.default_adapter(adapt_cli.DEFAULT_ADAPTER)) == REPO / "models" / "minilm-emotion-lora"
    assert adapt_cli.default_adapter("user/name") == "user/name"


def test_importing_the_core_loads_no_torch_transformers_or_peft():
    code = ("import sys, emotion_app.train.adaptation, emotion_app.cli.adapt; "
            "print(*(name in sys.modules for name in ('torch', 'transformers', 'peft', 'datasets')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.stdout.split() == ["False"] * 4, done.stderr[-2000:]


def test_bench_adapt_runs_end_to_end_on_a_tiny_adapter(trained_bert_adapter, data_dir, tmp_path):
    """A smoke run of benchmarks/bench_adapt.py (no figure is asserted: the benchmark is for MiniLM):
    the rows of a label the model lacks are set aside, the corrections are drawn from the others and
    the rest is measured, the same rows for every K."""
    texts, labels = shifted(TRAIN_FORMS + UNSEEN_FORMS)
    rows = "".join(f"{text},{EMOTIONS[label]}\n" for text, label in zip(texts, labels))
    pool = tmp_path / "pool.csv"
    pool.write_text("text,label\n" + rows + "yuck,disgust\nso gross,Disgust\n", encoding="utf-8")
    doc = tmp_path / "adaptation.md"
    doc.write_text("# Adaptation\n\nbefore\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nafter\n",
                   encoding="utf-8")
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_adapt.py", "--adapter", str(trained_bert_adapter), "--pool", str(pool),
         "--dair_dir", str(data_dir), "--sizes", "12,24", "--seed", "3", "--holdout", "split",
         "--epochs", "2", "--output", str(output), "--doc", str(doc)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(output.read_text(encoding="utf-8"))
    draw = summary["draw"]
    assert draw["usable_rows"] == len(texts) and draw["set_aside"] == {"disgust": 2}
    assert draw["seed"] == 3 and draw["corrections_from_first"] == 24 and draw["measured_rows"] == len(texts) - 24
    assert [run["k"] for run in summary["runs"]] == [12, 24]
    assert [run["replay_rows"] for run in summary["runs"]] == [48, 96]  # 4 per correction (capped in adapt)
    for run in summary["runs"]:
        parent, adapted = run["measured"]["parent"], run["measured"]["adapted"]
        assert parent["n"] == adapted["n"] == len(texts) - 24
        # a six-label model: its argmax is the six-way one, and it has no neutral to call
        assert adapted["six_way_accuracy"] == adapted["accuracy"] and adapted["called_neutral_share"] is None
        assert run["heldout"]["method"] == "held-out 20 %" and run["epochs"] == 2
        assert run["timing"]["to_saved_adapter_s"] > 0
    assert summary["targets"] == {}  # no 100-correction run
    assert summary["plain"] == {"file": None, "rows": 0, "parent_called_neutral": None}  # six labels: no neutral
    assert all(run["plain_called_neutral"] is None for run in summary["runs"])
    text = doc.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# Adaptation\n\nbefore\n") and text.endswith("\nafter\n")
    assert "| 12 | 48 |" in text and "| 24 | 96 |" in text
    assert f"the other {len(texts) - 24} rows" in text


def test_bench_adapt_reports_how_much_plain_text_a_neutral_model_still_calls_neutral(seven_label_adapter, data_dir,
                                                                                    tmp_path):
    texts, labels = shifted(TRAIN_FORMS)
    pool = tmp_path / "pool.csv"
    pool.write_text("text,label\n" + "".join(f"{t},{EMOTIONS[y]}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    plain = tmp_path / "dev.csv"  # GoEmotions' layout: only the rows rated neutral alone are plain text
    plain_rows = [(text, "neutral") for text in NEUTRAL_TEXTS] + [("so glad", "joy"), ("fine i guess", "neutral joy")]
    pd.DataFrame(plain_rows, columns=["text", "labels"]).to_csv(plain, index=False)
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_adapt.py", "--adapter", str(seven_label_adapter), "--pool", str(pool),
         "--dair_dir", str(data_dir), "--sizes", "12", "--holdout", "none", "--epochs", "1", "--plain", str(plain),
         "--neutral_data", str(plain), "--output", str(output), "--no-doc"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(output.read_text(encoding="utf-8"))
    parent = EmotionClassifier.from_adapter(str(seven_label_adapter), quantize=False, runtime="torch")
    called = parent.predict_proba(NEUTRAL_TEXTS).argmax(axis=1) == parent.labels.index("neutral")
    assert summary["plain"]["rows"] == len(NEUTRAL_TEXTS)
    assert summary["plain"]["parent_called_neutral"] == pytest.approx(called.mean())
    assert 0 <= summary["runs"][0]["plain_called_neutral"] <= 1
    assert summary["runs"][0]["forgetting_guard"]["neutral_replay_rows"] == 12  # one per correction


def test_bench_adapt_refuses_more_corrections_than_the_pool_leaves_to_measure(trained_bert_adapter, tmp_path):
    texts, labels = shifted(TRAIN_FORMS)
    pool = tmp_path / "pool.csv"
    pool.write_text("text,label\n" + "".join(f"{t},{EMOTIONS[y]}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_adapt.py", "--adapter", str(trained_bert_adapter), "--pool", str(pool),
         "--sizes", f"12,{len(texts)}", "--no-doc", "--output", str(tmp_path / "bench.json")],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert f"found {len(texts)} corrections but the pool has {len(texts)} usable rows" in done.stderr
    assert not (tmp_path / "bench.json").exists()
