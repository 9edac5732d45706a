"""`python -m emotion_app evaluate` on a trained tiny adapter."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from support import REPO, subprocess_env

from emotion_app.cli import evaluate as evaluate_cli
from emotion_app.analysis.metrics import evaluate
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.labels import EMOTIONS


def test_evaluate_command_prints_and_writes_the_metrics(trained_adapter, data_dir, split_rows, tmp_path):
    output = tmp_path / "test-metrics.json"
    done = subprocess.run(
        [sys.executable, "-m", "emotion_app", "evaluate", "--adapter", str(trained_adapter), "--data_dir",
         str(data_dir), "--split", "test", "--output", str(output)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(output.read_text(encoding="utf-8"))
    saved = json.loads((trained_adapter / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == list(EMOTIONS)
    assert metrics["base_model"] == saved["base_model"]
    assert metrics["adapter"] == str(trained_adapter)
    test = metrics["test"]
    assert set(saved["test"]) <= set(test) | {"coverage"}
    assert test["n"] == 24
    matrix = np.array(test["confusion_matrix"])
    assert matrix.sum(axis=1).tolist() == [4] * 6
    assert test["accuracy"] == pytest.approx(np.trace(matrix) / 24)
    # the same figures as the library computes for the same classifier
    classifier = EmotionClassifier.from_adapter(str(trained_adapter), batch_size=64)
    texts = [t for t, _ in split_rows["test"]]
    expected = evaluate(classifier, texts, [label for _, label in split_rows["test"]])
    assert test["confusion_matrix"] == expected["confusion_matrix"]
    assert test["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    # what it prints
    assert f"{trained_adapter} on test:" in done.stdout
    assert f"accuracy {test['accuracy']:.4f}" in done.stdout
    assert f"metrics written to {output}" in done.stdout


def test_evaluate_one_file_with_a_row_limit(trained_adapter, split_rows, tmp_path, capsys):
    path = tmp_path / "mine.csv"
    rows = split_rows["validation"]
    pd.DataFrame({"text": [t for t, _ in rows], "label": [EMOTIONS[label] for _, label in rows]}).to_csv(path, index=False)
    output = tmp_path / "out.json"
    evaluate_cli.main(["--adapter", str(trained_adapter), "--file", str(path), "--split", "validation",
                       "--max_eval_samples", "10", "--output", str(output)])
    metrics = json.loads(output.read_text(encoding="utf-8"))
    assert list(metrics) == ["labels", "base_model", "adapter", "engine", "validation"]
    assert metrics["engine"] == {"runtime": "onnxruntime", "precision": "float32"}  # --int8 not given
    assert metrics["validation"]["n"] == 10
    # the labels give the review threshold; without them, the estimate would have said this
    review, out = metrics["validation"]["review_from_labels"], capsys.readouterr().out
    assert review["rows"] == 10 and review["target"] == 0.97
    assert review["accuracy"] == pytest.approx(metrics["validation"]["accuracy"])
    assert review["summary"] in out and out.count("On your 10 labelled rows") == 1
    if review["threshold"] is not None:
        assert 0 < review["kept_share"] <= 1 and review["kept_accuracy"] >= 0.97
    estimate = metrics["validation"].get("estimate_without_labels")
    if estimate is not None:  # the tiny adapter's detector, when it could be fitted
        assert estimate["rows"] == 10 and "Without the labels: Estimated accuracy" in out


def test_evaluate_errors_are_one_clear_line(tmp_path, capsys):
    code = evaluate_cli.main(["--adapter", str(tmp_path / "missing"), "--file", str(tmp_path / "none.txt"),
                              "--output", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert f"--file {tmp_path / 'none.txt'} does not exist" in err
    assert not (tmp_path / "out.json").exists()
