"""The model card of a model with more labels than the six emotions: its Hub figures are six-way."""

from __future__ import annotations

import json

import numpy as np

from emotion_app.analysis.metrics import label_set_metrics
from emotion_app.labels import EMOTIONS, NEUTRAL
from emotion_app.publish.card import model_card

LABELS = (*EMOTIONS, NEUTRAL)


def seven_label_metrics() -> dict:
    """A test split of the six emotions scored by a seven-label model that calls two rows neutral."""
    truth = np.repeat(np.arange(6), 5)
    predicted = truth.copy()
    predicted[[0, 7]] = 6  # neutral: wrong over all labels, and its F1 of 0 drags the macro-F1
    probs = np.full((len(truth), 7), 0.01)
    probs[np.arange(len(truth)), predicted] = 0.9
    probs[[0, 7], truth[[0, 7]]] = 0.05  # the six-way argmax still finds the true emotion
    probs /= probs.sum(axis=1, keepdims=True)
    test = label_set_metrics(truth, probs, LABELS)
    return {"name": "m", "base_model": "sentence-transformers/all-MiniLM-L6-v2", "labels": list(LABELS),
            "test": test, "validation": test}


def test_a_seven_label_card_gives_the_hub_the_six_way_figures():
    metrics = seven_label_metrics()
    card = model_card(metrics)
    front = dict(line.split(": ", 1) for line in card.split("---")[1].strip().splitlines())
    scored = {m["name"]: m["value"] for m in json.loads(front["model-index"])[0]["results"][0]["metrics"]}
    six = metrics["test"]["six_way"]
    assert six["accuracy"] == 1.0 and metrics["test"]["accuracy"] < 1.0
    assert scored == {"Accuracy": 1.0, "Macro F1": round(six["macro_f1"], 4)}
    assert "On the six emotions alone" in card and "6.67% of its rows were called neutral" in card


def test_a_soup_card_states_its_neutral_margin_and_how_it_was_fitted():
    adapters = [{"adapter": "v2", "weight": 0.35, "sha256": "a" * 64, "validation_accuracy": 0.9375},
                {"adapter": "run", "weight": 0.65, "sha256": "b" * 64, "validation_accuracy": None}]
    metrics = {**seven_label_metrics(), "soup": {"adapters": adapters, "rank": 48, "neutral_margin": -0.8164,
                                                 "neutral_margin_fit": {"recall": 0.65, "held_out_neutral_rows": 4000}}}
    assert ("Neutral margin -0.816, fitted on 4,000 held-out rows labelled neutral, 65% of which the mix then "
            "calls neutral: a text is neutral only") in model_card(metrics)
    metrics["soup"] = {"adapters": adapters, "rank": 48, "neutral_margin": -0.75}
    assert "Neutral margin -0.750: a text is neutral only" in model_card(metrics)
    metrics["soup"]["neutral_margin"] = 0.0
    assert "Neutral margin" not in model_card(metrics)


def test_a_soup_card_says_when_its_run_started_from_an_adapter():
    adapters = [{"adapter": "v2", "weight": 0.35, "sha256": "a" * 64, "validation_accuracy": 0.9375},
                {"adapter": "run", "weight": 0.65, "sha256": "b" * 64, "validation_accuracy": None}]
    metrics = {**seven_label_metrics(), "soup": {"adapters": adapters, "rank": 64}}
    assert "--init_from" not in model_card(metrics)
    metrics["training"] = {"lora": {"init_from": "models/v2"}}
    assert "trained starting from `models/v2`'s weights (`--init_from`)" in model_card(metrics)
