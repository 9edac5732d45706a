"""gradio_client against the running app (embedded model): the `predict` and `score_csv` APIs."""

from __future__ import annotations

import pandas as pd
import pytest
from app_server import shared_app

from emotion_app.artifacts import read_labels
from emotion_app.constants import BUNDLED_ADAPTER

gradio_client = pytest.importorskip("gradio_client")
LABELS = read_labels(BUNDLED_ADAPTER)  # the app answers with the labels of the model it serves


@pytest.fixture(scope="module")
def client(request, tmp_path_factory):
    app = shared_app(request.config, tmp_path_factory)
    return gradio_client.Client(app.url, verbose=False, analytics_enabled=False,
                                download_files=str(tmp_path_factory.mktemp("downloads")))


def test_predict_returns_probabilities_by_label(client):
    result = client.predict("i am so happy and excited, this is the best day of my life", api_name="/predict")
    assert set(result) == set(LABELS)
    assert sum(result.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(result, key=result.get) == "joy"
    assert list(result.values()) == sorted(result.values(), reverse=True)


def test_predict_explains_an_empty_text(client):
    with pytest.raises(gradio_client.exceptions.AppError, match="empty"):
        client.predict("   ", api_name="/predict")


def test_score_csv_returns_every_row(client, tmp_path):
    rows = pd.DataFrame({
        "id": [str(i) for i in range(1, 8)],
        "comment": ["i feel so lonely and sad tonight", "i am furious with the way they treated me",
                    "", "this is wonderful, i am so happy", "=HYPERLINK(\"x\")", "i feel scared of the dark",
                    "i adore my husband, he is so loving and sweet"],
    })
    source = tmp_path / "comments.csv"
    rows.to_csv(source, index=False)
    summary, preview, chart, result = client.predict(
        gradio_client.handle_file(str(source)), "", "auto", 0.5, api_name="/score_csv")
    out = pd.read_csv(result, dtype=str, keep_default_na=False)
    assert len(out) == len(rows)
    assert out["id"].tolist() == rows["id"].tolist()
    assert out.loc[0, "emotion"] == "sadness" and out.loc[1, "emotion"] == "anger"
    assert out.loc[2, "emotion"] == "" and out.loc[2, "note"] != ""
    assert out.loc[4, "comment"].startswith("'=")  # neutralised for spreadsheets
    assert {"needs_review", "in_distribution", "ood_score", *[f"p_{label}" for label in LABELS]} <= set(out.columns)
    assert "comment" in summary


CLASSIFY_TEXTS = ["i feel so happy today", "i am terrified of the exam tomorrow", "i miss her so much",
                  "they lied to me and i am furious", "what a surprise, i never expected that", "i love you"]


def test_classify_gives_the_engines_probabilities_in_label_order(client):
    from emotion_app.engine.classifier import EmotionClassifier

    engine = EmotionClassifier.from_adapter(str(BUNDLED_ADAPTER))  # the app's engine: int8 in ONNX Runtime
    for text in CLASSIFY_TEXTS[:3]:
        result = client.predict(text, api_name="/classify")
        details = engine.predict_details([text])
        assert list(result) == [*LABELS, "in_distribution"]  # the shipped adapter has a shift detector
        assert [result[label] for label in LABELS] == pytest.approx(details.probabilities[0].tolist(), abs=1e-6)
        assert result["in_distribution"] == bool(details.in_distribution[0])
    assert "error" in client.predict("   ", api_name="/classify")


def test_concurrent_classify_calls_get_the_sequential_answers(client):
    sequential = [client.predict(text, api_name="/classify") for text in CLASSIFY_TEXTS]
    jobs = [client.submit(text, api_name="/classify") for text in CLASSIFY_TEXTS * 4]  # queued together
    answers = [job.result(timeout=120) for job in jobs]
    assert answers == sequential * 4
