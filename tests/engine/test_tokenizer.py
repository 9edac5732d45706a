"""The engine's tokenizer without transformers gives transformers' ids, and the engine falls back
to transformers where a tokenizer.json is missing."""

from __future__ import annotations

import shutil

import pytest
from support import REPO, all_texts
from transformers import AutoTokenizer

from emotion_app.engine.adapters import load_engine_tokenizer
from emotion_app.engine.tokenizer import FastTokenizer

EDGE_CASES = ["", " ", "  two  spaces ", "Héllo WÖRLD naïve café", "你好 world", "emoji 😀😀", "İstanbul",
              "ﬁne ligature", "tabs\tand\nnewlines", "word " * 200, "[CLS] [SEP] [PAD] <|endoftext|>"]


@pytest.fixture(params=["tiny_bert_dir", "tiny_gpt2_dir", "shipped"])
def tokenizer_dir(request):
    if request.param == "shipped":
        return REPO / "models" / "minilm-emotion-lora"
    return request.getfixturevalue(request.param)


def test_ids_equal_transformers_with_and_without_truncation(tokenizer_dir):
    reference = AutoTokenizer.from_pretrained(tokenizer_dir)
    fast = FastTokenizer.from_directory(tokenizer_dir)
    texts = all_texts() + EDGE_CASES
    for kwargs in ({}, {"truncation": True, "max_length": 16}, {"truncation": True}):
        assert fast(texts, **kwargs)["input_ids"] == reference(texts, **kwargs)["input_ids"], kwargs
    assert fast(texts[0])["input_ids"] == reference(texts[0])["input_ids"]
    ids = reference(texts[0])["input_ids"]
    assert fast.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    assert (fast.pad_token_id, fast.eos_token_id) == (reference.pad_token_id, reference.eos_token_id)
    assert (fast.model_max_length, fast.padding_side) == (reference.model_max_length, reference.padding_side)


def test_without_tokenizer_json_the_engine_uses_transformers(tiny_bert_dir, tmp_path):
    folder = tmp_path / "slow"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "tokenizer.json").unlink()
    assert FastTokenizer.from_directory(folder) is None
    tokenizer = load_engine_tokenizer(str(folder))
    assert not isinstance(tokenizer, FastTokenizer)
    assert isinstance(load_engine_tokenizer(str(tiny_bert_dir)), FastTokenizer)


def test_a_broken_config_is_reported(tiny_bert_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer_config.json is not valid JSON"):
        FastTokenizer.from_directory(folder)
