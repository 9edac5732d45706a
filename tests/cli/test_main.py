"""The front door: `python -m emotion_app <command>` and the `emotion-app` console script that
`pip install .` gives (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import REPO

from emotion_app.cli import COMMANDS, main


def test_every_command_is_reached_through_the_dispatcher(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert name in capsys.readouterr().out
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in COMMANDS)


def test_no_command_or_an_unknown_one_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: emotion-app <command>" in capsys.readouterr().err
    assert main(["scroe", "in.csv"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'scroe'" in err and "score" in err


def test_python_dash_m_runs_the_package():
    done = subprocess.run([sys.executable, "-m", "emotion_app", "evaluate", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--adapter" in done.stdout


def test_importing_the_package_stays_light():
    code = ("import sys, emotion_app; assert 'torch' not in sys.modules and 'gradio' not in sys.modules; "
            "from emotion_app import EmotionClassifier, score_file, read_table, adapt; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _setuptools_recent() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def _source_copy(directory: Path) -> Path:
    """What the wheel is built from, copied so the build leaves nothing in the checkout."""
    import shutil

    directory.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, directory / name)
    shutil.copytree(REPO / "emotion_app", directory / "emotion_app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "models" / "minilm-emotion-lora", directory / "models" / "minilm-emotion-lora",
                    ignore=shutil.ignore_patterns("checkpoints", ".staging"))
    return directory


@pytest.mark.slow
def test_the_wheel_has_the_console_command_and_the_embedded_model(tmp_path):
    source = _source_copy(tmp_path / "source")
    isolation = ["--no-build-isolation"] if _setuptools_recent() else []  # else pip fetches setuptools
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation,
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    archive = zipfile.ZipFile(wheel)
    for path in (REPO / "models" / "minilm-emotion-lora").iterdir():
        if path.is_file():
            assert f"emotion_app/models/minilm-emotion-lora/{path.name}" in archive.namelist()
    entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
    assert "emotion-app = emotion_app.cli:main" in archive.read(entry_points).decode()

    installed = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(installed),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = "from emotion_app.constants import BUNDLED_ADAPTER; print(BUNDLED_ADAPTER)"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(installed)},
                           capture_output=True, text=True, timeout=120)
    assert Path(found.stdout.strip()) == installed / "emotion_app" / "models" / "minilm-emotion-lora"
    script = subprocess.run([str(installed / "bin" / "emotion-app"), "score", "--help"], cwd=tmp_path,
                            env={"PYTHONPATH": str(installed)}, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "--output" in script.stdout
