"""Hub-native models, offline: what push_adapter uploads loads in one line of transformers (the
Hub is a local cache holding the uploaded files, read by a fresh `python -c` as a user's would
be), and the merged and ONNX exports equal the engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file
from support import REPO, all_texts, subprocess_env

from emotion_app.cli import export as export_command
from emotion_app.engine import onnx as onnx_runtime
from emotion_app.engine.adapters import load_adapter, load_base_model
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.labels import EMOTIONS
from emotion_app.publish import export, hub

SHIPPED = REPO / "models" / "minilm-emotion-lora"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# The first 20 texts of dair-ai/emotion's test split.
TEST_TEXTS = [
    "im feeling rather rotten so im not very ambitious right now",
    "im updating my blog because i feel shitty",
    "i never make her separate from me because i don t ever want her to feel like i m ashamed with her",
    ("i left with my bouquet of red and yellow tulips under my arm feeling slightly more optimistic than when i "
     "arrived"),
    "i was feeling a little vain when i did this one",
    "i cant walk into a shop anywhere where i do not feel uncomfortable",
    "i felt anger when at the end of a telephone call",
    ("i explain why i clung to a relationship with a boy who was in many ways immature and uncommitted despite the "
     "excitement i should have been feeling for getting accepted into the masters program at the university of "
     "virginia"),
    "i like to have the same breathless feeling as a reader eager to see what will happen next",
    ("i jest i feel grumpy tired and pre menstrual which i probably am but then again its only been a week and im "
     "about as fit as a walrus on vacation for the summer"),
    "i don t feel particularly agitated",
    ("i feel beautifully emotional knowing that these women of whom i knew just a handful were holding me and my "
     "baba on our journey"),
    "i pay attention it deepens into a feeling of being invaded and helpless",
    "i just feel extremely comfortable with the group of people that i dont even need to hide myself",
    "i find myself in the odd position of feeling supportive of",
    "i was feeling as heartbroken as im sure katniss was",
    "i feel a little mellow today",
    "i feel like my only role now would be to tear your sails with my pessimism and discontent",
    ("i feel just bcoz a fight we get mad to each other n u wanna make a publicity n let the world knows about our "
     "fight"),
    "i feel like reds and purples are just so rich and kind of perfect",
]

# What a new user types, run in a fresh interpreter against the fake Hub: prints JSON.
ONE_LINER = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from emotion_app.engine.classifier import EmotionClassifier
repo, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(repo).eval()
tokenizer = AutoTokenizer.from_pretrained(repo)
logits = []
with torch.inference_mode():
    for text in texts:
        logits.append(model(**tokenizer([text], return_tensors="pt", truncation=True)).logits[0].tolist())
classify = pipeline("text-classification", model=repo, top_k=None)
engine = EmotionClassifier.from_adapter(repo, quantize=False, runtime="torch")
print(json.dumps({"id2label": {str(k): v for k, v in model.config.id2label.items()}, "logits": logits,
                  "pipeline": classify(texts, truncation=True), "peft": hasattr(model, "peft_config"),
                  "engine": engine.predict_proba(texts).tolist(), "engine_dir": engine.info["directory"]}))
"""


class RecordingHfApi:
    """Records each upload's files (the pushed folder is temporary) and puts them in a Hub cache
    as huggingface_hub would after a download, so that transformers can read them offline."""

    instances: list[RecordingHfApi] = []
    cache: Path | None = None

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.created: list[tuple[str, dict]] = []
        self.uploads: list[dict] = []
        RecordingHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.created.append((repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, folder_path, repo_id, ignore_patterns=None, **kwargs):
        folder = Path(folder_path)
        files = sorted(filter_repo_objects([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()],
                                           ignore_patterns=ignore_patterns))
        self.uploads.append({"repo_id": repo_id, "files": files, **kwargs})
        if self.cache is not None:
            repo = self.cache / f"models--{repo_id.replace('/', '--')}"
            shutil.rmtree(repo, ignore_errors=True)
            for name in files:
                target = repo / "snapshots" / COMMIT / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, target)
            (repo / "refs").mkdir(parents=True)
            (repo / "refs" / "main").write_text(COMMIT)
        return "commit"


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    RecordingHfApi.instances = []
    RecordingHfApi.cache = tmp_path / "hub-cache"
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    return RecordingHfApi


@pytest.fixture(params=["bert", "gpt2"])
def adapter(request) -> Path:
    return request.getfixturevalue(f"trained_{request.param}_adapter")


def one_liner(repo: str, texts: list[str], cache: Path) -> dict:
    env = dict(subprocess_env(), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", ONE_LINER, repo, json.dumps(texts)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_engine(adapter: Path) -> EmotionClassifier:
    return EmotionClassifier.from_adapter(str(adapter), quantize=False, runtime="torch", num_threads=1)


def check_one_liner(result: dict, engine: EmotionClassifier, texts: list[str], cache: Path) -> None:
    labels = list(engine.labels)
    assert result["id2label"] == {str(i): name for i, name in enumerate(labels)}
    assert result["peft"] is False  # a plain model: no peft needed, nothing applied twice
    want = engine.logits(texts)
    np.testing.assert_allclose(result["logits"], want, atol=1e-4)
    for scores, row in zip(result["pipeline"], softmax(want)):  # the pipeline: uncalibrated softmax
        assert sorted(s["label"] for s in scores) == sorted(labels)
        assert scores[0]["label"] == labels[int(row.argmax())]
        np.testing.assert_allclose([s["score"] for s in scores], sorted(row, reverse=True), atol=1e-4)
    # this project finds the adapter in adapter/ and calibrates
    assert Path(result["engine_dir"]).name == "adapter" and cache in Path(result["engine_dir"]).parents
    np.testing.assert_allclose(result["engine"], engine.predict_proba(texts), atol=1e-4)


# ---- the pushed repo ----------------------------------------------------------------------------

def test_a_pushed_adapter_loads_in_one_line_of_transformers(adapter, fake_hub):
    repo = f"someone/tiny-{adapter.parent.name}"
    hub.push_adapter(adapter, repo, private=True)
    (api,) = fake_hub.instances
    assert api.created == [(repo, {"private": True, "exist_ok": True, "repo_type": "model"})]
    texts = all_texts()[::8]
    check_one_liner(one_liner(repo, texts, fake_hub.cache), torch_engine(adapter), texts, fake_hub.cache)


def test_the_shipped_adapter_in_one_line(fake_hub):
    """The embedded model, pushed (its base: the bundled MiniLM, so nothing is downloaded)."""
    hub.push_adapter(SHIPPED, "someone/minilm-emotion-lora")
    result = one_liner("someone/minilm-emotion-lora", TEST_TEXTS, fake_hub.cache)
    engine = torch_engine(SHIPPED)
    check_one_liner(result, engine, TEST_TEXTS, fake_hub.cache)
    assert [scores[0]["label"] for scores in result["pipeline"]] == engine.predict(TEST_TEXTS)
    # The app's int8 engine: the same but for borderline texts (v1 agreed on 19 of these 20: int8,
    # whose activations are quantized per batch, tips a borderline one); docs/hub.md has the figure
    # on the whole test split.
    int8 = EmotionClassifier.from_adapter(str(SHIPPED), num_threads=1)
    agree = np.mean([scores[0]["label"] == label for scores, label in zip(result["pipeline"], int8.predict(TEST_TEXTS))])
    assert agree >= 0.9
    card = (fake_hub.cache / "models--someone--minilm-emotion-lora" / "snapshots" / COMMIT / "README.md").read_text()
    temperature = json.loads((SHIPPED / "calibration.json").read_text())["temperature"]
    assert f"T = {temperature:.4g} from `calibration.json`" in card  # as card.py writes it


# ---- the merged export --------------------------------------------------------------------------

def test_the_merged_export_is_the_engines_model(adapter, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out = tmp_path / "merged"
    assert export.export(str(adapter), merged=out) == [out]
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json", "README.md", "metrics.json",
                                               "calibration.json", "labels.json"}
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert model.config.id2label == dict(enumerate(EMOTIONS)) and model.config.label2id == {name: i for i, name in enumerate(EMOTIONS)}
    assert not hasattr(model, "peft_config")
    ours = load_adapter(str(adapter)).model
    theirs = model.state_dict()
    for name, value in ours.state_dict().items():
        assert torch.equal(theirs[name], value), name
    # LoRA is in the weights (they differ from the base's) and the head is the trained one
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    base = load_base_model(config["base_model_name_or_path"], ours.config.pad_token_id).state_dict()
    saved = {key.removeprefix("base_model.model."): value
             for key, value in load_file(adapter / "adapter_model.safetensors").items()}
    adapted = {key.replace(".lora_A.weight", ".weight") for key in saved if key.endswith(".lora_A.weight")}
    assert adapted and all(not torch.equal(theirs[name], base[name]) for name in adapted)
    heads = [key for key in saved if ".lora_" not in key]
    assert heads and all(torch.equal(theirs[key], saved[key]) for key in heads)
    texts = all_texts()[::4]
    engine = torch_engine(adapter)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    with torch.inference_mode():
        logits = np.stack([model(**tokenizer([t], return_tensors="pt")).logits[0].numpy() for t in texts])
    assert np.allclose(logits, engine.logits(texts), atol=1e-5)
    scores = pipeline("text-classification", model=str(out), top_k=None)(texts)
    assert [s[0]["label"] for s in scores] == [EMOTIONS[i] for i in engine.logits(texts).argmax(1)]
    assert all(sorted(x["label"] for x in s) == sorted(EMOTIONS) for s in scores)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "--merged OUT" in card and "## How it was made" in card and str(adapter) in card


# ---- the ONNX export ----------------------------------------------------------------------------

def test_the_onnx_export_runs_in_bare_onnxruntime(adapter, tmp_path):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    out = tmp_path / "onnx-export"
    export.export(str(adapter), onnx=out)
    engine = EmotionClassifier.from_adapter(str(adapter), batch_size=1, num_threads=1)  # the app's
    name = "model_quantized.onnx" if engine.model.int8_layers else "model.onnx"  # GPT-2: nothing in int8
    assert (adapter.parent.name.startswith("gpt2")) == (name == "model.onnx")
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        f"onnx/{name}", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md", "metrics.json",
        "calibration.json", "labels.json"}
    assert (out / "onnx" / name).read_bytes() == engine.model.path.read_bytes()
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {str(i): label for i, label in dict(enumerate(EMOTIONS)).items()} and config["model_type"]
    session = ort.InferenceSession(str(out / "onnx" / name), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    texts = all_texts()[::4]
    logits = []
    for text in texts:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        logits.append(session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
    np.testing.assert_allclose(np.stack(logits), engine.logits(texts), atol=1e-5)


def test_the_onnx_cards_snippet_runs_and_gives_the_engines_probabilities(trained_bert_adapter, tmp_path,
                                                                         monkeypatch):
    out = tmp_path / "onnx-export"
    export.export(str(trained_bert_adapter), onnx=out)
    snippet = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(encoding="utf-8"), re.DOTALL).group(1)
    assert "torch" not in snippet and "transformers" not in snippet
    monkeypatch.chdir(out)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(snippet, namespace)  # noqa: S102 - our own card
    engine = EmotionClassifier.from_adapter(str(trained_bert_adapter), num_threads=1)
    want = engine.predict_proba(["i feel so happy today", "this is terrifying"])
    np.testing.assert_allclose(namespace["probs"], want, atol=1e-5)
    assert printed.getvalue().strip() == str([EMOTIONS[i] for i in want.argmax(1)])


def test_merged_and_onnx_in_one_folder(trained_bert_adapter, tmp_path):
    out = tmp_path / "both"
    assert export.export(str(trained_bert_adapter), merged=out, onnx=out) == [out]
    assert (out / "model.safetensors").is_file() and (out / "onnx" / "model_quantized.onnx").is_file()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "--merged OUT --onnx OUT" in card and "onnxruntime alone" in card and "pipeline(" in card
    assert not (out / export.STAGING).exists()


def test_an_export_never_lands_in_an_adapter_folder(trained_bert_adapter, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_bert_adapter, copy, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(ValueError, match=r"holds an adapter .*expected an empty or export folder.*another folder"):
        export.export(str(trained_bert_adapter), merged=copy)
    with pytest.raises(ValueError, match=r"expected --merged OUT and/or --onnx OUT, found neither"):
        export.export(str(trained_bert_adapter))
    assert not (copy / "model.safetensors").exists()


def test_a_failed_export_leaves_no_partial_files(trained_bert_adapter, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("export crashed")

    monkeypatch.setattr(onnx_runtime, "save_onnx", crash)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="export crashed"):
        export.export(str(trained_bert_adapter), merged=out, onnx=out)
    assert list(out.iterdir()) == []


# ---- the command line ---------------------------------------------------------------------------

def test_the_command_pushes_its_export(trained_bert_adapter, tmp_path, fake_hub):
    out = tmp_path / "merged"
    args = export_command.build_parser().parse_args(["--adapter", str(trained_bert_adapter), "--merged", str(out),
                                             "--push_to_hub", "someone/merged", "--private"])
    assert export_command.run(args) == [out]
    (api,) = fake_hub.instances
    assert api.created == [("someone/merged", {"private": True, "exist_ok": True, "repo_type": "model"})]
    (upload,) = api.uploads
    assert set(upload["files"]) == {p.name for p in out.iterdir()}
    assert 'model="someone/merged"' in (out / "README.md").read_text(encoding="utf-8")


def test_the_command_without_a_folder_pushes_the_hub_native_layout(trained_bert_adapter, fake_hub):
    args = export_command.build_parser().parse_args(["--adapter", str(trained_bert_adapter), "--push_to_hub", "someone/x"])
    assert export_command.run(args) == []
    (upload,) = fake_hub.instances[0].uploads
    assert {"config.json", "model.safetensors", "adapter/adapter_config.json"} <= set(upload["files"])


def test_the_command_refuses_before_exporting(trained_bert_adapter, tmp_path, fake_hub, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("exported anyway")

    monkeypatch.setattr(export, "export", never)
    for argv, message in [
        (["--merged", str(tmp_path / "a"), "--push_to_hub", "not a repo"], r"push_to_hub 'not a repo' is not a repo id"),
        (["--merged", str(tmp_path / "a"), "--onnx", str(tmp_path / "b"), "--push_to_hub", "someone/x"],
         r"uploads one folder, found two"),
    ]:
        with pytest.raises(ValueError, match=message):
            export_command.run(export_command.build_parser().parse_args(["--adapter", str(trained_bert_adapter), *argv]))
    assert fake_hub.instances == []


def test_python_dash_m_export(trained_bert_adapter, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "emotion_app", "export", "--adapter", str(trained_bert_adapter),
                           "--onnx", str(out)], env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "onnx" / "model_quantized.onnx").is_file()
    assert f"Exported {trained_bert_adapter} as ONNX to {out}" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "emotion_app", "export", "--adapter", str(trained_bert_adapter)],
                         env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "error: nothing to export" in bad.stderr


def test_a_local_copy_of_a_pushed_repo_loads_as_an_adapter(trained_bert_adapter, tmp_path):
    folder = export.hub_folder(trained_bert_adapter, tmp_path, "someone/emotion-lora")
    engine = EmotionClassifier.from_adapter(str(folder), quantize=False, runtime="torch", num_threads=1)
    assert Path(engine.info["directory"]) == folder / "adapter"
    texts = all_texts()[:6]
    np.testing.assert_allclose(engine.logits(texts), torch_engine(trained_bert_adapter).logits(texts), atol=1e-6)
    assert os.stat(folder / "model.safetensors").st_mode & 0o044  # readable by others, as a download is
