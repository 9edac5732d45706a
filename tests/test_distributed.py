"""Beyond one machine: train.py under torchrun (2 CPU processes, gloo) and scoring with Ray Data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from support import REPO, all_texts, quick_train_args, subprocess_env

from emotion_app.engine.classifier import EmotionClassifier

pytestmark = pytest.mark.slow


def test_train_py_runs_under_torchrun_with_two_processes(tiny_bert_dir, data_dir, tmp_path):
    output = tmp_path / "adapter"
    # One epoch instead of a step count: 48 training rows in batches of 8 are 6 steps for one
    # process but 3 when two processes share each epoch, which shows both ranks trained.
    args = [*quick_train_args(tiny_bert_dir, data_dir, output), "--max_steps", "-1", "--num_train_epochs", "1"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "train.py"), *args, "--ddp_backend", "gloo"]
    done = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (output / "adapter_config.json").is_file()
    assert (output / "adapter_model.safetensors").is_file()
    assert (output / "README.md").is_file()
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["training"]["global_step"] == 3
    assert metrics["test"]["n"] == 24
    assert not (output / ".staging").exists()
    engine = EmotionClassifier.from_adapter(str(output), quantize=False)
    assert engine.predict_proba(all_texts()[:3]).shape == (3, 6)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the optional ray[data] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": subprocess_env()})
    yield ray
    ray.shutdown()


def test_ray_classifier_equals_the_single_process_engine(local_ray, trained_bert_adapter):
    from emotion_app.engine.ray import RayClassifier

    texts = all_texts() + ["i", "", "happy " * 50]
    single = EmotionClassifier.from_adapter(str(trained_bert_adapter), batch_size=8)
    classifier = RayClassifier(str(trained_bert_adapter), num_workers=2, batch_size=8)
    assert classifier.labels == single.labels
    assert classifier.info["base_model"] == single.info["base_model"]
    assert classifier.info["precision"] == single.info["precision"] == "int8"
    got = classifier.predict_proba(texts)
    np.testing.assert_allclose(got, single.predict_proba(texts), atol=1e-6)
    assert classifier.predict(texts[:5]) == single.predict(texts[:5])
    # a second call reuses the engine already in the object store; an odd size, and nothing at all
    np.testing.assert_allclose(classifier.predict_proba(texts[:7]), got[:7], atol=1e-6)
    assert classifier.predict_proba([]).shape == (0, 6)
    # the features too (int8 activations are quantized per batch, and the workers batch other rows
    # together), and the OOD scores from the workers' own pass (the tiny adapter has a shift detector)
    _, features = classifier.logits_and_features(texts)
    np.testing.assert_allclose(features, single.logits_and_features(texts)[1], atol=2e-3)
    assert classifier.detector is not None
    np.testing.assert_allclose(classifier.predict_details(texts).ood_scores, classifier.detector.score(features),
                               rtol=1e-6)
    classifier.close()
    assert local_ray.is_initialized()  # it did not start Ray, so it must not stop it


def test_ray_classifier_rejects_bad_input(local_ray, trained_bert_adapter):
    from emotion_app.engine.ray import RayClassifier

    with pytest.raises(ValueError, match="num_workers must be a whole number"):
        RayClassifier(str(trained_bert_adapter), num_workers=0)
    classifier = RayClassifier(str(trained_bert_adapter), num_workers=2)
    with pytest.raises(ValueError, match="found a single string"):
        classifier.predict_proba("i feel happy")


def test_missing_ray_gives_an_install_hint(monkeypatch):
    import emotion_app.engine.ray as distributed

    real_import = distributed.importlib.import_module

    def no_ray(name, *args):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args)

    monkeypatch.setattr(distributed.importlib, "import_module", no_ray)
    with pytest.raises(ImportError, match="requirements-ray.txt"):
        distributed.RayClassifier("any-adapter", num_workers=2)
