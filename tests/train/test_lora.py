"""The LoRA model train.py trains (train/lora.py), started fresh or from an adapter (--init_from)."""

import json

import pytest
import torch
from safetensors.torch import load_file
from support import all_texts, quick_train_args, run_train

from emotion_app.engine.adapters import load_adapter
from emotion_app.labels import EMOTIONS, NEUTRAL
from emotion_app.train.arguments import LoraArguments
from emotion_app.train.lora import build_lora_model

TEXTS = all_texts()[:8]


def _args(adapter, r: int = 4, alpha: int = 8, targets=None) -> LoraArguments:
    # the r, alpha and targets trained_bert_adapter was trained with (tests/support.quick_train_args)
    return LoraArguments(lora_r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                         init_from=str(adapter))


def _logits(model, tokenizer) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits


def test_a_run_from_an_adapter_starts_as_that_adapter(trained_bert_adapter, tiny_bert_dir):
    started = _logits(*build_lora_model(str(tiny_bert_dir), _args(trained_bert_adapter), 32))
    reference = load_adapter(str(trained_bert_adapter), merge=False)
    torch.testing.assert_close(started, _logits(reference.model, reference.tokenizer))


def test_a_seven_label_run_from_a_six_label_adapter_keeps_its_six_rows_and_adds_neutral(trained_bert_adapter,
                                                                                        tiny_bert_dir):
    seven = (*EMOTIONS, NEUTRAL)
    started = _logits(*build_lora_model(str(tiny_bert_dir), _args(trained_bert_adapter), 32, seven))
    reference = load_adapter(str(trained_bert_adapter), merge=False)
    assert started.shape[1] == 7
    torch.testing.assert_close(started[:, :6], _logits(reference.model, reference.tokenizer))


def test_head_rows_go_by_label_name_not_position(trained_bert_adapter, tiny_bert_dir):
    reordered = tuple(reversed(EMOTIONS))
    started = _logits(*build_lora_model(str(tiny_bert_dir), _args(trained_bert_adapter), 32, reordered))
    reference = load_adapter(str(trained_bert_adapter), merge=False)
    torch.testing.assert_close(started, _logits(reference.model, reference.tokenizer).flip(1))


@pytest.mark.parametrize("change, message", [
    ({"r": 8}, r"has LoRA rank 4 and alpha 8; this run asks for 8 and 8\. Pass --lora_r 4 --lora_alpha 8"),
    ({"targets": ["query", "key", "value"]}, "adapts other layers than this run"),
    ({"missing": True}, "--init_from: .* must exist before this run starts"),
])
def test_a_start_that_is_not_that_adapter_is_refused(trained_bert_adapter, tiny_bert_dir, tmp_path, change,
                                                     message):
    adapter = tmp_path / "absent" if change.get("missing") else trained_bert_adapter
    with pytest.raises(ValueError, match=message):
        build_lora_model(str(tiny_bert_dir), _args(adapter, r=change.get("r", 4), targets=change.get("targets")), 32)


def test_an_adapter_with_labels_the_run_lacks_is_refused(seven_label_adapter, tiny_bert_dir):
    with pytest.raises(ValueError, match="has labels neutral that this run's labels .* lack"):
        build_lora_model(str(tiny_bert_dir), _args(seven_label_adapter), 32, EMOTIONS)


def test_train_py_from_an_adapter_without_steps_of_size_0_saves_that_adapter(trained_bert_adapter, tiny_bert_dir,
                                                                              data_dir, tmp_path):
    output = tmp_path / "from-adapter"
    run_train(quick_train_args(tiny_bert_dir, data_dir, output, steps=3) + [
        "--init_from", str(trained_bert_adapter), "--learning_rate", "0"])
    saved, start = (load_file(str(d / "adapter_model.safetensors")) for d in (output, trained_bert_adapter))
    assert saved.keys() == start.keys()
    for key in saved:
        torch.testing.assert_close(saved[key], start[key])
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["training"]["lora"]["init_from"] == str(trained_bert_adapter)
    assert metrics["validation"]["accuracy"] == json.loads(
        (trained_bert_adapter / "metrics.json").read_text())["validation"]["accuracy"]
