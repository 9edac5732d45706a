"""The embedded adapter in models/minilm-emotion-lora: loads offline, gets clear cases right
(every label it records, neutral included), and its metrics.json agrees with the confusion matrix
it holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion_app.analysis.metrics import metrics_from_confusion
from emotion_app.artifacts import read_labels
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS, NEUTRAL

pytestmark = pytest.mark.slow

ADAPTER = Path(__file__).resolve().parent.parent / "models" / "minilm-emotion-lora"
LABELS = read_labels(ADAPTER)

# Clear cases written for this test (not from the data set), two per label.
CLEAR = {
    "sadness": ["i feel so lonely and miserable since my dog died", "i feel hopeless and empty inside"],
    "joy": ["i feel so happy and cheerful today", "i am delighted and feel wonderful about the news"],
    "love": ["i feel so loving and tender towards my wife", "i feel passionate and devoted to him"],
    "anger": ["i feel furious and irritated at my rude boss", "i am so angry and annoyed with them"],
    "fear": ["i feel terrified and scared of the dark house", "i feel anxious and afraid about the exam"],
    "surprise": ["i feel amazed and shocked by the sudden news", "i was stunned, what a surprising twist"],
    NEUTRAL: ["Our meeting is moved to 3pm in room B.", "The train to Leeds leaves from platform 4 at 9:15."],
}


@pytest.fixture(scope="module")
def shipped(monkeypatch_module):
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")  # the embedded model must need no network
    return EmotionClassifier.from_adapter(str(ADAPTER), quantize=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_shipped_adapter_records_the_six_emotions_and_neutral():
    assert LABELS == (*EMOTIONS, NEUTRAL)


def test_shipped_adapter_gets_clear_cases_of_every_label(shipped):
    texts = [text for examples in CLEAR.values() for text in examples]
    expected = [label for label, examples in CLEAR.items() for _ in examples]
    probs = shipped.predict_proba(texts)
    assert probs.shape == (len(texts), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert shipped.predict(texts) == expected


def test_shipped_int8_engine_agrees_on_clear_cases(shipped):
    int8 = EmotionClassifier.from_adapter(str(ADAPTER), quantize=True)
    texts = [text for examples in CLEAR.values() for text in examples]
    assert int8.predict(texts) == shipped.predict(texts)


def test_shipped_metrics_agree_with_their_confusion_matrices():
    metrics = json.loads((ADAPTER / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == list(LABELS)
    assert metrics["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    for split in ("validation", "test"):
        stored = metrics[split]
        derived = metrics_from_confusion(np.array(stored["confusion_matrix"]), LABELS)
        assert stored["n"] == 2000 == derived["n"]
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            assert stored[key] == pytest.approx(derived[key], abs=1e-9)
        for label in LABELS:
            assert stored["per_class"][label] == pytest.approx(derived["per_class"][label])
    config = json.loads((ADAPTER / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert not list(ADAPTER.glob("*.bin"))


def test_plain_transformers_and_peft_give_the_engines_probabilities(shipped):
    """What a user gets with AutoModelForSequenceClassification + PeftModel (and the calibration
    temperature in calibration.json) is what the engine gives."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from emotion_app.artifacts import read_temperature
    from emotion_app.engine.adapters import resolve_base

    base = resolve_base("sentence-transformers/all-MiniLM-L6-v2")  # the bundled copy: no network
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(LABELS))
    model = PeftModel.from_pretrained(model, str(ADAPTER)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(ADAPTER))
    texts = [text for examples in CLEAR.values() for text in examples]
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
    probs = torch.softmax(logits / read_temperature(ADAPTER), dim=1).numpy()
    np.testing.assert_allclose(probs, shipped.predict_proba(texts), atol=1e-4)
