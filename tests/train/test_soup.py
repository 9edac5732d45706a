"""Weight-space soups of LoRA adapters (train/soup.py) and the `python -m emotion_app soup` command."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from support import REPO, quick_train_args, run_train, subprocess_env

from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS, NEUTRAL
from emotion_app.train.soup import Ingredient, check_weights, fit_neutral_margin, mix, soup_labels

LAYER = "base_model.model.bert.encoder.layer.0.attention.self.query"
HEAD = "base_model.model.classifier.weight"
BIAS = "base_model.model.classifier.bias"
SEVEN = (*EMOTIONS, NEUTRAL)


def _ingredient(name: str, r: int, alpha: int, seed: int, labels: tuple[str, ...] = EMOTIONS) -> Ingredient:
    generator = torch.Generator().manual_seed(seed)
    weights = {f"{LAYER}.lora_A.weight": torch.randn(r, 8, generator=generator),
               f"{LAYER}.lora_B.weight": torch.randn(8, r, generator=generator),
               HEAD: torch.randn(len(labels), 8, generator=generator),
               BIAS: torch.randn(len(labels), generator=generator)}
    config = {"peft_type": "LORA", "task_type": "SEQ_CLS", "base_model_name_or_path": "base", "r": r,
              "lora_alpha": alpha, "modules_to_save": ["classifier", "score"], "fan_in_fan_out": False}
    return Ingredient(name, config, weights, labels)


def _delta(item: Ingredient) -> torch.Tensor:
    w = item.weights
    return item.config["lora_alpha"] / item.config["r"] * w[f"{LAYER}.lora_B.weight"] @ w[f"{LAYER}.lora_A.weight"]


def test_the_mix_is_the_weighted_sum_of_the_updates_and_heads_as_one_lora():
    one, two = _ingredient("one", r=4, alpha=8, seed=0), _ingredient("two", r=2, alpha=16, seed=1)
    config, tensors = mix([one, two], [0.3, 0.7])
    assert (config["r"], config["lora_alpha"]) == (6, 6)  # scale 1: the weights live in B
    soup = Ingredient("soup", config, tensors)
    torch.testing.assert_close(_delta(soup), 0.3 * _delta(one) + 0.7 * _delta(two))
    torch.testing.assert_close(tensors[HEAD], 0.3 * one.weights[HEAD] + 0.7 * two.weights[HEAD])


def test_a_six_label_adapter_mixes_into_a_seven_label_one_row_by_label():
    six, seven = _ingredient("six", 4, 8, 0), _ingredient("seven", 4, 8, 1, labels=SEVEN)
    config, tensors = mix([six, seven], [0.4, 0.6])
    assert soup_labels([six, seven]) == SEVEN and tensors[HEAD].shape == (7, 8)
    torch.testing.assert_close(_delta(Ingredient("soup", config, tensors)), 0.4 * _delta(six) + 0.6 * _delta(seven))
    for head in (HEAD, BIAS):  # the emotions: both adapters' rows mixed; neutral: the seven-label one's alone
        torch.testing.assert_close(tensors[head][:6], 0.4 * six.weights[head] + 0.6 * seven.weights[head][:6])
        torch.testing.assert_close(tensors[head][6], seven.weights[head][6])


def test_rows_are_matched_by_label_name_not_position():
    seven = _ingredient("seven", 4, 8, 1, labels=SEVEN)
    shuffled = _ingredient("shuffled", 4, 8, 2, labels=("joy", "sadness", "love", "anger", "fear", "surprise"))
    _, tensors = mix([seven, shuffled], [0.5, 0.5])
    torch.testing.assert_close(tensors[BIAS][0], 0.5 * seven.weights[BIAS][0] + 0.5 * shuffled.weights[BIAS][1])


def test_a_neutral_margin_moves_the_neutral_logit_alone():
    six, seven = _ingredient("six", 4, 8, 0), _ingredient("seven", 4, 8, 1, labels=SEVEN)
    _, plain = mix([six, seven], [0.5, 0.5])
    _, shifted = mix([six, seven], [0.5, 0.5], neutral_margin=-0.75)
    torch.testing.assert_close(shifted[BIAS] - plain[BIAS], torch.tensor([0.0] * 6 + [0.75]))
    torch.testing.assert_close(shifted[HEAD], plain[HEAD])


def test_a_fitted_neutral_margin_calls_the_asked_share_of_the_rows_neutral():
    logits = np.random.default_rng(0).normal(size=(400, 7)) * [1, 1, 1, 1, 1, 1, 3]
    lead = logits[:, 6] - logits[:, :6].max(axis=1)
    for recall in (0.2, 0.65, 0.9):
        margin = fit_neutral_margin(logits, 6, recall)
        assert (lead > margin).mean() == pytest.approx(recall, abs=1 / 400)
    assert fit_neutral_margin(logits + [0, 0, 0, 0, 0, 0, 2], 6, 0.65) == pytest.approx(
        fit_neutral_margin(logits, 6, 0.65) + 2)  # a stronger neutral logit needs a larger margin, by as much
    for recall in (0, 1, 1.5):
        with pytest.raises(ValueError, match=rf"--soup_neutral_recall is {recall}: expected .* in \(0, 1\)"):
            fit_neutral_margin(logits, 6, recall)


def test_a_soup_mixes_again_though_peft_repeated_its_head_names():
    one, soup = _ingredient("one", 4, 8, 0), _ingredient("soup", 4, 8, 1)
    soup.config["modules_to_save"] = ["classifier", "score", "classifier", "score"]  # as a saved soup has it
    config, _ = mix([one, soup], [0.5, 0.5])
    assert config["r"] == 8


def test_labels_that_do_not_nest_are_refused():
    seven = _ingredient("seven", 4, 8, 1, labels=SEVEN)
    other = _ingredient("other", 4, 8, 2, labels=("sadness", "joy", "love", "anger", "fear", "disgust"))
    with pytest.raises(ValueError, match="labels disgust that the soup's labels"):
        mix([seven, other], [0.5, 0.5])


def test_a_neutral_margin_needs_a_neutral_label_and_a_head_bias():
    with pytest.raises(ValueError, match="needs a `neutral` label"):
        mix([_ingredient("a", 4, 8, 0), _ingredient("b", 4, 8, 3)], [0.5, 0.5], neutral_margin=1.0)
    seven, six = _ingredient("seven", 4, 8, 1, labels=SEVEN), _ingredient("six", 4, 8, 2)
    for item in (seven, six):
        item.weights.pop(BIAS)  # GPT-2's score layer has no bias
    with pytest.raises(ValueError, match="head has none"):
        mix([seven, six], [0.5, 0.5], neutral_margin=1.0)


def test_a_label_no_weighted_adapter_has_is_refused():
    six, seven = _ingredient("six", 4, 8, 0), _ingredient("seven", 4, 8, 1, labels=SEVEN)
    with pytest.raises(ValueError, match="no adapter with a weight above 0 has the labels neutral"):
        mix([six, seven], [1.0, 0.0])


@pytest.mark.parametrize("weights", [[0.5, 0.6], [1.2, -0.2], [1.0]])
def test_weights_must_interpolate_one_per_adapter(weights):
    with pytest.raises(ValueError, match=r"found .*E\.g\.|found .*e\.g\."):
        check_weights(weights, 2)


def test_adapters_of_different_bases_or_layers_are_refused():
    one, other_base = _ingredient("one", 4, 8, 0), _ingredient("two", 4, 8, 1)
    other_base.config["base_model_name_or_path"] = "another"
    with pytest.raises(ValueError, match="differ in base_model_name_or_path"):
        mix([one, other_base], [0.5, 0.5])
    fewer = _ingredient("three", 4, 8, 2)
    fewer.weights.pop(f"{LAYER}.lora_A.weight")
    with pytest.raises(ValueError, match="adapt different layers"):
        mix([one, fewer], [0.5, 0.5])
    dora = _ingredient("four", 4, 8, 3)
    dora.config["use_dora"] = True
    with pytest.raises(ValueError, match="use_dora"):
        mix([one, dora], [0.5, 0.5])


@pytest.fixture(scope="module")
def second_adapter(tmp_path_factory, tiny_bert_dir, data_dir):
    """Another tiny BERT adapter: another seed, trained on the prior's targets."""
    output = tmp_path_factory.mktemp("second") / "adapter"
    run_train(quick_train_args(tiny_bert_dir, data_dir, output) + ["--seed", "7", "--prior_weight", "0.3"])
    return output


def _soup(adapters, weights, data_dir, output):
    result = subprocess.run([sys.executable, "-m", "emotion_app", "soup", "--adapters", *map(str, adapters),
                             "--weights", *map(str, weights), "--output_dir", str(output), "--data_dir", str(data_dir)],
                            cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    return result


def test_soup_command_writes_a_measured_adapter_that_plain_peft_loads(trained_bert_adapter, second_adapter,
                                                                       tiny_bert_dir, data_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "soup"
    result = _soup([trained_bert_adapter, second_adapter], [0.5, 0.5], data_dir, out)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test"]["n"] == 24 and "temperature" in metrics["calibration"]
    assert [a["weight"] for a in metrics["soup"]["adapters"]] == [0.5, 0.5]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## How it was made" in card and metrics["soup"]["adapters"][1]["sha256"] in card
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 2 * json.loads(
        (trained_bert_adapter / "adapter_config.json").read_text())["r"]
    texts = ["i feel happy", "i am so angry at them", "what a surprise"]
    engine = EmotionClassifier.from_adapter(str(out), base_model=str(tiny_bert_dir), quantize=False,
                                            detect_shift=False)
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir), num_labels=6,
                                                              ignore_mismatched_sizes=True)  # a 2-way head
    model = PeftModel.from_pretrained(base, str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(torch.softmax(logits / engine.temperature, 1).numpy(), engine.predict_proba(texts),
                               atol=1e-5)


def test_a_soup_all_of_one_adapter_predicts_as_that_adapter(trained_bert_adapter, second_adapter, tiny_bert_dir,
                                                            data_dir, tmp_path):
    out = tmp_path / "soup-one"
    result = _soup([trained_bert_adapter, second_adapter], [1.0, 0.0], data_dir, out)
    assert result.returncode == 0, result.stderr[-3000:]
    texts = ["i feel happy", "i am so angry at them", "what a surprise", "i miss her"]
    options = {"base_model": str(tiny_bert_dir), "quantize": False, "detect_shift": False}
    soup = EmotionClassifier.from_adapter(str(out), **options)
    first = EmotionClassifier.from_adapter(str(trained_bert_adapter), **options)
    np.testing.assert_allclose(soup.logits(texts), first.logits(texts), atol=1e-5)


def test_soup_command_says_what_is_wrong_with_the_weights(trained_bert_adapter, data_dir, tmp_path):
    result = _soup([trained_bert_adapter, trained_bert_adapter], [0.5, 0.6], data_dir, tmp_path / "x")
    assert result.returncode == 2 and "sum to 1" in result.stderr
    assert not (tmp_path / "x").exists()


def _tensors(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))


def test_train_py_soup_with_saves_the_mix_the_soup_command_makes(trained_bert_adapter, second_adapter,
                                                                  tiny_bert_dir, data_dir, tmp_path):
    # the same run as second_adapter, mixed by train.py itself, against second_adapter mixed by the command
    trained = tmp_path / "trained-soup"
    run_train(quick_train_args(tiny_bert_dir, data_dir, trained) + [
        "--seed", "7", "--prior_weight", "0.3", "--soup_with", str(trained_bert_adapter), "--soup_weight", "0.4"])
    commanded = tmp_path / "command-soup"
    result = _soup([trained_bert_adapter, second_adapter], [0.4, 0.6], data_dir, commanded)
    assert result.returncode == 0, result.stderr[-3000:]
    mine, theirs = _tensors(trained), _tensors(commanded)
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key], atol=1e-6, rtol=1e-5)
    metrics, reference = (json.loads((d / "metrics.json").read_text()) for d in (trained, commanded))
    assert metrics["validation"]["accuracy"] == reference["validation"]["accuracy"]
    assert metrics["calibration"]["temperature"] == pytest.approx(reference["calibration"]["temperature"], rel=1e-4)
    partner, own = metrics["soup"]["adapters"]
    assert (partner["adapter"], partner["weight"], own["weight"]) == (str(trained_bert_adapter), 0.4, 0.6)
    assert partner["sha256"] == reference["soup"]["adapters"][0]["sha256"]
    assert own["sha256"] == reference["soup"]["adapters"][1]["sha256"]  # this run's own adapter, before the mix
    assert metrics["training"]["prior_weight"] == 0.3 and metrics["soup"]["rank"] == 8


@pytest.mark.parametrize("change, message", [
    ({"soup_weight": 1.0}, r"--soup_weight is 1.0: expected .* in \(0, 1\)"),
    ({"base": "another-base"}, "differ in base_model_name_or_path"),
    ({"missing": True}, r"--soup_with: adapter .* must exist before this run starts"),
    ({"soup_neutral_margin": 1.0}, "needs a `neutral` label"),  # six-label adapters
    ({"soup_neutral_margin": 1.0, "no_soup": True}, "there is no --soup_with"),
    ({"soup_neutral_recall": 0.65}, "--soup_neutral_recall needs a `neutral` label"),
    ({"soup_neutral_recall": 0.65, "no_soup": True}, "there is no --soup_with"),
    ({"soup_neutral_recall": 0.65, "soup_neutral_margin": -0.5}, "expected one of them"),
    ({"soup_neutral_recall": 1.0}, r"--soup_neutral_recall is 1.0: expected"),
])
def test_train_py_refuses_a_soup_it_cannot_make_before_training(trained_bert_adapter, tiny_bert_dir, data_dir,
                                                                tmp_path, change, message):
    from emotion_app.train.arguments import parse_train_args
    from emotion_app.train.trainer import train

    partner = tmp_path / "partner"
    shutil.copytree(trained_bert_adapter, partner)
    if "base" in change:
        config = json.loads((partner / "adapter_config.json").read_text())
        (partner / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": change["base"]}))
    if "missing" in change:
        shutil.rmtree(partner)
    out = tmp_path / "out"
    args = quick_train_args(tiny_bert_dir, data_dir, out) + [
        "--soup_neutral_margin", str(change.get("soup_neutral_margin", 0.0))]
    if "soup_neutral_recall" in change:
        args += ["--soup_neutral_recall", str(change["soup_neutral_recall"])]
    if "no_soup" not in change:
        args += ["--soup_with", str(partner), "--soup_weight", str(change.get("soup_weight", 0.5))]
    with pytest.raises(ValueError, match=message):
        train(*parse_train_args(args))
    assert not (out / "checkpoints").exists()  # nothing was trained
