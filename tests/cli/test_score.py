"""`python -m emotion_app score`: streaming, row order, memory, formats, exit codes.

The streaming and exit-code tests inject a fast fake classifier (score_file/main take one), so they
are about the CLI and not about model speed; one test runs the real command on a tiny adapter.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support import REPO, FakePredictor, peaked, subprocess_env

from emotion_app.cli.score import main
from emotion_app.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_OUTPUT, CommandError
from emotion_app.labels import EMOTIONS
from emotion_app.scoring import score_file


def row_numbers(interrupt_after: int | None = None) -> FakePredictor:
    """Texts look like 'row 17: ...'; row i gets label i % 6 with probability 0.75. With
    `interrupt_after`, the calls after that many raise KeyboardInterrupt (Ctrl-C)."""
    def rows(texts: list[str]) -> np.ndarray:
        if interrupt_after is not None and predictor.n_calls > interrupt_after:
            raise KeyboardInterrupt
        return peaked([int(text[4:text.index(":")]) % len(EMOTIONS) for text in texts], 0.75)

    predictor = FakePredictor(rows, record=False)
    return predictor


def write_rows(path, n: int, header: str = "id,text,gold\n") -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        for i in range(n):
            handle.write(f'{i},"row {i}: some words, and a comma",{EMOTIONS[(i + 1) % 6]}\n')


def read_csv(path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_streams_every_row_in_order_with_the_output_columns(tmp_path, capsys):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 2500)
    code = main([str(source), "-o", str(target), "--chunk-rows", "300", "--threshold", "0.8"],
                classifier=row_numbers())
    assert code == EXIT_OK
    table = read_csv(target)
    assert table[0] == ["id", "text", "gold", "emotion", "confidence", *[f"p_{x}" for x in EMOTIONS],
                        "needs_review", "note"]
    assert [row[0] for row in table[1:]] == [str(i) for i in range(2500)]
    assert all(row[3] == EMOTIONS[int(row[0]) % 6] and row[4] == "0.75" and row[-2] == "True"
               for row in table[1:])
    assert "Scored 2,500 rows" in capsys.readouterr().out


def test_progress_bar_shows_rows_per_second_on_stderr(tmp_path, capsys):
    write_rows(tmp_path / "in.csv", 50)
    score_file(tmp_path / "in.csv", tmp_path / "out.csv", classifier=row_numbers(), progress=True)
    captured = capsys.readouterr()
    assert "rows/s" in captured.err and "50/50" in captured.err and captured.out == ""


def test_tsv_and_jsonl_outputs_and_raw(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "row 0: =1+1", "n": 1}\n{"text": "row 1: hi"}\n{"text": ""}\n', encoding="utf-8")
    score_file(source, tmp_path / "out.tsv", classifier=row_numbers())
    with open(tmp_path / "out.tsv", encoding="utf-8", newline="") as handle:
        tsv = list(csv.reader(handle, delimiter="\t"))
    assert [row[:4] for row in tsv] == [["text", "n", "emotion", "confidence"], ["row 0: =1+1", "1", "sadness", "0.75"],
                                        ["row 1: hi", "", "joy", "0.75"], ["", "", "", ""]]
    score_file(source, tmp_path / "out.jsonl", classifier=row_numbers())
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records[2] == {"text": "", "n": "", "emotion": "", "confidence": None,
                          **{f"p_{x}": None for x in EMOTIONS}, "note": "empty text: not scored"}
    assert records[0]["p_sadness"] == 0.75


def test_formula_cells_are_neutralised_unless_raw(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('id,text,comment\n0,row 0: x,=HYPERLINK("http://evil")\n1,row 1: y,-1\n', encoding="utf-8")
    score_file(source, tmp_path / "safe.csv", classifier=row_numbers())
    score_file(source, tmp_path / "raw.csv", classifier=row_numbers(), raw=True)
    assert [row[2] for row in read_csv(tmp_path / "safe.csv")[1:]] == ["'=HYPERLINK(\"http://evil\")", "'-1"]
    assert [row[2] for row in read_csv(tmp_path / "raw.csv")[1:]] == ["=HYPERLINK(\"http://evil\")", "-1"]


def test_exit_codes(tmp_path, capsys):
    good = tmp_path / "in.csv"
    write_rows(good, 5)
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"PK\x03\x04not really a zip")
    fake = row_numbers()
    cases = [
        ([str(junk), "-o", str(tmp_path / "o.csv")], EXIT_INPUT, "not a table"),
        ([str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv")], EXIT_INPUT, "does not exist"),
        ([str(good), "-o", str(tmp_path / "o.xlsx")], EXIT_INPUT, "expected one of .csv"),
        ([str(good), "-o", str(good)], EXIT_OUTPUT, "are the same file"),
        ([str(good), "-o", str(tmp_path / "o.csv"), "--threshold", "2"], EXIT_INPUT, "between 0 and 1"),
        ([str(good), "-o", str(tmp_path / "o.csv"), "--text-column", "body"], EXIT_INPUT, "no column 'body'"),
        ([str(good), "-o", str(tmp_path / "no" / "o.csv")], EXIT_OUTPUT, "does not exist"),
    ]
    for argv, expected, message in cases:
        assert main(argv, classifier=fake) == expected, argv
        assert message in capsys.readouterr().err
    (tmp_path / "dir.csv").mkdir()
    assert main([str(good), "-o", str(tmp_path / "dir.csv")], classifier=fake) == EXIT_OUTPUT
    assert main([str(good), "-o", str(tmp_path / "o.csv"), "--adapter", str(tmp_path / "none")]) == EXIT_MODEL
    assert "could not load the model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([str(good)])  # -o missing: argparse's own usage error
    assert usage.value.code == EXIT_INPUT
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "o.csv").exists()


def test_ray_engine_without_ray_says_how_to_install_it(tmp_path, capsys):
    if __import__("importlib").util.find_spec("ray") is not None:
        pytest.skip("ray is installed here; tests/test_distributed.py covers the engine")
    write_rows(tmp_path / "in.csv", 3)
    assert main([str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--engine", "ray"]) == EXIT_MODEL
    assert "requirements-ray.txt" in capsys.readouterr().err


def test_interrupt_leaves_the_old_output_untouched_and_no_partial_file(tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 1000)
    target.write_text("earlier results\n", encoding="utf-8")
    code = main([str(source), "-o", str(target), "--chunk-rows", "100"],
                classifier=row_numbers(interrupt_after=3))
    assert code == EXIT_INTERRUPTED
    assert target.read_text(encoding="utf-8") == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_score_file_raises_score_error_with_the_exit_code(tmp_path):
    with pytest.raises(CommandError) as caught:
        score_file(tmp_path / "none.csv", tmp_path / "o.csv", classifier=row_numbers())
    assert caught.value.exit_code == EXIT_INPUT and isinstance(caught.value, ValueError)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import psutil
    sys.path[:0] = [sys.argv[1], sys.argv[1] + '/..']  # this file's folder and tests/ (support)
    from test_score import row_numbers, write_rows
    from emotion_app.scoring import score_file

    def peak_rss():
        # VmHWM is this program's own peak. ru_maxrss is not: Linux carries the forking parent's
        # size across exec into it (a pytest that has loaded torch makes it ~500 MB at once).
        try:
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    small, big, out = sys.argv[2:5]
    write_rows(small, 2000)
    score_file(small, out, classifier=row_numbers(), chunk_rows=int(sys.argv[6]))  # warm every path
    baseline = psutil.Process().memory_info().rss
    write_rows(big, int(sys.argv[5]))
    summary = score_file(big, out, classifier=row_numbers(), chunk_rows=int(sys.argv[6]))
    print(json.dumps({"baseline": baseline, "peak": peak_rss(), "rows": summary.rows}))
""")

ROWS = 200_000
MAX_GROWTH_MB = 120  # streaming needs a few MB; holding the 200 000 rows in pandas needs several hundred


def test_200000_rows_stream_in_order_with_flat_memory(tmp_path):
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT, encoding="utf-8")
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, str(script), str(REPO / "tests" / "cli"), str(tmp_path / "small.csv"),
                           str(tmp_path / "big.csv"), str(out), str(ROWS), "500"],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    growth_mb = (figures["peak"] - figures["baseline"]) / 1e6
    assert figures["rows"] == ROWS
    assert growth_mb < MAX_GROWTH_MB, f"peak RSS grew {growth_mb:.0f} MB while streaming {ROWS} rows"
    with open(out, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader)[:4] == ["id", "text", "gold", "emotion"]
        count = 0
        for count, row in enumerate(reader, start=1):
            i = count - 1
            if row[0] != str(i) or row[1] != f"row {i}: some words, and a comma" or row[3] != EMOTIONS[i % 6]:
                pytest.fail(f"output row {count} is {row[:4]}, expected row {i} in order")
    assert count == ROWS


@pytest.mark.parametrize("options, engine", [
    ([], {}),
    (["--precision", "fp32", "--runtime", "torch"], {"quantize": False, "runtime": "torch"}),
])
def test_real_command_on_a_tiny_adapter_matches_the_classifier(tmp_path, trained_adapter, options, engine):
    from emotion_app.engine.classifier import EmotionClassifier

    texts = ["i feel so happy today", "i am terrified of the dark", "", "i keep feeling angry"]
    source = tmp_path / "in.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[str(i), t] for i, t in enumerate(texts)]])
    done = subprocess.run([sys.executable, "-m", "emotion_app", "score", str(source), "-o", str(tmp_path / "o.csv"),
                           "--adapter", str(trained_adapter), "--batch-size", "2", "--no-progress", *options],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Scored 4 rows (1 left unscored: empty text)" in done.stdout
    rows = read_csv(tmp_path / "o.csv")[1:]
    expected = EmotionClassifier.from_adapter(str(trained_adapter), **engine).predict_proba([t for t in texts if t])
    got = np.array([[float(x) for x in row[4:10]] for row in rows if row[1]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [row[2] for row in rows if row[1]] == [EMOTIONS[i] for i in expected.argmax(axis=1)]
    assert rows[2][2:] == [""] * (len(rows[2]) - 3) + ["empty text: not scored"]  # (+ OOD columns with a detector)


def test_target_accuracy_becomes_the_threshold_from_the_adapters_curve(tmp_path, capsys):
    # (threshold, coverage, accuracy) rows as metrics.json's `coverage` holds them
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    curve = [[0.5, 1.0, 0.90], [0.7, 0.9, 0.95], [0.8, 0.7, 0.99]]
    (adapter / "metrics.json").write_text(json.dumps({"coverage": curve}), encoding="utf-8")
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 12)
    fake = row_numbers()  # confidence 0.75 everywhere
    argv = [str(source), "-o", str(target), "--adapter", str(adapter)]
    assert main([*argv, "--target-accuracy", "0.95"], classifier=fake) == EXIT_OK
    assert {row[-2] for row in read_csv(target)[1:]} == {"False"}  # threshold 0.7 < 0.75
    assert main([*argv, "--target-accuracy", "0.99"], classifier=fake) == EXIT_OK
    assert {row[-2] for row in read_csv(target)[1:]} == {"True"}  # threshold 0.8 > 0.75
    capsys.readouterr()
    assert main([*argv, "--target-accuracy", "0.999"], classifier=fake) == EXIT_INPUT
    assert "no confidence threshold reaches accuracy 99.90%" in capsys.readouterr().err
    assert main([*argv, "--target-accuracy", "0.9", "--threshold", "0.5"], classifier=fake) == EXIT_INPUT
    assert main([str(source), "-o", str(target), "--adapter", str(tmp_path / "none"),
                 "--target-accuracy", "0.9"], classifier=fake) == EXIT_INPUT


def test_whole_chunks_go_to_the_engine_and_keep_order_and_content_across_chunk_boundaries(
        tmp_path, trained_adapter):
    from emotion_app.engine.classifier import EmotionClassifier

    words = "i feel happy and then very sad about the long day we had at the sea".split()
    texts = [" ".join(words[: 1 + (i * 7) % len(words)]) if i % 5 else "" for i in range(23)]  # mixed lengths
    source = tmp_path / "in.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[str(i), t] for i, t in enumerate(texts)]])
    engine = EmotionClassifier.from_adapter(str(trained_adapter), quantize=False, runtime="torch", batch_size=4)
    calls, run = [], engine._run  # every engine call, with or without the shift detector's features
    engine._run = lambda batch, features, progress: calls.append(len(batch)) or run(batch, features, progress)
    real = engine.predict_proba
    outputs = {}
    for chunk_rows in (3, 1000):
        target = tmp_path / f"out-{chunk_rows}.csv"
        score_file(source, target, classifier=engine, chunk_rows=chunk_rows, progress=False)
        outputs[chunk_rows] = read_csv(target)
    assert calls[-1] == sum(1 for t in texts if t)  # one engine call for the whole 1000-row chunk
    header = outputs[1000][0]
    ood = header.index("ood_score")  # a distance: float noise from other padding shows in its decimals
    assert [row[:ood] + row[ood + 1:] for row in outputs[3]] == [row[:ood] + row[ood + 1:] for row in outputs[1000]]
    np.testing.assert_allclose([float(r[ood] or "nan") for r in outputs[3][1:]],
                               [float(r[ood] or "nan") for r in outputs[1000][1:]], rtol=1e-3)
    rows = outputs[1000][1:]
    assert [row[:2] for row in rows] == [[str(i), t] for i, t in enumerate(texts)]
    expected = np.array([real([t])[0] for t in texts if t])  # each text alone: no padding at all
    got = np.array([[float(x) for x in row[4:10]] for row in rows if row[1]])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_engine_reports_progress_after_each_batch(trained_adapter):
    from emotion_app.engine.classifier import EmotionClassifier

    engine = EmotionClassifier.from_adapter(str(trained_adapter), batch_size=4)
    seen = []
    engine.predict_proba([f"text number {i}" for i in range(10)], lambda done, total: seen.append((done, total)))
    assert seen == [(4, 10), (8, 10), (10, 10)]
