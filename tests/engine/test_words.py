"""The word table (engine/words.py): which words it holds, that a lookup gives what running the
word gives, that explanations read it without depending on what was asked before, and that the
app's copy is read from the cache or built there in the background."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from support import all_texts

from emotion_app.analysis.explain import explain
from emotion_app.engine import words
from emotion_app.engine.classifier import EmotionClassifier, softmax


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("EMOTION_APP_CACHE", str(directory))
    return directory


@pytest.fixture
def fp32(trained_bert_adapter, cache) -> EmotionClassifier:
    """The ONNX engine in fp32: a row's answer does not depend on its batch (int8 scales per batch)."""
    return EmotionClassifier.from_adapter(str(trained_bert_adapter), quantize=False, runtime="onnxruntime")


def test_the_table_holds_the_single_token_words_and_their_logits(fp32):
    vocabulary, sequences = words.single_token_words(fp32.tokenizer, fp32.model.config.vocab_size)
    assert {"happy", "sad", "i"} <= set(vocabulary)
    assert all(len(seq) == 3 and seq[0] == fp32.tokenizer("")["input_ids"][0] for seq in sequences)
    table = words.build(fp32)
    assert len(table) == len(vocabulary)
    np.testing.assert_allclose(table.logits, fp32.logits(vocabulary), atol=1e-5)
    assert table.rows(fp32.tokenizer(["sad", "happy!", "sad"])["input_ids"]).tolist()[1] == -1  # two tokens


def test_predict_words_looks_words_up_and_runs_the_others(fp32, monkeypatch):
    fp32.word_table = words.build(fp32)
    asked = ["happy", "Sad", "happy!", "so", "today?"]  # "Sad": the uncased tokenizer reads "sad"
    ran = []
    logits = fp32.logits
    monkeypatch.setattr(fp32, "logits", lambda texts, progress=None: ran.append(list(texts)) or logits(texts))
    got = fp32.predict_words(asked)
    assert ran == [["happy!", "today?"]]  # only what the table lacks went through the model
    np.testing.assert_allclose(got, softmax(logits(asked) / fp32.temperature), atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_explanations_with_the_table_equal_those_without_and_ignore_earlier_requests(trained_bert_adapter, cache):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))  # int8, as the app serves it
    text = "i felt so happy when i read the letter today!"
    without = explain(engine, text)
    engine.word_table = words.build(engine)
    first = explain(engine, text)
    assert [p for p, _ in first["attributions"]] == [p for p, _ in without["attributions"]]
    assert first["probabilities"] == without["probabilities"]
    # int8 rounds the words in the table's batches, not the text's: close, not equal
    np.testing.assert_allclose([s for _, s in first["attributions"]], [s for _, s in without["attributions"]],
                               atol=0.15)
    for other in all_texts()[:12]:  # other visitors' texts in between change nothing
        explain(engine, other)
    assert explain(engine, text) == first


def test_the_app_reads_the_table_from_the_cache_or_builds_it_there(trained_bert_adapter, cache, caplog):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    engine.share_cores_by_batch()
    path = words.table_path(engine)
    assert path.parent == cache and not path.exists()
    with caplog.at_level(logging.INFO, logger="emotion_app.engine.words"):
        thread = words.attach(engine)
        thread.join(timeout=120)
    assert path.is_file() and engine.word_table is not None and "word table:" in caplog.text
    built = engine.word_table
    again = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    assert words.attach(again) is None  # read, not built
    np.testing.assert_array_equal(again.word_table.logits, built.logits)
    np.testing.assert_array_equal(again.word_table.ids, built.ids)
    path.write_bytes(b"not a table")
    broken = EmotionClassifier.from_adapter(str(trained_bert_adapter))
    with caplog.at_level(logging.WARNING, logger="emotion_app.engine.words"):
        words.attach(broken).join(timeout=120)
    assert "ignoring the unreadable word table" in caplog.text
    np.testing.assert_array_equal(words.WordTable.load(path).logits, built.logits)  # rebuilt the same


def test_engines_without_a_cache_file_get_no_table(trained_bert_adapter, cache):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), runtime="torch")
    assert words.table_path(engine) is None and words.attach(engine) is None and engine.word_table is None


def test_a_malformed_table_is_refused():
    with pytest.raises(ValueError, match=r"needs ids \[K, L\] and finite logits \[K, labels\]; found ids \(2, 3\) "
                                         r"and logits \(3, 5\). Delete the file"):
        words.WordTable(np.zeros((2, 3)), np.zeros((3, 5)))


def test_a_read_only_cache_keeps_the_table_in_memory(trained_bert_adapter, cache, monkeypatch, caplog):
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter))

    def refuse(self, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(words.WordTable, "save", refuse)
    with caplog.at_level(logging.WARNING, logger="emotion_app.engine.words"):
        words.attach(engine).join(timeout=120)
    assert engine.word_table is not None and not words.table_path(engine).exists()
    assert "words built, not saved to" in caplog.text and "Permission denied" in caplog.text


def test_a_gpt2_base_gets_its_words_without_special_tokens(trained_gpt2_adapter, cache):
    engine = EmotionClassifier.from_adapter(str(trained_gpt2_adapter), runtime="onnxruntime")
    table = words.build(engine)
    assert len(table) > 0 and table.ids.shape[1] == 1  # GPT-2 adds no special tokens: a word is one id
    vocabulary, _ = words.single_token_words(engine.tokenizer, engine.model.config.vocab_size)
    assert not any(word[0].isspace() for word in vocabulary)  # "Ġword" (a word after a space) is not read alone
    engine.word_table = table
    asked = vocabulary[:5]
    np.testing.assert_allclose(engine.predict_words(asked), engine.predict_proba(asked), atol=1e-5)
