"""No command writes over a file it reads or over another of its outputs, nor into an adapter it did
not make; outputs are checked before any model loads. Each refused case: exit 4, the file untouched
(bytes and modification time), a message naming both paths. Then the aliases (symlinks, `..`,
hard links), a long legal name, and replacing a finished adapter whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import never, snapshot
from support import REPO, FakePredictor, quick_train_args, subprocess_env

from emotion_app.artifacts import name_max, temporary_name, write_json
from emotion_app.cli import adapt as adapt_cli
from emotion_app.cli import evaluate as evaluate_cli
from emotion_app.cli import export as export_cli
from emotion_app.cli import score as score_cli
from emotion_app.cli import soup as soup_cli
from emotion_app.cli import train as train_cli
from emotion_app.engine.classifier import EmotionClassifier
from emotion_app.errors import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, OutputError
from emotion_app.paths import check_outputs, replacing_directory


@pytest.fixture
def no_model_loads(monkeypatch):
    monkeypatch.setattr(EmotionClassifier, "from_adapter", never)
    monkeypatch.setattr("emotion_app.scoring.load_classifier", never)


def refused(capsys, code: int, *paths) -> str:
    """Exit 4 with one error line that names every path given."""
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for path in paths:
        assert str(path) in err, (path, err)
    return err


# ---- the cases users reported --------------------------------------------------------------------

def test_score_report_over_the_input(tmp_path, table, capsys):
    before, out = snapshot(table), tmp_path / "out.csv"
    code = score_cli.main([str(table), "-o", str(out), "--report", str(table)], classifier=FakePredictor())
    refused(capsys, code, table)
    assert snapshot(table) == before and not out.exists()


def test_score_report_over_the_output(tmp_path, table, capsys):
    out = tmp_path / "out.csv"
    out.write_text("earlier\n", encoding="utf-8")
    before = snapshot(out)
    code = score_cli.main([str(table), "-o", str(out), "--report", str(out)], classifier=FakePredictor())
    assert "--report" in refused(capsys, code, out)
    assert snapshot(out) == before


def test_evaluate_output_over_its_labelled_file(labelled_file, trained_adapter, no_model_loads, capsys):
    before = snapshot(labelled_file)
    code = evaluate_cli.main(["--adapter", str(trained_adapter), "--file", str(labelled_file),
                              "--output", str(labelled_file)])
    refused(capsys, code, labelled_file)
    assert snapshot(labelled_file) == before


def test_evaluate_output_over_the_adapters_own_metrics(adapter_copy, labelled_file, no_model_loads, capsys):
    metrics = adapter_copy / "metrics.json"
    before = snapshot(metrics)
    code = evaluate_cli.main(["--adapter", str(adapter_copy), "--file", str(labelled_file), "--output", str(metrics)])
    refused(capsys, code, metrics, adapter_copy)
    assert snapshot(metrics) == before
    # a new name inside the adapter is refused too: it is not this command's folder
    code = evaluate_cli.main(["--adapter", str(adapter_copy), "--file", str(labelled_file),
                              "--output", str(adapter_copy / "eval.json")])
    refused(capsys, code, adapter_copy)
    assert not (adapter_copy / "eval.json").exists()


def test_evaluate_output_in_a_missing_folder_fails_before_the_model_loads(tmp_path, trained_adapter, labelled_file,
                                                                         no_model_loads, capsys):
    target = tmp_path / "missing" / "dir" / "m.json"
    code = evaluate_cli.main(["--adapter", str(trained_adapter), "--file", str(labelled_file), "--output", str(target)])
    assert "does not exist" in refused(capsys, code, target, tmp_path / "missing" / "dir")
    assert not (tmp_path / "missing").exists()


def _rows_file(path: Path, rows: list[str]) -> Path:
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("case, expected", [
    ("unknown label", "unknown label 'bored'"),
    ("bad id", "row 3: unknown label 17"),
    ("folder", "is a folder"),
])
def test_evaluate_a_bad_labelled_file_exits_2(case, expected, tmp_path, trained_adapter, capsys):
    path = {"unknown label": lambda: _rows_file(tmp_path / "l.csv", ["i feel sad,sadness", "so dull,bored"]),
            "bad id": lambda: _rows_file(tmp_path / "l.csv", ["i feel sad,0", "i feel glad,17"]),
            "folder": lambda: (tmp_path / "folder.csv").mkdir() or tmp_path / "folder.csv"}[case]()
    code = evaluate_cli.main(["--adapter", str(trained_adapter), "--file", str(path), "--runtime", "torch",
                              "--output", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT, err
    assert expected in err and "does not exist" not in err
    assert not (tmp_path / "m.json").exists()


def test_adapt_into_a_folder_holding_other_files(tmp_path, trained_adapter, labelled_file, monkeypatch, capsys):
    monkeypatch.setattr(adapt_cli, "adapt", never)
    folder = tmp_path / "mine"
    folder.mkdir()
    readme = folder / "README.md"
    readme.write_text("my notes\n", encoding="utf-8")
    before = snapshot(readme)
    for extra in ([], ["--overwrite"]):  # --overwrite replaces a finished adapter, nothing else
        code = adapt_cli.main(["--adapter", str(trained_adapter), "--corrections", str(labelled_file),
                               "-o", str(folder), *extra])
        assert "README.md" in refused(capsys, code, folder)
    assert snapshot(readme) == before


def test_adapt_into_a_read_only_folder_refuses_before_training(read_only_dir, trained_adapter, labelled_file,
                                                               monkeypatch, capsys):
    monkeypatch.setattr(adapt_cli, "adapt", never)
    monkeypatch.setattr(adapt_cli, "read_corrections", never)
    code = adapt_cli.main(["--adapter", str(trained_adapter), "--corrections", str(labelled_file),
                           "-o", str(read_only_dir)])
    refused(capsys, code, read_only_dir)


def test_adapt_into_its_parent(adapter_copy, labelled_file, monkeypatch, capsys):
    monkeypatch.setattr(adapt_cli, "adapt", never)
    for target in (adapter_copy, adapter_copy / "inside"):
        code = adapt_cli.main(["--adapter", str(adapter_copy), "--corrections", str(labelled_file), "-o", str(target)])
        refused(capsys, code, adapter_copy)


# ---- the other commands' folders ------------------------------------------------------------------

def test_export_into_its_adapter_or_a_folder_of_other_files(tmp_path, adapter_copy, monkeypatch, capsys):
    monkeypatch.setattr(export_cli, "export", never)
    code = export_cli.main(["--adapter", str(adapter_copy), "--merged", str(adapter_copy)])
    refused(capsys, code, adapter_copy)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    code = export_cli.main(["--adapter", str(adapter_copy), "--onnx", str(folder)])
    assert "cat.jpg" in refused(capsys, code, folder)
    # --merged and --onnx may share a folder: one output, not two
    monkeypatch.setattr(export_cli, "export", lambda *args, **kwargs: [])
    assert export_cli.main(["--adapter", str(adapter_copy), "--merged", str(tmp_path / "x"),
                            "--onnx", str(tmp_path / "x")]) == EXIT_OK


def test_soup_into_one_of_its_adapters(adapter_copy, trained_adapter, data_dir, monkeypatch, capsys):
    monkeypatch.setattr("emotion_app.train.soup.read_ingredient", never)
    before = snapshot(adapter_copy / "adapter_model.safetensors")
    code = soup_cli.main(["--adapters", str(trained_adapter), str(adapter_copy), "--weights", "0.5", "0.5",
                          "--output_dir", str(adapter_copy), "--overwrite"])
    refused(capsys, code, adapter_copy)
    assert snapshot(adapter_copy / "adapter_model.safetensors") == before


def test_train_into_a_folder_that_is_no_earlier_run(tmp_path, tiny_bert_dir, data_dir, trained_adapter,
                                                    monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(train_cli, "train", lambda *args: ran.append(args[3].output_dir) or Path(args[3].output_dir))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("buy milk\n", encoding="utf-8")
    args = quick_train_args(tiny_bert_dir, data_dir, folder)
    assert "--overwrite_output_dir" in refused(capsys, train_cli.main(args), folder)
    assert train_cli.main([*args, "--overwrite_output_dir", "true"]) == EXIT_OK
    assert train_cli.main([*args, "--resume", "true"]) == EXIT_OK
    earlier = quick_train_args(tiny_bert_dir, data_dir, trained_adapter)  # an earlier run: always allowed
    assert train_cli.main(earlier) == EXIT_OK
    assert ran == [str(folder), str(folder), str(trained_adapter)]
    code = train_cli.main(quick_train_args(tiny_bert_dir, data_dir, data_dir / "run"))  # the data inside? no:
    assert code == EXIT_OK  # a new folder inside the data folder holds no input
    code = train_cli.main(quick_train_args(tiny_bert_dir, data_dir, data_dir.parent))
    refused(capsys, code, data_dir.parent, data_dir)  # the output folder would hold the data


# ---- aliases and names ----------------------------------------------------------------------------

def test_a_symlink_to_the_input_is_the_input(tmp_path, table, capsys):
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    before = snapshot(table)
    refused(capsys, score_cli.main([str(table), "-o", str(link)], classifier=FakePredictor()), link, table)
    assert snapshot(table) == before and link.is_symlink()


def test_dot_dot_and_a_hard_link_are_the_input(tmp_path, table, capsys):
    (tmp_path / "sub").mkdir()
    dotted = tmp_path / "sub" / ".." / "in.csv"
    refused(capsys, score_cli.main([str(table), "-o", str(dotted)], classifier=FakePredictor()), dotted, table)
    hard = tmp_path / "hard.csv"
    os.link(table, hard)
    refused(capsys, score_cli.main([str(table), "-o", str(hard)], classifier=FakePredictor()), hard, table)
    assert table.read_text(encoding="utf-8").startswith("text\n")


def test_a_symlinked_folder_into_an_adapter_is_inside_the_adapter(tmp_path, adapter_copy, labelled_file,
                                                                  no_model_loads, capsys):
    door = tmp_path / "door"
    door.symlink_to(adapter_copy, target_is_directory=True)
    code = evaluate_cli.main(["--adapter", str(adapter_copy), "--file", str(labelled_file),
                              "--output", str(door / "metrics.json")])
    refused(capsys, code, door / "metrics.json", adapter_copy)


def test_a_long_legal_name_works(tmp_path, table):
    limit = name_max(tmp_path)
    out = tmp_path / ("s" * (limit - len(".csv")) + ".csv")
    report = tmp_path / ("r" * (limit - len(".json")) + ".json")
    assert score_cli.main([str(table), "-o", str(out), "--report", str(report), "--no_progress"],
                          classifier=FakePredictor()) == EXIT_OK
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("text,emotion")
    assert json.loads(report.read_text(encoding="utf-8"))["rows"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([table.name, out.name, report.name])


def test_a_name_over_the_limit_is_refused_before_work(tmp_path, table, capsys):
    out = tmp_path / ("s" * name_max(tmp_path) + ".csv")
    code = score_cli.main([str(table), "-o", str(out)], classifier=FakePredictor())
    assert "choose a shorter name" in refused(capsys, code).lower()


def test_temporary_names_stay_within_the_limit_and_apart(tmp_path):
    limit = name_max(tmp_path)
    for stem in ("a" * (limit - 5), "é" * ((limit - 5) // 2), "short"):
        target = tmp_path / (stem + ".json")
        temporary = temporary_name(target, ".tmp", reserve=8)
        assert len(os.fsencode(temporary.name)) + 8 <= limit and temporary.parent == tmp_path
        assert temporary.name.startswith(".") and temporary.name.endswith(".tmp")
        write_json(target, {"ok": stem})
        assert json.loads(target.read_text(encoding="utf-8")) == {"ok": stem}
    one, two = (temporary_name(tmp_path / (c * limit), ".tmp") for c in "xy")
    assert one != two


# ---- the guard itself, and replacing a finished adapter -----------------------------------------

def test_two_outputs_of_one_run_may_not_meet(tmp_path):
    with pytest.raises(OutputError, match="are the same file"):
        check_outputs({"-o": tmp_path / "a.csv", "--report": tmp_path / "x" / ".." / "a.csv"})
    with pytest.raises(OutputError, match="is inside --merged"):
        check_outputs({"--merged": tmp_path / "m", "--report": tmp_path / "m" / "r.json"}, directories={"--merged"})
    check_outputs({"-o": tmp_path / "a.csv", "--report": tmp_path / "a.json"})


def test_replacing_a_directory_keeps_the_old_one_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "weights").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with replacing_directory(target) as built:
            assert built.name == target.name and built.parent.parent == tmp_path
            built.mkdir()
            (built / "weights").write_text("half", encoding="utf-8")
            assert (target / "weights").read_text(encoding="utf-8") == "old"
            raise RuntimeError("the run failed")
    assert (target / "weights").read_text(encoding="utf-8") == "old"
    with replacing_directory(target) as built:
        built.mkdir()
        (built / "weights").write_text("new", encoding="utf-8")
        assert (target / "weights").read_text(encoding="utf-8") == "old"
    assert (target / "weights").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # nothing left beside it


def test_adapt_overwrite_replaces_a_finished_adapter_whole(tmp_path, trained_adapter, adapter_copy, labelled_file,
                                                           monkeypatch, capsys):
    """The CLI's wiring: without --overwrite a finished adapter is refused; with it, the new one is
    built beside and swapped in, and metrics.json records the final folder."""
    def fake_adapt(adapter, texts, labels, output_dir, options, progress=None, where=None):
        out = Path(output_dir)
        assert not out.exists() and out.name == adapter_copy.name  # built beside, under the same name
        out.mkdir()
        summary = {"output_dir": str(out), "parent": {"adapter": adapter}, "corrections": {"n": len(texts)},
                   "forgetting_guard": {"method": "distillation"}, "notes": [],
                   "timing": {"to_saved_adapter_s": 1, "adaptation_s": 1, "heldout_s": 0}}
        (out / "adapter_model.safetensors").write_text("new", encoding="utf-8")
        write_json(out / "metrics.json", {"adaptation": summary})
        (out / "adapter_config.json").write_text("{}", encoding="utf-8")
        return out, summary

    monkeypatch.setattr(adapt_cli, "adapt", fake_adapt)
    argv = ["--adapter", str(trained_adapter), "--corrections", str(labelled_file), "-o", str(adapter_copy)]
    before = snapshot(adapter_copy / "adapter_model.safetensors")
    assert (adapter_copy / "tokenizer.json").is_file()
    assert "--overwrite" in refused(capsys, adapt_cli.main(argv), adapter_copy)
    assert snapshot(adapter_copy / "adapter_model.safetensors") == before
    assert adapt_cli.main([*argv, "--overwrite"]) == EXIT_OK
    assert (adapter_copy / "adapter_model.safetensors").read_text(encoding="utf-8") == "new"
    assert not (adapter_copy / "tokenizer.json").exists()  # the old adapter's files went with it
    recorded = json.loads((adapter_copy / "metrics.json").read_text(encoding="utf-8"))
    assert recorded["adaptation"]["output_dir"] == str(adapter_copy.resolve())
    assert sorted(p.name for p in adapter_copy.parent.iterdir() if p.name.startswith(".")) == []
    assert f"into {adapter_copy.resolve()}" in capsys.readouterr().out


def test_python_dash_m_refuses_the_reported_cases(tmp_path, table):
    done = subprocess.run([sys.executable, "-m", "emotion_app", "score", str(table), "-o", str(tmp_path / "o.csv"),
                           "--report", str(table)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == EXIT_OUTPUT, done.stderr[-2000:]
    assert str(table) in done.stderr and "Traceback" not in done.stderr
