"""One exit-code contract for every command (README.md, "Exit codes"): 0 done, 2 bad usage or an
unreadable input, 3 the model cannot be loaded, 4 an output cannot be written, 130 interrupted,
1 only for a bug. Each command's main(argv) runs in this process; the steps that must not be
reached are replaced by `never`, so that reaching one shows as exit 1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_support import make_read_only, never
from support import REPO, FakePredictor, quick_train_args, subprocess_env

from emotion_app.cli import adapt as adapt_cli
from emotion_app.cli import calibrate as calibrate_cli
from emotion_app.cli import evaluate as evaluate_cli
from emotion_app.cli import export as export_cli
from emotion_app.cli import score as score_cli
from emotion_app.cli import soup as soup_cli
from emotion_app.cli import train as train_cli
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.errors import EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_OUTPUT
from emotion_app.labels import EMOTIONS


def code_of(main, argv, **kwargs) -> int:
    """main's exit code, whether it returns it or argparse raises SystemExit with it."""
    try:
        return main(argv, **kwargs)
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture
def corrections(tmp_path, split_rows):
    path = tmp_path / "fixed.csv"
    rows = [f"{text},{EMOTIONS[label]}" for text, label in split_rows["train"]]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_model_loads(monkeypatch):
    monkeypatch.setattr(EmotionClassifier, "from_adapter", never)
    monkeypatch.setattr("emotion_app.scoring.load_classifier", never)


def test_score(tmp_path, table, empty_dir, read_only_dir, no_model_loads, capsys):
    out = str(tmp_path / "o.csv")
    assert code_of(score_cli.main, [str(table)]) == EXIT_INPUT  # -o missing
    assert code_of(score_cli.main, [str(table), "-o", out, "--threshold", "2"]) == EXIT_INPUT
    assert code_of(score_cli.main, [str(tmp_path / "missing.csv"), "-o", out], classifier=FakePredictor()) == EXIT_INPUT
    assert code_of(score_cli.main, [str(table), "-o", str(read_only_dir / "o.csv")]) == EXIT_OUTPUT
    assert "takes no new file" in capsys.readouterr().err
    assert code_of(score_cli.main, [str(table), "-o", out], classifier=FakePredictor()) == EXIT_OK


def test_score_bad_model(tmp_path, table, empty_dir, capsys):
    assert score_cli.main([str(table), "-o", str(tmp_path / "o.csv"), "--adapter", str(empty_dir)]) == EXIT_MODEL
    assert "could not load the model" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_evaluate(tmp_path, trained_adapter, labelled_file, empty_dir, read_only_dir, monkeypatch, capsys):
    argv = ["--adapter", str(trained_adapter), "--file", str(labelled_file), "--runtime", "torch"]
    assert code_of(evaluate_cli.main, ["--file", str(labelled_file)]) == EXIT_INPUT  # --adapter missing
    assert code_of(evaluate_cli.main, [*argv, "--split", "nope"]) == EXIT_INPUT
    assert evaluate_cli.main(["--adapter", str(empty_dir), "--file", str(labelled_file),
                              "--output", str(tmp_path / "m.json")]) == EXIT_MODEL
    assert "could not load the model" in capsys.readouterr().err
    monkeypatch.setattr(EmotionClassifier, "from_adapter", never)
    assert evaluate_cli.main([*argv[:2], "--file", str(tmp_path / "none.csv")]) == EXIT_INPUT
    assert evaluate_cli.main([*argv, "--output", str(read_only_dir / "m.json")]) == EXIT_OUTPUT


def test_calibrate(tmp_path, adapter_copy, data_dir, empty_dir, monkeypatch, capsys):
    argv = ["--adapter", str(adapter_copy), "--data_dir", str(data_dir)]
    assert code_of(calibrate_cli.main, ["--data_dir", str(data_dir)]) == EXIT_INPUT  # --adapter missing
    assert calibrate_cli.main([*argv, "--detector_rows", "-1"]) == EXIT_INPUT
    assert calibrate_cli.main(["--adapter", "user/name", "--data_dir", str(data_dir)]) == EXIT_INPUT
    assert "expected a local adapter directory" in capsys.readouterr().err
    assert calibrate_cli.main(["--adapter", str(empty_dir), "--data_dir", str(data_dir)]) == EXIT_MODEL
    monkeypatch.setattr(calibrate_cli, "load_splits", never)
    assert calibrate_cli.main([*argv[:2], "--data_dir", str(tmp_path / "none")]) == EXIT_INPUT
    before = sorted(p.name for p in adapter_copy.iterdir())
    undo = make_read_only(adapter_copy)
    try:
        assert calibrate_cli.main(argv) == EXIT_OUTPUT
    finally:
        undo()
    assert f"the folder {adapter_copy} takes no new file" in capsys.readouterr().err
    assert sorted(p.name for p in adapter_copy.iterdir()) == before


def test_export(tmp_path, trained_adapter, empty_dir, read_only_dir, monkeypatch, capsys):
    argv = ["--adapter", str(trained_adapter)]
    assert code_of(export_cli.main, ["--merged", str(tmp_path / "m")]) == EXIT_INPUT  # --adapter missing
    assert export_cli.main(argv) == EXIT_INPUT
    assert "nothing to export" in capsys.readouterr().err
    assert export_cli.main([*argv, "--merged", str(tmp_path / "m"), "--push_to_hub", "not a repo"]) == EXIT_INPUT
    assert export_cli.main(["--adapter", str(empty_dir), "--merged", str(tmp_path / "m")]) == EXIT_MODEL
    assert "could not load the model" in capsys.readouterr().err
    monkeypatch.setattr(export_cli, "export", never)
    monkeypatch.setattr(export_cli, "read_adapter", never)
    assert export_cli.main([*argv, "--merged", str(read_only_dir / "m")]) == EXIT_OUTPUT
    assert not (tmp_path / "m").exists()


def test_soup(tmp_path, trained_adapter, data_dir, empty_dir, read_only_dir, monkeypatch):
    argv = ["--adapters", str(trained_adapter), str(trained_adapter), "--data_dir", str(data_dir)]
    out = ["--output_dir", str(tmp_path / "soup")]
    assert code_of(soup_cli.main, argv) == EXIT_INPUT  # --weights and --output_dir missing
    assert soup_cli.main([*argv, *out, "--weights", "0.3", "0.3"]) == EXIT_INPUT
    assert soup_cli.main(["--adapters", str(empty_dir), str(empty_dir), "--weights", "0.5", "0.5", *out]) == EXIT_MODEL
    monkeypatch.setattr("emotion_app.train.soup.read_ingredient", never)
    assert soup_cli.main([*argv[:3], "--data_dir", str(tmp_path / "none"), *out, "--weights", "0.5", "0.5"]) == EXIT_INPUT
    assert soup_cli.main([*argv, "--output_dir", str(read_only_dir / "soup"), "--weights", "0.5", "0.5"]) == EXIT_OUTPUT


def test_train(tmp_path, tiny_bert_dir, data_dir, empty_dir, read_only_dir, monkeypatch, capsys):
    args = quick_train_args(tiny_bert_dir, data_dir, tmp_path / "run")
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"learning_rat": 0.1}), encoding="utf-8")
    assert code_of(train_cli.main, [*args, "--no_such_flag", "1"]) == EXIT_INPUT
    assert train_cli.main([str(config)]) == EXIT_INPUT
    assert "unknown options ['learning_rat']" in capsys.readouterr().err
    monkeypatch.setattr(train_cli, "train", never)
    assert train_cli.main([*args, "--base_model", str(empty_dir)]) == EXIT_MODEL
    assert train_cli.main([*args, "--soup_with", str(empty_dir)]) == EXIT_MODEL
    assert train_cli.main([*args, "--data_dir", str(tmp_path / "none")]) == EXIT_INPUT
    monkeypatch.setattr(train_cli, "check_models", never)
    assert train_cli.main([*args, "--output_dir", str(read_only_dir / "run")]) == EXIT_OUTPUT


def test_adapt(tmp_path, trained_adapter, corrections, empty_dir, read_only_dir, monkeypatch):
    argv = ["--adapter", str(trained_adapter), "--corrections", str(corrections)]
    out = ["-o", str(tmp_path / "adapted")]
    assert code_of(adapt_cli.main, argv) == EXIT_INPUT  # -o missing
    assert code_of(adapt_cli.main, [*argv, *out, "--holdout", "nope"]) == EXIT_INPUT
    monkeypatch.setattr(adapt_cli, "adapt", never)
    assert adapt_cli.main(["--adapter", str(empty_dir), "--corrections", str(corrections), *out]) == EXIT_MODEL
    assert adapt_cli.main([*argv[:2], "--corrections", str(tmp_path / "none.csv"), *out]) == EXIT_INPUT
    assert adapt_cli.main([*argv, "-o", str(read_only_dir / "adapted")]) == EXIT_OUTPUT


# ---- 1 is for bugs only, 130 for an interruption: the same runner for every command ------------

def _valid_argv(command: str, tmp_path, trained_adapter, data_dir, tiny_bert_dir, labelled_file) -> list[str]:
    adapter = str(trained_adapter)
    return {
        "score": [str(labelled_file), "-o", str(tmp_path / "o.csv")],
        "evaluate": ["--adapter", adapter, "--file", str(labelled_file), "--output", str(tmp_path / "m.json")],
        "calibrate": ["--adapter", adapter, "--data_dir", str(data_dir)],
        "export": ["--adapter", adapter, "--merged", str(tmp_path / "merged")],
        "soup": ["--adapters", adapter, adapter, "--weights", "0.5", "0.5", "--output_dir", str(tmp_path / "s")],
        "train": quick_train_args(tiny_bert_dir, data_dir, tmp_path / "run"),
        "adapt": ["--adapter", adapter, "--corrections", str(labelled_file), "-o", str(tmp_path / "a")],
    }[command]


# the function each command's work goes through, replaced to fail in a chosen way
WORK = {"score": (score_cli, "score_file"), "evaluate": (evaluate_cli, "run"), "calibrate": (calibrate_cli, "run"),
        "export": (export_cli, "run"), "soup": (soup_cli, "run"), "train": (train_cli, "train"),
        "adapt": (adapt_cli, "adapt")}


@pytest.mark.parametrize("command", sorted(WORK))
@pytest.mark.parametrize("failure, expected, said", [
    (TypeError("forced"), EXIT_BUG, "error: unexpected TypeError: forced. This is a bug: please report it"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted: "),
])
def test_a_bug_exits_1_and_an_interruption_130(command, failure, expected, said, tmp_path, trained_adapter, data_dir,
                                               tiny_bert_dir, labelled_file, monkeypatch, capsys, caplog):
    def fail(*_args, **_kwargs):
        raise failure

    module, name = WORK[command]
    monkeypatch.setattr(module, name, fail)
    argv = _valid_argv(command, tmp_path, trained_adapter, data_dir, tiny_bert_dir, labelled_file)
    assert module.main(argv) == expected
    err = capsys.readouterr().err
    assert said in err
    if expected == EXIT_BUG:
        assert "Traceback" in caplog.text and "TypeError: forced" in caplog.text  # logged for the report


def test_every_help_points_to_the_one_table(capsys):
    for module in (score_cli, evaluate_cli, calibrate_cli, export_cli, soup_cli, train_cli, adapt_cli):
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        assert exit_.value.code == EXIT_OK
        out = capsys.readouterr().out
        assert 'Exit codes: see "Exit codes" in README.md' in out, module.__name__
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("## Exit codes") == 1


@pytest.mark.parametrize("command", ["evaluate", "score", "export"])
def test_the_code_reaches_the_shell(command, tmp_path, trained_adapter, labelled_file):
    argv, expected = {
        "evaluate": (["--adapter", str(trained_adapter), "--file", str(labelled_file),
                      "--output", str(tmp_path / "missing" / "m.json")], EXIT_OUTPUT),
        "score": ([str(labelled_file), "-o", str(labelled_file)], EXIT_OUTPUT),
        "export": (["--adapter", str(trained_adapter)], EXIT_INPUT),
    }[command]
    done = subprocess.run([sys.executable, "-m", "emotion_app", command, *argv], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == expected, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in done.stderr
