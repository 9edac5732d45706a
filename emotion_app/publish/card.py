"""Model cards (README.md with Hub metadata): the adapter's (written beside it by train.py), and
the card of an export folder or of the merged model at the root of a pushed repo (export.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from emotion_app.constants import DEFAULT_DATASET
from emotion_app.labels import EMOTIONS, NEUTRAL

TASK = {"type": "text-classification", "name": "Text Classification"}


REPO_PLACEHOLDER = "<user>/<name>"
LOCAL_PLACEHOLDER = "<this repo or directory>"


def model_card(metrics: dict, license_id: str = "apache-2.0", repo_id: str | None = None) -> str:
    """The adapter's card: YAML front matter (base_model, peft, data set, model-index) and the
    results, then how to use it. `repo_id`: the Hub repo it is pushed to (then in `adapter/`
    beside the merged model, see hub.push_adapter), None for a local adapter directory."""
    return _front(metrics, license_id, "peft", ["lora"]) + _body(metrics, repo_id)


def export_card(metrics: dict, *, adapter: str, architecture: str, merged: bool, onnx_file: str | None,
                temperature: float | None, repo_id: str | None = None, with_adapter: bool = False,
                license_id: str = "apache-2.0") -> str:
    """The card of an export folder (python -m emotion_app export), also the root card of a repo
    that push_adapter uploads: what the folder holds, how it was made, how to run it.
    merged: it holds model.safetensors; onnx_file: its ONNX model (e.g. "onnx/model_quantized.onnx");
    temperature: from the adapter's calibration.json (None: not calibrated); with_adapter: the
    adapter is in `adapter/` too; architecture: the model class (config.json's architectures)."""
    base = metrics["base_model"]
    library = "transformers" if merged else "transformers.js"
    tags = (["merged-lora"] if merged else []) + (["onnx", "transformers.js"] if onnx_file else [])
    repo = repo_id or LOCAL_PLACEHOLDER
    made = [(f"The LoRA adapter `{adapter}` merged into its base [{base}](https://huggingface.co/{base}) "
              "(W += B·A·alpha/r on every adapted layer, the 6-way head taken from the adapter): a plain "
              f"`{architecture}` checkpoint that needs no peft.")] if merged else []
    if onnx_file:
        made.append(f"`{onnx_file}` is the app's inference engine exported to ONNX (opset 17, inputs `input_ids` "
                    "and `attention_mask`, output `logits`), " + (
                        "its linear layers in int8 by onnxruntime's dynamic quantization (the pooler, the head and "
                        "the feed-forward down-projections of the first half of the layers stay fp32)." if "quantized" in onnx_file
                        else "in fp32 (this architecture has no nn.Linear layers to quantize)."))
    command = "python -m emotion_app export --adapter ADAPTER" + (" --merged OUT" if merged else "") + (
        " --onnx OUT" if onnx_file else "")
    lines = [
        f"# {metrics.get('name', 'emotion-lora')}" + (" (merged)" if merged else " (ONNX)"),
        "",
        _summary(metrics, "merged into its base" if merged else "exported to ONNX"),
        "",
        "## How it was made",
        "",
        *made,
        "",
        f"Made with this project's `{command}`" + (
            "; the adapter itself is in `adapter/`." if with_adapter else "."),
        "",
        *_results(metrics),
        *(_adaptation_lines(metrics["adaptation"]) + [""] if "adaptation" in metrics else []),
        *(_soup_lines(metrics["soup"], _init_from(metrics)) + [""] if "soup" in metrics else []),
        *_shift_lines(metrics.get("shift_detector")),
        "## Use",
        "",
    ]
    if merged:
        lines += _pipeline_use(repo, temperature, with_adapter)
    if onnx_file:
        lines += _onnx_use(onnx_file, temperature)
    if with_adapter:
        lines += _peft_use(base, repo, subfolder=True, num_labels=len(_labels(metrics)))
    lines.append(_label_line(metrics))
    return _front(metrics, license_id, library, tags) + "\n".join(lines) + "\n"


def _front(metrics: dict, license_id: str, library: str, tags: list[str]) -> str:
    base = metrics["base_model"]
    test = metrics.get("test")
    meta = {
        "base_model": base,
        "library_name": library,
        "datasets": [DEFAULT_DATASET],
        "pipeline_tag": "text-classification",
        "license": license_id,
        "language": ["en"],
        "tags": [*tags, "emotion", "text-classification"],
    }
    if test:
        # dair-ai/emotion has the six emotions only: a model with more labels is scored six-way
        # (argmax over those six), the figure comparable with every six-label model on the Hub.
        test = test.get("six_way", test)
        meta["model-index"] = [{
            "name": metrics.get("name", "emotion-lora"),
            "results": [{
                "task": TASK,
                "dataset": {"type": DEFAULT_DATASET, "name": "emotion", "config": "split", "split": "test"},
                "metrics": [
                    {"type": "accuracy", "value": round(test["accuracy"], 4), "name": "Accuracy"},
                    {"type": "f1", "value": round(test["macro_f1"], 4), "name": "Macro F1",
                     "args": {"average": "macro"}},
                ],
            }],
        }]
    # JSON is valid YAML, so the front matter needs no YAML writer.
    front = "\n".join(f"{key}: {json.dumps(value)}" for key, value in meta.items())
    return f"---\n{front}\n---\n\n"


def _labels(metrics: dict) -> list[str]:
    return list(metrics.get("labels") or EMOTIONS)


def _summary(metrics: dict, form: str = "") -> str:
    base, labels = metrics["base_model"], _labels(metrics)
    named = ", ".join(labels)
    what = f"six emotions ({named})" if labels == list(EMOTIONS) else f"{len(labels)} labels ({named})"
    if NEUTRAL in labels:
        what += "; `neutral` means no clear emotion"
    sources = [f"[{DEFAULT_DATASET}](https://huggingface.co/datasets/{DEFAULT_DATASET}) (configuration `split`)"]
    extra = (metrics.get("training") or {}).get("extra_train_files")
    if extra:
        sources.append(", ".join(f"`{Path(name).parent.name}/{Path(name).name}`" for name in extra))
    return (f"A LoRA adapter on [{base}](https://huggingface.co/{base}){', ' + form + ',' if form else ''} "
            f"that sorts English text into {what}, trained on {' and '.join(sources)}.")


def _results(metrics: dict) -> list[str]:
    splits = [split for split in ("validation", "test") if split in metrics]
    if not splits:
        return []
    lines = ["## Results", "", "| split | n | accuracy | macro-F1 | weighted-F1 |", "|---|---|---|---|---|"]
    for split in splits:
        m = metrics[split]
        lines.append(f"| {split} | {m['n']} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} |")
    if "test" in metrics:
        lines += ["", "Per class on the test split:", "", "| label | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for label, row in metrics["test"]["per_class"].items():
            lines.append(f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
        lines += _six_way_lines(metrics["test"])
    return [*lines, ""]


def _six_way_lines(test: dict) -> list[str]:
    """For a model with labels beyond the six emotions: the test split has none of its extra
    labels, so the all-label macro-F1 counts their F1 of 0; the six-way figures are the comparable
    ones."""
    if "six_way" not in test:
        return []
    six, called = test["six_way"], test.get("called_neutral")
    neutral = f"; {called['share']:.2%} of its rows were called neutral" if called else ""
    return ["", f"On the six emotions alone (argmax over them; the test split has no row of the other labels, "
            f"whose F1 of 0 lowers the macro-F1 above): accuracy {six['accuracy']:.2%}, macro-F1 "
            f"{six['macro_f1']:.4f}{neutral}."]


def _body(metrics: dict, repo_id: str | None) -> str:
    base = metrics["base_model"]
    repo = repo_id or REPO_PLACEHOLDER
    temperature = (metrics.get("calibration") or {}).get("temperature")
    lines = [
        f"# {metrics.get('name', 'emotion-lora')}",
        "",
        _summary(metrics),
        "",
        *_results(metrics),
        *(_adaptation_lines(metrics["adaptation"]) + [""] if "adaptation" in metrics else []),
        *(_soup_lines(metrics["soup"], _init_from(metrics)) + [""] if "soup" in metrics else []),
        *_shift_lines(metrics.get("shift_detector")),
        "## Use",
        "",
        (f"This adapter is in the `adapter/` folder of [{repo}](https://huggingface.co/{repo}), whose root holds "
         "it merged into its base, so that transformers loads the repo in one line:" if repo_id else
         "`python train.py ... --push_to_hub --hub_model_id <user>/<name>` uploads the adapter with its merged "
         "model (at the repo's root; the adapter in `adapter/`), so that transformers loads the repo in one line:"),
        "",
        *_pipeline_use(repo, temperature, with_adapter=True),
    ]
    if not repo_id:
        lines += [("For this directory: `python -m emotion_app export --adapter <this directory> --merged OUT` "
                   "writes that merged model to OUT (`pipeline(..., model=\"OUT\")`); `--onnx OUT` the ONNX one."), ""]
    lines += _peft_use(base, repo_id or LOCAL_PLACEHOLDER, subfolder=bool(repo_id),
                       num_labels=len(_labels(metrics)))
    lines.append(_label_line(metrics))
    if "training" in metrics:
        lines += ["", "## Training", "", "```json", json.dumps(metrics["training"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def _shift_lines(detector: dict | None) -> list[str]:
    """What the figures above do not promise, and the detector that says so per row and per file."""
    lines = ["## Text unlike the training data", "",
             f"The figures above hold for text like {DEFAULT_DATASET} (short English sentences, nearly all "
             "\"i feel ...\"). On other text accuracy can be far lower while confidence stays high (this "
             "project's first MiniLM adapter, trained on it alone: 93 % on its test split, 42 % on Reddit comments "
             "mapped to the same six labels)."]
    if detector and detector.get("available", True) and "threshold" in detector:
        lines += ["", f"This adapter carries a shift detector (`{'`, `'.join(detector['files'])}`: "
                  f"{detector['method']} distance on {detector['feature']}, fitted on {detector['fit_rows']:,} "
                  f"{detector['fit_split']} rows). It flags {detector['validation_flagged']:.1%} of validation and "
                  f"{detector['test_flagged']:.1%} of test as unlike the training data; the project's scorer "
                  "(`python -m emotion_app score`, the app) adds `in_distribution` and `ood_score` per row, "
                  "estimates each file's accuracy and warns when these figures do not apply to a file."]
    elif detector:
        lines += ["", f"No shift detector was fitted ({detector.get('reason', 'unavailable')}): fit one with "
                  "`python -m emotion_app calibrate --adapter <this directory> --detector_only`."]
    return [*lines, ""]


def _init_from(metrics: dict) -> str | None:
    return ((metrics.get("training") or {}).get("lora") or {}).get("init_from")


def _soup_lines(soup: dict, init_from: str | None = None) -> list[str]:
    """What a soup made by emotion_app.cli.soup or train.py --soup_with mixes (see train/soup.py)."""
    lines = ["## How it was made", "",
             f"A weight-space mix (WiSE-FT, a model soup) of {len(soup['adapters'])} LoRA adapters of the same base, "
             f"saved as one LoRA adapter of rank {soup['rank']}: each adapted layer is W0 + sum of weight x the "
             "adapter's update, the head the weighted mean of theirs.", "",
             "| adapter | weight | its validation accuracy | adapter_model.safetensors sha256 |", "|---|---|---|---|"]
    for item in soup["adapters"]:
        accuracy = f"{item['validation_accuracy']:.2%}" if item.get("validation_accuracy") is not None else "–"
        lines.append(f"| `{item['adapter']}` | {item['weight']:g} | {accuracy} | `{item['sha256']}` |")
    if init_from:
        lines += ["", f"This run's own adapter was trained starting from `{init_from}`'s weights (`--init_from`): "
                  "the mix is a point on one fine-tuning path, not between two independent adapters."]
    if soup.get("neutral_margin"):
        fit = soup.get("neutral_margin_fit")
        why = (f", fitted on {fit['held_out_neutral_rows']:,} held-out rows labelled neutral, {fit['recall']:.0%} of "
               "which the mix then calls neutral" if fit else "")
        lines += ["", f"Neutral margin {soup['neutral_margin']:+.3f}{why}: a text is neutral only when the neutral "
                  "logit beats the best emotion's by more than it (written into the head's bias)."]
    return lines


def _adaptation_lines(adaptation: dict) -> list[str]:
    """Lineage and measured gain of an adapter made by emotion_app.cli.adapt (see adaptation.py)."""
    parent, guard = adaptation["parent"], adaptation["forgetting_guard"]
    if guard["method"] == "replay":
        guarded = f"{guard['replay_rows']} replayed rows of {guard['replay_source']}"
    else:
        guarded = f"distillation toward the parent's predictions (no replay: {guard['reason']})"
    if guard.get("neutral_replay_rows"):
        guarded += f", and {guard['neutral_replay_rows']} plain texts of {guard['neutral_source']} replayed as neutral"
    lines = ["", "## Adaptation", "",
             (f"Adapted from `{parent['adapter']}` (its adapter_model.safetensors has sha256 `{parent['sha256']}`) "
              f"by continuing its training on {adaptation['corrections']['n']} corrected rows, seed "
              f"{adaptation['seed']}; forgetting guard: {guarded}."), "",
             "| measured on | n | parent accuracy | adapted accuracy | parent macro-F1 | adapted macro-F1 |",
             "|---|---|---|---|---|---|"]
    for key, name in (("heldout", "held-out corrections"), ("dair_test", "dair-ai/emotion test")):
        figures = adaptation.get(key) or {}
        if "parent" in figures:
            before, after = figures["parent"], figures["adapted"]
            where = f"{name} ({figures['method']})" if key == "heldout" else name
            lines.append(f"| {where} | {after['n']} | {before['accuracy']:.2%} | {after['accuracy']:.2%} | "
                         f"{before['macro_f1']:.4f} | {after['macro_f1']:.4f} |")
    notes = [f"- {note}" for note in adaptation.get("notes", [])]
    return lines + ([""] + notes if notes else [])


def _pipeline_use(repo: str, temperature: float | None, with_adapter: bool) -> list[str]:
    lines = [
        "```python",
        "from transformers import pipeline",
        "",
        f'classify = pipeline("text-classification", model="{repo}", top_k=None)',
        'classify(["i feel so happy today"], truncation=True)',
        "# [[{'label': 'joy', 'score': 0.99...}, ...]]: every label, most probable first",
        "```",
        "",
        ("`truncation=True` cuts long texts at the length the model was trained with, as the app does. The "
         "scores are softmax(logits), uncalibrated."),
    ]
    if temperature:
        lines[-1] += (f" The app divides the logits by the temperature T = {temperature:.4g} from `calibration.json` "
                      "(fitted on the validation split) before the softmax, so that its confidence matches its "
                      "accuracy. To do the same, `classify(texts, function_to_apply=\"none\")` returns the logits "
                      "(divide by T, then softmax); or let this project do it:")
    else:
        lines[-1] += (" The app divides the logits by the temperature T from the adapter's `calibration.json` "
                      "before the softmax; this adapter has none (T = 1), so its probabilities are the same:")
    project = f'"{repo}"' if with_adapter else '"<the adapter: a Hub repo or a directory>"'
    return [*lines, "", "```python", "from emotion_app.engine.classifier import EmotionClassifier  # this project's engine",
            "", f"EmotionClassifier.from_adapter({project}).predict_proba([\"i feel so happy today\"])",
            "# array [N, number of labels], columns in labels.json's order, calibrated", "```", ""]


def _onnx_use(onnx_file: str, temperature: float | None) -> list[str]:
    scale = ([(f'logits = logits / json.load(open("calibration.json"))["temperature"]  # T = {temperature:.4g}, '
               "as the app")] if temperature else ["# no calibration.json: the app uses the logits as they are (T = 1)"])
    return [
        "With onnxruntime alone (`pip install onnxruntime tokenizers numpy`; no torch, no transformers):",
        "",
        "```python",
        "import json",
        "",
        "import numpy as np",
        "import onnxruntime as ort",
        "from tokenizers import Tokenizer",
        "",
        'config = json.load(open("config.json"))',
        "# the engine's limit: the tokenizer's, the model's positions, at most 512 tokens",
        'positions = config.get("max_position_embeddings") or config.get("n_positions") or 512',
        'limit = min(json.load(open("tokenizer_config.json")).get("model_max_length") or 512, positions, 512)',
        'tokenizer = Tokenizer.from_file("tokenizer.json")',
        "tokenizer.enable_truncation(int(limit))",
        'tokenizer.enable_padding(pad_id=config["pad_token_id"])',
        f'session = ort.InferenceSession("{onnx_file}", providers=["CPUExecutionProvider"])',
        "",
        'batch = tokenizer.encode_batch(["i feel so happy today", "this is terrifying"])',
        'ids = np.array([e.ids for e in batch], dtype=np.int64)',
        'mask = np.array([e.attention_mask for e in batch], dtype=np.int64)',
        '(logits,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})',
        *scale,
        "probs = np.exp(logits - logits.max(1, keepdims=True))",
        "probs /= probs.sum(1, keepdims=True)",
        'print([config["id2label"][str(i)] for i in probs.argmax(1)])',
        "```",
        "",
        "Optimum (`ORTModelForSequenceClassification.from_pretrained(folder, subfolder=\"onnx\", "
        f"file_name=\"{Path(onnx_file).name}\")`) and transformers.js (`pipeline(\"text-classification\", repo"
        + (", { dtype: \"q8\" })`" if "quantized" in onnx_file else ")`") + ") read the same layout.",
        "",
    ]


def _peft_use(base: str, where: str, subfolder: bool, num_labels: int) -> list[str]:
    extra = ', subfolder="adapter"' if subfolder else ""
    return [
        "The adapter on its base, with peft:",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "from peft import PeftModel",
        "",
        "# ignore_mismatched_sizes: the base's own head (DialogRPT's has 1 output) gives way to the adapter's",
        f'base = AutoModelForSequenceClassification.from_pretrained("{base}", num_labels={num_labels}, '
        'ignore_mismatched_sizes=True)',
        f'model = PeftModel.from_pretrained(base, "{where}"{extra}).eval()',
        f'tokenizer = AutoTokenizer.from_pretrained("{where}"{extra})',
        "```",
        "",
    ]


def _label_line(metrics: dict) -> str:
    return (f"Label ids: {', '.join(f'{i} {name}' for i, name in enumerate(_labels(metrics)))} "
            "(the adapter's labels.json).")


def write_model_card(directory: Path, metrics: dict, license_id: str = "apache-2.0",
                     repo_id: str | None = None) -> Path:
    return write_text(Path(directory) / "README.md", model_card(metrics, license_id, repo_id))


def write_text(path: Path, text: str) -> Path:
    """Write `text` through a temporary file beside `path`, then move it into place."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path
