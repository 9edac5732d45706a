"""The benchmarks run end to end on a tiny model (smoke tests: no timing is asserted; speed targets are
checked by running the benchmark itself, see docs/performance.md), and every benchmark and experiment
script starts from a plain checkout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import REPO, subprocess_env

SCRIPTS = sorted(p.relative_to(REPO).as_posix() for folder in ("benchmarks", "experiments")
                 for p in (REPO / folder).glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_imports_from_a_plain_checkout(script):
    """`python benchmarks/<name>.py` from the repository root, without PYTHONPATH or an installed package:
    the script's own folder is all Python puts on the path, and its set-up (_common.py) must find the
    rest. The module is run up to its `if __name__ == "__main__"` (imports and definitions only)."""
    folder = str(REPO / script.rsplit("/", 1)[0])
    code = f"import runpy, sys; sys.path[0] = {folder!r}; runpy.run_path({script!r}, run_name='imported')"
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"{script} does not start from a plain checkout:\n{result.stderr[-3000:]}"


def test_bench_inference_runs_and_reports_every_engine(trained_bert_adapter, seven_label_adapter, tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_inference.py", "--adapter", str(trained_bert_adapter), "--synthetic", "40",
         "--naive-rows", "8", "--batch-sizes", "4,16", "--latency-runs", "5", "--no-app", "--output", str(output),
         "--against", str(seven_label_adapter), "--against-rounds", "3"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert summary["default_engine"] == "onnxruntime-int8"
    assert set(summary["engines"]) == {"onnxruntime-int8", "onnxruntime-fp32", "torch-int8", "torch-fp32"}
    for name, row in summary["engines"].items():
        assert row["best_batch_size"] in (4, 16)
        assert row["rows_per_s"] == max(row["sweep"].values())
        assert row["ratio"] == row["rows_per_s"] / summary["naive"]["rows_per_s"]
    assert summary["ratio"] == summary["engines"]["onnxruntime-int8"]["ratio"]
    assert set(summary["targets"]) == {"ratio", "p50_ms"}
    assert "| onnxruntime-int8 (default), batch" in result.stdout
    against = summary["against"]
    assert against["adapter"] == str(seven_label_adapter) and against["rounds"] == 3
    assert len(against["this_rows_per_s"]) == len(against["other_rows_per_s"]) == 3
    assert against["ratio"] == sum(against["this_rows_per_s"]) / sum(against["other_rows_per_s"])


def test_bench_scoring_runs_the_cli_sweep_against_the_naive_pipeline(trained_bert_adapter, data_dir, tmp_path):
    output = tmp_path / "scoring.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_scoring.py", "--adapter", str(trained_bert_adapter), "--data_dir",
         str(data_dir), "--rows", "40", "--naive-rows", "5", "--chunk-rows", "16,40", "--rounds", "2",
         "--output", str(output)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert [r["chunk_rows"] for r in summary["cli"]] == [16, 40]
    assert summary["rounds"] == 2 and all(len(r["per_round"]) == 2 for r in summary["cli"])
    assert summary["cli_best"]["rows_per_s"] == max(r["rows_per_s"] for r in summary["cli"])
    assert len(summary["ratio_per_round"]) == 2 and len(summary["batch_tab"]["per_round"]) == 2
    assert summary["batch_tab"]["share_of_cli"] > 0
    assert "| CLI end to end, --chunk_rows 40 |" in result.stdout and "| Batch tab (/score_csv)" in result.stdout


def test_bench_model_reports_each_run_and_the_spread(trained_bert_adapter, data_dir, tmp_path):
    output = tmp_path / "model.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_model.py", "--adapters", str(trained_bert_adapter), str(trained_bert_adapter),
         "--real", str(data_dir / "test.txt"), "--output", str(output)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    metrics = json.loads((trained_bert_adapter / "metrics.json").read_text())
    run = report["runs"][0]
    assert run["test_accuracy"] == metrics["test"]["accuracy"]
    # The fp32 model on the training run's own test file gives the figure train.py measured.
    assert abs(run["real_fp32_accuracy"] - metrics["test"]["accuracy"]) < 1e-9
    assert 0 <= run["real_engine_accuracy"] <= 1
    assert report["summary"]["test_accuracy"] == {"mean": round(metrics["test"]["accuracy"], 4), "sd": 0.0,
                                                  "min": metrics["test"]["accuracy"],
                                                  "max": metrics["test"]["accuracy"]}
    assert "| mean ± sd |" in result.stdout


def test_bench_model_refuses_a_directory_without_metrics(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/bench_model.py", "--adapters", str(tmp_path)],
                            cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "has no metrics.json" in result.stderr


def test_bench_explain_reports_the_top_word_of_every_sentence(trained_bert_adapter, tmp_path):
    output = tmp_path / "explain.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_explain.py", "--adapters", str(trained_bert_adapter),
                             "--output", str(output)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_explain import SENTENCES, is_content_word
    finally:
        sys.path.pop(0)
    [report] = json.loads(output.read_text())
    assert [text for text, _, _ in report["rows"]] == list(SENTENCES)
    for text, _, word in report["rows"]:
        assert word in text
    emotional = [word for _, label, word in report["rows"] if label != "neutral"]  # a six-label model: all
    assert report["emotional_rows"] == len(emotional) == len(SENTENCES)
    assert report["share_content_top_word"] == sum(map(is_content_word, emotional)) / len(emotional)
    assert [is_content_word(w) for w in ("the", "The,", "don't", "heating.", "STILL", "unbelievable")] == \
        [False, False, False, True, True, True]


def test_isear_style_files_are_read_against_a_models_labels(tmp_path, monkeypatch):
    """benchmarks/_common.rows_of_labels, which bench_real_text, bench_trust and bench_adapt read
    ISEAR with: the rows of the model's labels (any case, or ids) in file order, the others counted."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from _common import rows_of_labels

    pool = tmp_path / "isear.csv"
    pool.write_text("text,label\nmy exam went well,joy\nthey lied to me,Guilt\nthe dog growled,FEAR\n"
                    "i felt ashamed,shame\nhe left,0\nmore guilt,guilt\n", encoding="utf-8")
    rows, aside = rows_of_labels(pool, ("sadness", "joy", "love", "anger", "fear", "surprise"))
    assert rows.texts == ["my exam went well", "the dog growled", "he left"]
    assert rows.cells == ["joy", "FEAR", "0"] and len(rows.places) == 3
    assert aside == {"guilt": 2, "shame": 1}
