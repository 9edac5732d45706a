"""The ONNX Runtime cache: built once, reused, keyed by the weights, safe when it cannot be written,
picklable for Ray, and the torch fallback of runtime="auto"."""

from __future__ import annotations

import logging
import pickle
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from support import all_texts, subprocess_env

from emotion_app.engine import adapters as modeling
from emotion_app.engine import onnx as onnx_runtime
from emotion_app.engine.classifier import EmotionClassifier, length_batches
from emotion_app.engine.int8 import int8_layer_names
from emotion_app.engine.loading import prepare_onnx
from emotion_app.engine.threads import default_num_threads


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("EMOTION_APP_CACHE", str(directory))
    return directory


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def no_export(*args, **kwargs):
    raise RuntimeError("export called")


def test_the_second_load_reuses_the_cached_model_without_the_torch_model(trained_bert_adapter, cache, monkeypatch):
    first = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    key = first.model.path.stem
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}.json", f"{key}.lock", f"{key}.onnx"]
    monkeypatch.setattr(onnx_runtime, "export", no_export)
    monkeypatch.setattr(modeling, "load_adapter", no_export)  # the base is a local folder: key from files
    second = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert second.model.path == first.model.path
    assert second.model.int8_layers == first.model.int8_layers and second.info == first.info
    assert second.max_length == first.max_length
    texts = all_texts()
    np.testing.assert_array_equal(second.logits(texts), first.logits(texts))


def test_a_cached_start_imports_neither_torch_nor_transformers_nor_peft(trained_bert_adapter, cache):
    want = EmotionClassifier.from_adapter(str(trained_bert_adapter)).predict(["i feel so happy today"])  # fills it
    code = ("import sys; from emotion_app.engine.classifier import EmotionClassifier; "
            f"e = EmotionClassifier.from_adapter({str(trained_bert_adapter)!r}); "
            "print(e.info['runtime'], *e.predict(['i feel so happy today']), "
            "*(name in sys.modules for name in ('torch', 'transformers', 'peft')))")
    result = subprocess.run([sys.executable, "-c", code], env=dict(subprocess_env(), EMOTION_APP_CACHE=str(cache)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["onnxruntime", *want, "False", "False", "False"]


def test_fp32_int8_and_changed_weights_get_their_own_files(trained_bert_adapter, cache, tmp_path):
    int8 = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    fp32 = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    changed = tmp_path / "changed"
    shutil.copytree(trained_bert_adapter, changed)
    weights = load_file(changed / "adapter_model.safetensors")
    head = next(name for name in weights if "classifier" in name and name.endswith("bias"))
    weights[head] = weights[head] + 1.0
    save_file(weights, changed / "adapter_model.safetensors")
    other = EmotionClassifier.from_adapter(str(changed))
    assert len({int8.model.path, fp32.model.path, other.model.path}) == 3
    assert len(list(cache.glob("*.onnx"))) == 3
    texts = all_texts()[:8]
    np.testing.assert_allclose(other.logits(texts), int8.logits(texts) + 1.0, atol=1e-4)


def test_an_unwritable_cache_falls_back_to_a_temporary_folder(trained_bert_adapter, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMOTION_APP_CACHE", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="emotion_app.engine.onnx"):
        engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert engine.info["runtime"] == "onnxruntime"
    assert engine.model.path.is_file() and blocker not in engine.model.path.parents
    assert "cannot write the ONNX cache" in caplog.text and "EMOTION_APP_CACHE" in caplog.text


def test_the_engine_pickles_with_its_model_bytes(trained_bert_adapter, cache):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    texts = all_texts()
    want = engine.logits(texts)
    payload = pickle.dumps(engine)
    engine.model.path.unlink()  # e.g. a Ray worker on another machine: only the bytes travel
    copy = pickle.loads(payload)
    np.testing.assert_array_equal(copy.logits(texts), want)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(copy)).logits(texts), want)


def test_a_server_runs_one_thread_per_run_and_batches_side_by_side_with_the_same_answers(trained_bert_adapter, cache):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=2, batch_size=2)
    texts = all_texts()
    want = engine.logits(texts)
    engine.share_cores_by_batch()  # what app.py does
    assert engine.model._session is None  # a new thread count opens a new session
    assert engine.batch_workers == default_num_threads()
    engine.set_batch_workers(1)
    serial = engine.logits(texts)
    assert engine.model._session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(serial, want, atol=1e-5)  # one thread or two: the same sums, maybe reordered
    engine.set_batch_workers(3)
    done = []
    side_by_side = engine.logits(texts, progress=lambda d, total: done.append(d))
    np.testing.assert_array_equal(side_by_side, serial)  # the same session, batches at once
    assert done == sorted(done) and done[-1] == len(texts)  # progress still counts up, batch by batch
    assert len(done) == len(length_batches(np.array([len(t) for t in engine.tokenizer(texts)["input_ids"]]), 2))
    with pytest.raises(ValueError, match="workers must be a whole number of at least 1, found 0"):
        engine.set_batch_workers(0)


def test_batches_side_by_side_stop_when_the_caller_stops(trained_bert_adapter, cache, monkeypatch):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), batch_size=1)
    engine.share_cores_by_batch()
    engine.set_batch_workers(2)
    texts = all_texts()
    ran = []
    forward = engine._forward
    monkeypatch.setattr(engine, "_forward", lambda *args, **kwargs: ran.append(1) or forward(*args, **kwargs))

    def cancel(done, total):
        raise KeyboardInterrupt("cancelled")  # as a stopped job's progress callback does

    with pytest.raises(KeyboardInterrupt):
        engine.logits(texts, progress=cancel)
    assert 1 <= len(ran) < len(texts) // 2  # the queued batches were dropped, not run


def test_auto_falls_back_to_torch_when_the_export_fails(trained_bert_adapter, cache, monkeypatch, caplog):
    monkeypatch.setattr(onnx_runtime, "export", no_export)
    with caplog.at_level(logging.WARNING, logger="emotion_app.engine.loading"):
        engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert (engine.info["runtime"], engine.info["precision"]) == ("torch", "int8")
    assert "ONNX Runtime could not take BertForSequenceClassification (export called)" in caplog.text
    assert not list(cache.glob("*.onnx"))
    with pytest.raises(RuntimeError, match="export called"):
        EmotionClassifier.from_adapter(str(trained_bert_adapter), runtime="onnxruntime")


def test_missing_onnxruntime(trained_bert_adapter, monkeypatch, caplog):
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    with pytest.raises(ImportError, match="needs onnxruntime and onnx: pip install"):
        EmotionClassifier.from_adapter(str(trained_bert_adapter), runtime="onnxruntime")
    with caplog.at_level(logging.WARNING, logger="emotion_app.engine.loading"):
        engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert engine.info["runtime"] == "torch"
    assert "onnxruntime is not installed" in caplog.text


def test_a_load_waits_for_another_build_of_the_same_model_then_reads_it(trained_bert_adapter, cache, monkeypatch):
    adapter = modeling.load_adapter(str(trained_bert_adapter))
    key = onnx_runtime.source_key(trained_bert_adapter, adapter.base_model, int8=True)
    monkeypatch.setattr(modeling, "load_adapter", no_export)  # the waiting load must not build it again
    loaded = {}
    waiting = threading.Thread(target=lambda: loaded.update(engine=EmotionClassifier.from_adapter(
        str(trained_bert_adapter))))
    with onnx_runtime.build_lock(key):  # as the app's background build holds it
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not list(cache.glob("*.onnx"))
        onnx_runtime.onnx_model(adapter.model, int8_layer_names(adapter.model), 1, key)
    waiting.join(timeout=120)
    assert loaded["engine"].model.path == cache / f"{key}.onnx"
    assert loaded["engine"].info["precision"] == "int8"


def test_prepare_onnx_fills_the_cache_that_from_adapter_reads(trained_bert_adapter, cache, monkeypatch):
    assert not prepare_onnx(str(trained_bert_adapter), runtime="torch")
    assert not cache.exists() or not list(cache.glob("*.onnx"))
    assert prepare_onnx(str(trained_bert_adapter), quantize=False)
    [built] = cache.glob("*.onnx")
    monkeypatch.setattr(modeling, "load_adapter", no_export)
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False)
    assert engine.model.path == built and engine.info["precision"] == "float32"


def test_the_quantizer_adds_nothing_to_the_logs(trained_bert_adapter, cache, caplog):
    with caplog.at_level(logging.INFO):
        EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert "ONNX Runtime: exported BertForSequenceClassification" in caplog.text
    assert [record.getMessage() for record in caplog.records if record.name == "root"] == []


def test_the_key_reads_versions_from_metadata_or_from_the_module(monkeypatch):
    import importlib.metadata

    import onnxruntime

    real = importlib.metadata.version
    assert onnx_runtime._version("onnxruntime") == real("onnxruntime")

    def renamed(name):  # e.g. onnxruntime installed as onnxruntime-gpu
        if name == "onnxruntime":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", renamed)
    assert onnx_runtime._version("onnxruntime") == onnxruntime.__version__
