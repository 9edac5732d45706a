"""A short load test against the real app (`python app.py` in a subprocess, tiny adapter):
3 clients for 8 s on /classify (through gradio's HTTP API and through gradio_client) and on the
page's /show (prediction, chart and word importances), no errors, every answer equal to the sequential one, memory stable.
The full 20 clients x 60 s run is `python benchmarks/load_app.py` (figures in docs/performance.md)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from support import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))
import load_app  # noqa: E402

pytestmark = pytest.mark.slow

CLIENTS, SECONDS = 3, 8
MAX_RSS_GROWTH_MB = 150


def test_short_load_run_has_no_errors_and_consistent_answers(tmp_path, trained_adapter):
    process, url = load_app.start_app(str(trained_adapter), tmp_path / "app.log", timeout=240,
                                      env=subprocess_env())
    try:
        started = time.monotonic()
        reports = [load_app.run_load(url, CLIENTS, SECONDS, pid=process.pid, texts=load_app.TEXTS[:6],
                                     endpoint=endpoint, client=client)
                   for endpoint, client in (("classify", "http"), ("classify", "gradio"), ("ui", "http"))]
        elapsed = time.monotonic() - started
        texts = load_app.TEXTS[:4]
        over_http = asyncio.run(load_app.http_sequential_answers(url, texts, "classify"))
        through_client = load_app.sequential_answers(url, texts, "classify")
    finally:
        load_app.stop_app(process)
    assert process.poll() is not None  # the app is gone
    for report in reports:
        assert report.errors == 0, report.error_examples
        assert report.mismatches == 0
        assert report.requests >= CLIENTS  # every client got answers
        assert report.p50_ms <= report.p95_ms <= report.max_ms
        assert report.rss_after_mb - report.rss_before_mb < MAX_RSS_GROWTH_MB
        assert report.server_cpu_s > 0
    # the two clients see the same answers: six probabilities summing to 1 (and the shift flag)
    assert load_app.same_answer(over_http, through_client)
    assert all(abs(sum(v for k, v in answer.items() if k != "in_distribution") - 1) < 1e-5 for answer in over_http)
    assert elapsed < len(reports) * (SECONDS + load_app.PREDICT_TIMEOUT_S) + 60  # bounded: it stops by itself


@pytest.mark.parametrize("url", ["http://127.0.0.1:7860", "http://localhost:1/", "http://[::1]:7860",
                                 "http://127.4.5.6:80"])
def test_loopback_urls_are_accepted(url):
    assert load_app.check_loopback(url).endswith("/")


@pytest.mark.parametrize("url", ["http://10.0.0.5:7860", "http://192.168.1.2", "https://example.com",
                                 "http://0.0.0.0:7860", "ftp://127.0.0.1", "127.0.0.1:7860"])
def test_other_addresses_are_refused(url):
    with pytest.raises(ValueError, match="loopback|http"):
        load_app.check_loopback(url)


def test_answers_compare_labels_in_order_and_probabilities_up_to_noise():
    answer = {"joy": 0.9, "love": 0.1}
    assert load_app.same_answer({"joy": 0.9 + 1e-9, "love": 0.1}, answer)
    assert not load_app.same_answer({"love": 0.1, "joy": 0.9}, answer)
    assert not load_app.same_answer({"joy": 0.8, "love": 0.2}, answer)


def test_bad_usage_exits_2(capsys):
    assert load_app.main(["--url", "http://10.1.2.3:7860", "--seconds", "1"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert load_app.main(["--clients", "0"]) == 2
