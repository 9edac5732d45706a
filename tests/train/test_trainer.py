"""Training through the real train.py on tiny BERT and GPT-2 checkpoints, and crash safety."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support import REPO, quick_train_args, run_train, subprocess_env

from emotion_app.analysis.metrics import classification_metrics, evaluate
from emotion_app.engine.adapters import load_adapter
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.labels import EMOTIONS
from emotion_app.train import trainer as training
from emotion_app.train.arguments import LoraArguments, parse_train_args, train_parser
from emotion_app.train.lora import build_lora_model
from emotion_app.train.trainer import save_adapter

pytestmark = pytest.mark.slow

SPLIT_KEYS = {"accuracy", "macro_f1", "weighted_f1", "n", "per_class", "confusion_matrix", "loss"}


@pytest.fixture(params=["bert", "gpt2"])
def run(request):
    """(adapter directory, the base it was trained from) for each tiny architecture."""
    adapter = request.getfixturevalue(f"trained_{request.param}_adapter")
    base = request.getfixturevalue(f"tiny_{request.param}_dir")
    return adapter, base


def _metrics(adapter: Path) -> dict:
    return json.loads((adapter / "metrics.json").read_text(encoding="utf-8"))


# ---- what a run writes --------------------------------------------------------------------------

def test_run_writes_the_adapter_files(run):
    adapter, base = run
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == str(base)  # as given on the command line
    assert config["task_type"] == "SEQ_CLS"
    for name in ("adapter_model.safetensors", "tokenizer_config.json", "tokenizer.json", "metrics.json",
                 "README.md"):
        assert (adapter / name).is_file(), name
    assert not list(adapter.glob("*.bin"))
    assert not (adapter / training.STAGING).exists()
    assert list((adapter / training.CHECKPOINTS).glob("checkpoint-*"))


def test_metrics_json_holds_every_required_figure(run, split_rows):
    adapter, base = run
    metrics = _metrics(adapter)
    assert metrics["labels"] == list(EMOTIONS)
    assert metrics["base_model"] == str(base)
    for split in ("validation", "test"):
        figures = metrics[split]
        assert SPLIT_KEYS <= set(figures), split
        assert figures["n"] == len(split_rows[split]) == 24
        matrix = np.array(figures["confusion_matrix"])
        assert matrix.shape == (6, 6)
        assert matrix.sum() == figures["n"]
        assert figures["accuracy"] == pytest.approx(np.trace(matrix) / figures["n"])
        assert list(figures["per_class"]) == list(EMOTIONS)
        true_counts = np.bincount([label for _, label in split_rows[split]], minlength=6)
        for i, label in enumerate(EMOTIONS):
            row = figures["per_class"][label]
            assert set(row) == {"precision", "recall", "f1", "support"}
            assert row["support"] == matrix[i].sum() == true_counts[i]
            assert 0.0 <= row["f1"] <= 1.0
        assert np.isfinite(figures["loss"]) and figures["loss"] > 0
    summary = metrics["training"]
    assert summary["base_model"] == str(base)
    assert summary["train_rows"] == 48
    assert summary["global_step"] > 0


def test_model_card_has_hub_front_matter_and_the_results(run):
    adapter, base = run
    metrics = _metrics(adapter)
    text = (adapter / "README.md").read_text(encoding="utf-8")
    front, body = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, flags=re.S).groups()
    # the front matter is written as `key: <JSON>` lines, which YAML reads the same way
    meta = {key: json.loads(value) for key, value in (line.split(": ", 1) for line in front.splitlines())}
    assert meta["base_model"] == str(base)
    assert meta["library_name"] == "peft"
    assert meta["datasets"] == ["dair-ai/emotion"]
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["license"]
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    figures = {m["type"]: m["value"] for m in results["metrics"]}
    assert figures["accuracy"] == round(metrics["test"]["accuracy"], 4)
    assert figures["f1"] == round(metrics["test"]["macro_f1"], 4)
    assert f"| test | 24 | {metrics['test']['accuracy']:.2%} |" in body
    for label in EMOTIONS:
        assert f"| {label} |" in body
    # what the figures do not promise, and the detector fitted with the run (or why there is none)
    shift = body[body.index("## Text unlike the training data"):body.index("## Use")]
    detector = metrics["shift_detector"]
    if detector.get("available", True):
        assert "shift detector" in shift and f"{detector['test_flagged']:.1%} of test" in shift
    else:
        assert "--detector_only" in shift


def test_model_cards_loading_snippet_runs_and_gives_our_predictions(run):
    adapter, _ = run
    text = (adapter / "README.md").read_text(encoding="utf-8")
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "PeftModel" in block)
    namespace = {}
    exec(snippet.replace("<this repo or directory>", str(adapter)), namespace)  # noqa: S102 - our own card
    import torch

    with torch.inference_mode():
        logits = namespace["model"](**namespace["tokenizer"](["i feel so sad today"], return_tensors="pt")).logits
    ours = EmotionClassifier.from_adapter(str(adapter), quantize=False, num_threads=1).logits(["i feel so sad today"])
    assert np.allclose(logits.numpy(), ours, atol=1e-5)


# ---- reloading ----------------------------------------------------------------------------------

def test_reload_reproduces_the_saved_metrics_and_label_maps(run, split_rows):
    adapter, _ = run
    saved = _metrics(adapter)
    # torch, to read the reloaded model's own config (an ONNX model keeps only a JSON copy)
    classifier = EmotionClassifier.from_adapter(str(adapter), quantize=False, num_threads=1, runtime="torch")
    config = classifier.model.config
    assert config.id2label == dict(enumerate(EMOTIONS)) and config.label2id == {name: i for i, name in enumerate(EMOTIONS)} and config.num_labels == 6
    for split in ("validation", "test"):
        texts = [t for t, _ in split_rows[split]]
        labels = [label for _, label in split_rows[split]]
        # metrics.json holds the raw model's figures (temperature 1), so compare with raw logits
        again = classification_metrics(labels, softmax(classifier.logits(texts)))
        assert again["confusion_matrix"] == saved[split]["confusion_matrix"], split
        assert again["loss"] == pytest.approx(saved[split]["loss"], rel=1e-4), split
        # the calibrated probabilities keep every prediction
        assert evaluate(classifier, texts, labels)["confusion_matrix"] == saved[split]["confusion_matrix"]


def test_merged_and_unmerged_adapter_give_the_same_probabilities(run, split_rows):
    adapter, _ = run
    texts = [t for t, _ in split_rows["test"]]
    merged = EmotionClassifier.from_adapter(str(adapter), quantize=False, num_threads=1)
    loaded = load_adapter(str(adapter), merge=False)
    unmerged = EmotionClassifier(loaded.model, loaded.tokenizer, temperature=merged.temperature)
    assert np.allclose(merged.logits(texts), unmerged.logits(texts), atol=1e-5)
    probs = merged.predict_proba(texts)
    assert np.allclose(probs, unmerged.predict_proba(texts), atol=1e-5)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs.std(axis=0).max() > 0  # not one constant row for every text


# ---- configuration ------------------------------------------------------------------------------

def test_json_config_with_flags_overriding_it(trained_gpt2_adapter, gpt2_config_file):
    config = json.loads(gpt2_config_file.read_text(encoding="utf-8"))
    assert config["max_steps"] == 50 and config["lora_r"] == 2
    metrics = _metrics(trained_gpt2_adapter)
    assert metrics["training"]["global_step"] == 4  # the flag, not the file's 50
    assert metrics["training"]["lora"]["lora_r"] == 2  # the file's value, not the default 8
    assert json.loads((trained_gpt2_adapter / "adapter_config.json").read_text())["r"] == 2
    assert not Path(config["output_dir"]).exists()  # the flag's output_dir was used


def test_defaults_reproduce_the_reference_recipe():
    model, data, lora, run_args = parse_train_args([])
    assert model.base_model == "microsoft/DialogRPT-updown"
    assert (data.dataset_name, data.dataset_config) == ("dair-ai/emotion", "split")
    assert (lora.lora_r, lora.lora_alpha, lora.lora_dropout) == (8, 32, 0.2)
    assert run_args.learning_rate == 2e-5
    assert run_args.per_device_train_batch_size == run_args.per_device_eval_batch_size == 4
    assert run_args.num_train_epochs == 10
    assert run_args.weight_decay == 0.01
    assert str(run_args.eval_strategy) in ("epoch", "IntervalStrategy.EPOCH")
    assert str(run_args.save_strategy) in ("epoch", "SaveStrategy.EPOCH")
    assert run_args.load_best_model_at_end is True
    assert run_args.resume is False


@pytest.mark.parametrize("name", sorted(str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.json")
                                         if p.parent.name != "mappings"))
def test_shipped_configs_parse(name):
    model, data, lora, run_args = parse_train_args([str(REPO / "configs" / name), "--output_dir", "/tmp/x"])
    expected = json.loads((REPO / "configs" / name).read_text(encoding="utf-8"))
    assert model.base_model == expected["base_model"]
    assert lora.lora_r == expected["lora_r"]
    assert lora.target_modules == expected["target_modules"]
    assert run_args.learning_rate == expected["learning_rate"]
    assert run_args.prior_weight == expected.get("prior_weight", 0.0)
    assert run_args.soup_with == expected.get("soup_with")
    assert run_args.output_dir == "/tmp/x"
    if data.label_mapping:
        from emotion_app.data.labelled import read_label_mapping

        assert read_label_mapping(REPO / data.label_mapping)


def test_unknown_option_in_a_config_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"lora_r": 4, "learning_rat": 0.1}), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"unknown options \['learning_rat'\]"):
        parse_train_args([str(path)])
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"could not be read as JSON"):
        parse_train_args([str(path)])


def test_every_option_has_help_text():
    parser = train_parser()
    undocumented = [a.dest for a in parser._actions if a.dest != "help" and not (a.help or "").strip()]
    assert undocumented == []
    text = parser.format_help()
    for option in ("--base_model", "--data_dir", "--max_train_samples", "--max_eval_samples", "--max_length",
                   "--target_modules", "--resume", "--seed", "--lora_r", "--push_to_hub", "--hub_model_id"):
        assert option in text


# ---- crash safety: staging, kill -9 and --resume -------------------------------------------------

@pytest.fixture(scope="module")
def tiny_peft(tiny_bert_dir):
    return build_lora_model(str(tiny_bert_dir), LoraArguments(lora_r=2), max_length=16)


def _metrics_stub(base: str) -> dict:
    return {"name": "stub", "labels": list(EMOTIONS), "base_model": base}


def test_save_adapter_records_the_base_as_given_and_clears_a_stale_staging_dir(tiny_peft, tmp_path):
    model, tokenizer = tiny_peft
    out = tmp_path / "out"
    (out / training.STAGING).mkdir(parents=True)
    (out / training.STAGING / "adapter_model.bin").write_bytes(b"left by a crash")
    save_adapter(model, tokenizer, _metrics_stub("someone/tiny-base"), out, "someone/tiny-base")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "someone/tiny-base"
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["base_model"] == "someone/tiny-base"
    assert not (out / training.STAGING).exists()
    assert not list(out.rglob("*.bin"))


def test_a_crash_while_writing_the_staging_dir_leaves_the_old_adapter_whole(
        trained_bert_adapter, tiny_peft, tmp_path, monkeypatch):
    model, tokenizer = tiny_peft
    out = tmp_path / "adapter"
    shutil.copytree(trained_bert_adapter, out, ignore=shutil.ignore_patterns("checkpoints"))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(training, "write_model_card", crash)
    with pytest.raises(OSError, match="disk full"):
        save_adapter(model, tokenizer, _metrics_stub("x/y"), out, "x/y")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before
    load_adapter(str(out))  # still loads


def test_a_crash_while_moving_files_never_leaves_a_mixed_adapter(
        trained_bert_adapter, tiny_peft, tiny_bert_dir, tmp_path, monkeypatch):
    model, tokenizer = tiny_peft
    out = tmp_path / "adapter"
    shutil.copytree(trained_bert_adapter, out, ignore=shutil.ignore_patterns("checkpoints"))
    real_replace = os.replace
    moved = []

    def crash_on_second_move(src, dst):  # of the staged files into the adapter directory
        if Path(dst).parent != out:
            return real_replace(src, dst)  # writes inside the staging directory
        if len(moved) == 1:
            raise OSError("killed")
        moved.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(training.os, "replace", crash_on_second_move)
    with pytest.raises(OSError, match="killed"):
        save_adapter(model, tokenizer, _metrics_stub(str(tiny_bert_dir)), out, str(tiny_bert_dir))
    assert moved and moved[0] != "adapter_config.json"
    # half old, half new: the marker file is gone, so nobody loads the mix
    assert not (out / "adapter_config.json").exists()
    with pytest.raises(ValueError, match=r"lacks adapter_config\.json"):
        load_adapter(str(out))

    monkeypatch.setattr(training.os, "replace", real_replace)
    save_adapter(model, tokenizer, _metrics_stub(str(tiny_bert_dir)), out, str(tiny_bert_dir))
    assert load_adapter(str(out)).base_model == str(tiny_bert_dir)
    assert not (out / training.STAGING).exists()


def test_last_checkpoint_skips_ones_a_crash_left_half_written(tmp_path):
    checkpoints = tmp_path / training.CHECKPOINTS
    assert training._last_checkpoint(tmp_path) is None
    for step, complete in ((10, True), (20, True), (30, False)):
        directory = checkpoints / f"checkpoint-{step}"
        directory.mkdir(parents=True)
        (directory / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (directory / "trainer_state.json").write_text("{}")
    assert training._last_checkpoint(tmp_path) == str(checkpoints / "checkpoint-20")


def _wait_for_checkpoint(process: subprocess.Popen, checkpoints: Path, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sorted(checkpoints.glob("checkpoint-*/trainer_state.json"))
        if done:
            return done[0].parent
        if process.poll() is not None:
            pytest.fail(f"train.py ended ({process.returncode}) before its first checkpoint")
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"no checkpoint in {checkpoints} after {timeout} s")


def test_kill_9_mid_training_then_resume_finishes_the_run(tiny_bert_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    steps = 120
    args = quick_train_args(tiny_bert_dir, data_dir, out, steps=steps)
    args += ["--save_steps", "10", "--eval_steps", "10", "--logging_steps", "50", "--save_total_limit", "3"]
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                               env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        first = _wait_for_checkpoint(process, out / training.CHECKPOINTS, timeout=1200)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        log.close()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "adapter_config.json").exists()  # no final adapter from a killed run

    # As if the kill had hit while the next checkpoint was being written: no trainer_state.json yet.
    half = out / training.CHECKPOINTS / f"checkpoint-{10 * steps}"
    half.mkdir()
    shutil.copy(first / "adapter_model.safetensors", half)

    done = run_train(args + ["--resume", "true"])
    resumed_from = re.search(r"Resuming from (\S+)", done.stderr)
    assert resumed_from, done.stderr[-2000:]
    step = int(resumed_from.group(1).rsplit("-", 1)[1])
    assert 10 <= step < steps
    metrics = _metrics(out)
    assert metrics["training"]["global_step"] == steps
    assert metrics["training"]["resumed_from"] == f"checkpoint-{step}"  # its train_seconds: the resumed part
    assert metrics["test"]["n"] == 24
    load_adapter(str(out))


# ---- the real bundled MiniLM --------------------------------------------------------------------

def test_bundled_minilm_loads_offline_and_trains_a_lora_step(data_dir, tmp_path):
    """The shipped base: with HF_HUB_OFFLINE=1 (subprocess_env) it loads from the package."""
    from safetensors import safe_open

    out = tmp_path / "minilm"
    run_train(["--base_model", "sentence-transformers/all-MiniLM-L6-v2", "--data_dir", str(data_dir),
               "--output_dir", str(out), "--max_steps", "2", "--max_train_samples", "8",
               "--max_eval_samples", "6", "--max_length", "16", "--per_device_train_batch_size", "4",
               "--learning_rate", "1e-3", "--eval_strategy", "no", "--save_strategy", "no",
               "--load_best_model_at_end", "false", "--report_to", "none", "--use_cpu", "true"])
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"  # not the local path
    assert set(config["target_modules"]) == {"query", "value"}
    assert _metrics(out)["training"]["global_step"] == 2
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        lora_b = [weights.get_tensor(k) for k in weights.keys() if "lora_B" in k]
        head = [k for k in weights.keys() if "classifier" in k]
    assert len(lora_b) == 12  # 6 layers x query, value
    assert all(t.abs().sum() > 0 for t in lora_b)  # initialised at zero: the steps changed them
    assert head
