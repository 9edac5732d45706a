"""Publishing to the Hub, offline: huggingface_hub.HfApi is replaced by a recorder."""

import json
import logging
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.utils import filter_repo_objects

from emotion_app.labels import EMOTIONS
from emotion_app.publish import hub
from emotion_app.train.arguments import (
    DataArguments,
    LoraArguments,
    ModelArguments,
    RunArguments,
)
from emotion_app.train.trainer import train

TOKEN = "hf_NotARealTokenButSecret1234567890"


class FakeHfApi:
    """Records what push_adapter asks of the Hub."""

    instances: list["FakeHfApi"] = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls = []
        FakeHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        # The pushed folder is temporary: keep what would be uploaded (small files' contents).
        folder = Path(kwargs["folder_path"])
        names = filter_repo_objects([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()],
                                    ignore_patterns=kwargs.get("ignore_patterns"))
        self.uploaded = {name: (folder / name).read_bytes() if (folder / name).stat().st_size < 1 << 20 else None
                         for name in names}
        return "commit"


@pytest.fixture
def fake_hub(monkeypatch):
    FakeHfApi.instances = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi.instances


def test_push_creates_the_repo_and_uploads_the_folder(fake_hub, trained_adapter):
    url = hub.push_adapter(trained_adapter, "someone/emotion-lora", private=True, token=TOKEN)
    assert url == "https://huggingface.co/someone/emotion-lora"
    (api,) = fake_hub
    assert api.token == TOKEN
    (create, upload) = api.calls
    assert create[:2] == ("create_repo", "someone/emotion-lora")
    assert create[2]["private"] is True
    assert create[2]["exist_ok"] is True
    assert upload[:2] == ("upload_folder", "someone/emotion-lora")
    ignore = upload[2]["ignore_patterns"]
    assert {"checkpoints/*", ".staging/*", "*.bin"} <= set(ignore)
    # the Hub-native layout: the merged model at the root, the adapter (byte for byte) in adapter/
    assert {"config.json", "model.safetensors", "README.md", "adapter/adapter_config.json"} <= set(api.uploaded)
    assert api.uploaded["adapter/adapter_config.json"] == (Path(trained_adapter) / "adapter_config.json").read_bytes()


def test_push_uploads_the_merged_model_at_the_root_and_the_adapter_in_its_folder(fake_hub, trained_adapter):
    hub.push_adapter(trained_adapter, "someone/emotion-lora")
    files = set(fake_hub[0].uploaded)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
            "metrics.json", "calibration.json"} <= files
    assert {f"adapter/{name}" for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                                           "tokenizer_config.json", "metrics.json", "calibration.json",
                                           "README.md")} <= files
    # at the root, adapter_config.json would make transformers load the base with 2 labels instead
    assert "adapter_config.json" not in files
    assert not [f for f in files if "checkpoint" in f or "staging" in f or f.endswith((".bin", ".pt", ".pth"))]
    config = json.loads(fake_hub[0].uploaded["config.json"])
    assert config["id2label"] == {str(i): name for i, name in enumerate(EMOTIONS)}
    assert config["label2id"] == {name: i for i, name in enumerate(EMOTIONS)}
    card = fake_hub[0].uploaded["README.md"].decode()
    assert 'library_name: "transformers"' in card
    assert 'pipeline("text-classification", model="someone/emotion-lora", top_k=None)' in card
    assert 'EmotionClassifier.from_adapter("someone/emotion-lora").predict_proba' in card
    assert "from `calibration.json`" in card and "uncalibrated" in card
    assert 'PeftModel.from_pretrained(base, "someone/emotion-lora", subfolder="adapter")' in card
    adapter_card = fake_hub[0].uploaded["adapter/README.md"].decode()
    assert 'library_name: "peft"' in adapter_card and "[someone/emotion-lora]" in adapter_card


def test_loading_a_pushed_repo_downloads_the_adapter_not_the_merged_weights(fake_hub, trained_adapter):
    from emotion_app.engine.adapters import HUB_PATTERNS

    hub.push_adapter(trained_adapter, "someone/emotion-lora")
    fetched = set(filter_repo_objects(list(fake_hub[0].uploaded), allow_patterns=HUB_PATTERNS))
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/tokenizer.json",
            "adapter/calibration.json", "adapter/metrics.json"} <= fetched
    assert "model.safetensors" not in fetched  # 90 MB for MiniLM that the app does not use


def test_push_refuses_a_bad_repo_id_before_merging(fake_hub, trained_adapter, monkeypatch):
    from emotion_app.publish import export

    monkeypatch.setattr(export, "export", lambda *args, **kwargs: pytest.fail("merged anyway"))
    with pytest.raises(ValueError, match="is not a repo id"):
        hub.push_adapter(trained_adapter, "no-slash")
    assert fake_hub == []


def test_public_by_default(fake_hub, trained_adapter):
    hub.push_adapter(trained_adapter, "someone/emotion-lora")
    assert fake_hub[0].calls[0][2]["private"] is False
    assert fake_hub[0].token is None  # huggingface_hub then uses HF_TOKEN or the saved login


def test_ignore_patterns_upload_only_the_adapter(trained_adapter):
    """Apply the patterns as huggingface_hub does to the files of a real trained adapter."""
    files = [str(p.relative_to(trained_adapter)) for p in Path(trained_adapter).rglob("*") if p.is_file()]
    assert any(f.startswith("checkpoints/") for f in files)
    uploaded = set(filter_repo_objects(files, ignore_patterns=hub.UPLOAD_IGNORE))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "metrics.json",
            "README.md"} <= uploaded
    assert not [f for f in uploaded if f.startswith("checkpoints/") or f.endswith((".bin", ".pt", ".pth"))]


@pytest.mark.parametrize("repo_id", ["", "emotion-lora", "a/b/c", "/name", "user/", "user/na me"])
def test_a_bad_repo_id_is_refused_before_any_call(fake_hub, trained_adapter, repo_id):
    with pytest.raises(ValueError, match=r"is not a repo id: expected user/name.*--hub_model_id"):
        hub.push_adapter(trained_adapter, repo_id, token=TOKEN)
    assert fake_hub == []


def test_train_refuses_a_bad_repo_id_before_training(fake_hub, tmp_path):
    out = tmp_path / "never"
    run_args = RunArguments(output_dir=str(out), push_to_hub=True, hub_model_id="my model", report_to="none",
                            use_cpu=True)
    with pytest.raises(ValueError, match=r"'my model' is not a repo id"):
        train(ModelArguments(base_model="unused/base"), DataArguments(data_dir=str(tmp_path / "no-data")),
              LoraArguments(), run_args)
    assert fake_hub == []
    assert not out.exists()


def test_train_with_push_to_hub_uploads_the_final_adapter_and_never_shows_the_token(
        fake_hub, tiny_bert_dir, data_dir, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "pushed"
    run_args = RunArguments(output_dir=str(out), max_steps=1, per_device_train_batch_size=8,
                            eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                            report_to="none", use_cpu=True, push_to_hub=True, hub_model_id="someone/tiny",
                            hub_private_repo=True, hub_token=TOKEN)
    train(ModelArguments(base_model=str(tiny_bert_dir), max_length=16),
          DataArguments(data_dir=str(data_dir), max_eval_samples=6), LoraArguments(lora_r=2), run_args)
    (api,) = fake_hub
    assert api.token == TOKEN
    assert [c[:2] for c in api.calls] == [("create_repo", "someone/tiny"), ("upload_folder", "someone/tiny")]
    assert api.calls[0][2]["private"] is True
    assert (out / "adapter_config.json").is_file()  # written before the upload
    assert api.uploaded["adapter/adapter_config.json"] == (out / "adapter_config.json").read_bytes()
    assert {"config.json", "model.safetensors", "adapter/adapter_model.safetensors"} <= set(api.uploaded)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert TOKEN not in caplog.text
