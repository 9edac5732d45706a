"""The inference engine: same answers as the unmerged PEFT model, in input order, fp32 and int8,
in torch and in ONNX Runtime (whose cache has tests of its own in test_onnx.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from support import all_texts
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from emotion_app.artifacts import read_temperature
from emotion_app.engine.adapters import load_adapter
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.engine.int8 import int8_layer_names, quantize_int8
from emotion_app.engine.threads import THREADS_BY_BATCH, default_num_threads, set_num_threads
from emotion_app.labels import EMOTIONS


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """from_adapter sets torch's process-wide thread count; give the next test what it had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def mixed_texts() -> list[str]:
    """Short, long and repeated texts in a shuffled order, so batches cross length groups."""
    texts = all_texts()[:30]
    texts += [" ".join([texts[i]] * (1 + i % 4)) for i in range(12)]
    texts += ["happy", "i", texts[0], texts[0]]
    random.Random(3).shuffle(texts)
    return texts


def unmerged_logits(adapter, texts: list[str]) -> np.ndarray:
    """The PEFT model as trained (LoRA not merged), one text at a time: no padding involved."""
    loaded = load_adapter(str(adapter), merge=False)
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = loaded.tokenizer([text], truncation=True, return_tensors="pt")
            rows.append(loaded.model(**encoded).logits[0].numpy())
    return np.stack(rows)


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
@pytest.mark.parametrize("adapter_fixture", ["trained_bert_adapter", "trained_gpt2_adapter"])
def test_engine_matches_the_unmerged_peft_model(adapter_fixture, runtime, request):
    adapter = request.getfixturevalue(adapter_fixture)
    texts = mixed_texts()
    engine = EmotionClassifier.from_adapter(str(adapter), batch_size=4, quantize=False, runtime=runtime)
    assert engine.info["runtime"] == runtime
    want = unmerged_logits(adapter, texts)
    assert engine.logits(texts).shape == (len(texts), len(EMOTIONS))
    np.testing.assert_allclose(engine.logits(texts), want, atol=1e-5)
    # probabilities: the adapter's calibration temperature (train.py fits one) on the same logits
    want = softmax(want / engine.temperature)
    np.testing.assert_allclose(engine.predict_proba(texts), want, atol=1e-6)
    assert engine.predict(texts) == [EMOTIONS[i] for i in want.argmax(axis=1)]


def test_the_adapter_changes_the_answers(trained_bert_adapter, tiny_bert_dir):
    """Guards the test above: merging must matter, i.e. base-only answers differ."""
    loaded = load_adapter(str(trained_bert_adapter), merge=False)
    texts = all_texts()[:8]
    with loaded.model.disable_adapter(), torch.inference_mode():
        encoded = loaded.tokenizer(texts, padding=True, return_tensors="pt")
        base_only = loaded.model(**encoded).logits.numpy()
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    assert np.abs(engine.logits(texts) - base_only).max() > 1e-3


def test_order_and_values_do_not_depend_on_batch_size(trained_bert_adapter):
    texts = mixed_texts()
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False, batch_size=1)
    one_by_one = engine.logits(texts)
    for batch_size in (3, 7, 1000):
        engine.batch_size = batch_size
        np.testing.assert_allclose(engine.logits(texts), one_by_one, atol=1e-5)
    permutation = np.random.default_rng(0).permutation(len(texts))
    np.testing.assert_allclose(engine.logits([texts[i] for i in permutation]), one_by_one[permutation], atol=1e-5)


def test_long_texts_are_truncated_to_max_length(trained_bert_adapter):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    long_text = " ".join(all_texts()) * 3  # far longer than the tiny model's 64 positions
    assert len(engine.tokenizer(long_text)["input_ids"]) > 64
    kept = engine.tokenizer.decode(engine.tokenizer(long_text, truncation=True, max_length=engine.max_length)
                                   ["input_ids"], skip_special_tokens=True)
    np.testing.assert_allclose(engine.logits([long_text, "i feel happy"])[0], engine.logits([kept])[0], atol=1e-5)
    assert engine.max_length <= 64


def test_empty_input_and_empty_text(trained_gpt2_adapter):
    engine = EmotionClassifier.from_adapter(str(trained_gpt2_adapter), quantize=False)
    assert engine.predict_proba([]).shape == (0, len(EMOTIONS))
    assert engine.tokenizer("")["input_ids"] == []  # GPT-2 turns "" into no tokens at all
    probs = engine.predict_proba(["", "i feel so happy today", ""])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs[0], probs[2])


def assert_close_to_fp32(l32: np.ndarray, l8: np.ndarray) -> None:
    error = np.abs(l32 - l8).max()
    assert 0 < error < 0.05 * np.abs(l32).max()  # a different (int8) model, close to fp32
    # argmax agrees wherever fp32's top-2 logit gap is larger than twice the int8 error
    top2 = np.sort(l32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * error
    assert clear.sum() >= 5
    assert (l32.argmax(1) == l8.argmax(1))[clear].all()


def test_torch_int8_is_close_to_fp32_and_keeps_the_head_in_fp32(trained_bert_adapter):
    texts = all_texts()
    fp32 = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False, runtime="torch")
    int8 = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=True, runtime="torch")
    assert (fp32.info["precision"], int8.info["precision"]) == ("float32", "int8")
    quantized = [m for m in int8.model.modules() if isinstance(m, DynamicLinear)]
    # 2 layers x (q, k, v, attention out, intermediate) + layer 1's down-projection; layer 0's
    # down-projection (first half of the layers) and the pooler stay fp32 (inference._keep_fp32)
    assert len(quantized) == 2 * 5 + 1
    assert type(int8.model.bert.encoder.layer[0].output.dense) is torch.nn.Linear
    assert isinstance(int8.model.bert.encoder.layer[1].output.dense, DynamicLinear)
    assert type(int8.model.classifier) is torch.nn.Linear
    assert not any(isinstance(m, DynamicLinear) for m in fp32.model.modules())
    assert_close_to_fp32(fp32.logits(texts), int8.logits(texts))


def test_onnx_int8_quantizes_the_same_layers_as_torch(trained_bert_adapter):
    import onnx

    texts = all_texts()
    fp32 = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    int8 = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=True)
    assert (fp32.info["runtime"], int8.info["runtime"]) == ("onnxruntime", "onnxruntime")
    assert (fp32.info["precision"], int8.info["precision"]) == ("float32", "int8")
    loaded = load_adapter(str(trained_bert_adapter), merge=True)
    assert list(int8.model.int8_layers) == sorted(int8_layer_names(loaded.model))
    assert "bert.encoder.layer.0.output.dense" not in int8.model.int8_layers
    assert "bert.encoder.layer.1.output.dense" in int8.model.int8_layers
    graph = onnx.load(str(int8.model.path)).graph
    # one integer MatMul per int8 layer; the attention products, pooler and head stay float
    assert sum(node.op_type == "MatMulInteger" for node in graph.node) == 2 * 5 + 1
    assert not any(node.op_type == "MatMulInteger" for node in onnx.load(str(fp32.model.path)).graph.node)
    assert_close_to_fp32(fp32.logits(texts), int8.logits(texts))


def test_auto_means_int8_in_onnx_runtime_on_cpu(trained_bert_adapter):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), device="cpu")
    assert (engine.info["precision"], engine.info["runtime"], engine.info["device"]) == ("int8", "onnxruntime", "cpu")


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_int8_leaves_models_without_linear_layers_alone(trained_gpt2_adapter, runtime):
    """GPT-2's layers are Conv1D: nothing to quantize, and the engine says fp32."""
    engine = EmotionClassifier.from_adapter(str(trained_gpt2_adapter), quantize=True, runtime=runtime)
    assert engine.info["precision"] == "float32"
    if runtime == "torch":
        assert quantize_int8(engine.model) == []
    else:
        assert engine.model.int8_layers == ()


def test_set_num_threads():
    assert set_num_threads(1) == 1
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="num_threads must be a whole number"):
        set_num_threads(0)
    with pytest.raises(ValueError, match="num_threads must be a whole number"):
        set_num_threads(True)


def test_default_num_threads_follows_omp_then_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_num_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os

    assert default_num_threads() == len(os.sched_getaffinity(0))


def test_from_adapter_sets_the_thread_count(trained_bert_adapter):
    before = torch.get_num_threads()
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=1)
    assert engine.info["num_threads"] == 1
    assert engine.model.num_threads == 1  # ONNX Runtime's session
    assert torch.get_num_threads() == before  # torch's process-wide setting is left alone
    torch_engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=1, runtime="torch")
    assert torch_engine.info["num_threads"] == torch.get_num_threads() == 1
    torch.set_num_threads(before)
    engine.set_num_threads(2)
    assert engine.model.num_threads == 2
    assert engine.predict(["i feel so happy today"]) == EmotionClassifier.from_adapter(
        str(trained_bert_adapter), num_threads=1).predict(["i feel so happy today"])


def test_the_by_batch_thread_policy_is_an_option_of_loading(trained_bert_adapter):
    from emotion_app.engine.loading import load_model

    served = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=2, thread_policy=THREADS_BY_BATCH)
    assert served.model.num_threads == 1 and served.batch_workers == default_num_threads()  # one batch per core
    plain = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=2)
    assert plain.model.num_threads == 2 and plain.batch_workers == 1
    texts = all_texts()
    np.testing.assert_allclose(served.logits(texts), plain.logits(texts), atol=1e-5)
    torch_engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), runtime="torch", num_threads=1,
                                                  thread_policy=THREADS_BY_BATCH)
    assert torch_engine.batch_workers == 1 and torch.get_num_threads() == 1  # torch is left as loaded
    loaded = load_model(str(trained_bert_adapter), num_threads=2)  # what from_adapter builds on
    assert loaded.info == plain.info and loaded.source.labels == plain.labels
    with pytest.raises(ValueError, match="thread_policy must be one of 'per_run', 'by_batch', found 'server'"):
        EmotionClassifier.from_adapter(str(trained_bert_adapter), thread_policy="server")


def test_temperature_from_calibration_file(trained_bert_adapter, tmp_path):
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(trained_bert_adapter, adapter)
    (adapter / "calibration.json").write_text(json.dumps({"temperature": 2.5}), encoding="utf-8")
    engine = EmotionClassifier.from_adapter(str(adapter), quantize=False)
    texts = all_texts()[:5]
    assert engine.temperature == 2.5
    np.testing.assert_allclose(engine.predict_proba(texts), softmax(engine.logits(texts) / 2.5), rtol=1e-6)
    (adapter / "calibration.json").write_text('{"temperature": -1}', encoding="utf-8")
    with pytest.raises(ValueError, match="expected a positive number"):
        read_temperature(adapter)


@pytest.mark.parametrize("texts, message", [
    ("i feel happy", "found a single string"),
    (["fine", 3], r"texts\[1\] is int"),
    (["fine", None], r"texts\[1\] is NoneType"),
])
def test_bad_texts_are_rejected(trained_bert_adapter, texts, message):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    with pytest.raises(ValueError, match=message):
        engine.predict_proba(texts)


@pytest.mark.parametrize("kwargs, message", [
    ({"quantize": "yes"}, 'quantize must be "auto", True or False'),
    ({"quantize": True, "device": "meta"}, "runs on CPU only"),
    ({"runtime": "tensorflow"}, "runtime must be one of 'auto', 'onnxruntime', 'torch'; found 'tensorflow'"),
    ({"runtime": "onnxruntime", "device": "meta", "quantize": False}, "runs on CPU here"),
    ({"device": "no-such-device"}, "is not a torch device"),
    ({"num_threads": -2}, "num_threads must be a whole number"),
    ({"batch_size": 0}, "batch_size must be a whole number"),
])
def test_bad_options_are_rejected(trained_bert_adapter, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmotionClassifier.from_adapter(str(trained_bert_adapter), **kwargs)


def test_bad_constructor_values_are_rejected(trained_bert_adapter):
    loaded = load_adapter(str(trained_bert_adapter))
    for kwargs, message in [({"batch_size": 2.5}, "batch_size"), ({"temperature": 0.0}, "temperature"),
                            ({"max_length": 1}, "max_length")]:
        with pytest.raises(ValueError, match=message):
            EmotionClassifier(loaded.model, loaded.tokenizer, **kwargs)


def test_length_batches_cover_every_row_once_and_pad_no_row_past_twice_its_length():
    from emotion_app.engine.classifier import length_batches

    lengths = np.random.default_rng(0).integers(1, 70, size=500)
    batches = length_batches(lengths, 32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    assert all(1 <= len(b) <= 32 for b in batches)
    assert all(lengths[b].max() <= 2 * lengths[b].min() for b in batches)
    assert all(lengths[a].max() <= lengths[b].min() for a, b in zip(batches, batches[1:]))
    # an explanation's call: the single words do not share a batch with the sentence's variants
    mixed = np.array([14, 3, 3, 13, 13, 3, 4])
    assert [sorted(lengths_of.tolist()) for lengths_of in (mixed[b] for b in length_batches(mixed, 32))] == \
        [[3, 3, 3, 4], [13, 13, 14]]
    assert length_batches(np.array([], dtype=np.int64), 8) == []
