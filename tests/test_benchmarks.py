"""The inference benchmark runs end to end on a tiny model (a smoke test: no timing is asserted;
speed targets are checked by running the benchmark itself, see docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import REPO, subprocess_env


def test_bench_inference_runs_and_reports_every_engine(trained_bert_adapter, tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_inference.py", "--adapter", str(trained_bert_adapter), "--synthetic", "40",
         "--naive-rows", "8", "--batch-sizes", "4,16", "--latency-runs", "5", "--no-app", "--output", str(output)],
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
