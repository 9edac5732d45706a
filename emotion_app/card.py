"""The model card (README.md with Hub metadata) written beside a trained adapter."""

from __future__ import annotations

import json
from pathlib import Path

from .config import DEFAULT_DATASET
from .labels import LABELS

TASK = {"type": "text-classification", "name": "Text Classification"}


def model_card(metrics: dict, license_id: str = "apache-2.0") -> str:
    """Markdown with YAML front matter (base_model, peft, data set, model-index) and a results table."""
    base = metrics["base_model"]
    test = metrics.get("test")
    meta = {
        "base_model": base,
        "library_name": "peft",
        "datasets": [DEFAULT_DATASET],
        "pipeline_tag": "text-classification",
        "license": license_id,
        "language": ["en"],
        "tags": ["lora", "emotion", "text-classification"],
    }
    if test:
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
    return f"---\n{front}\n---\n\n" + _body(metrics)


def _body(metrics: dict) -> str:
    base = metrics["base_model"]
    lines = [
        f"# {metrics.get('name', 'emotion-lora')}",
        "",
        f"A LoRA adapter on [{base}](https://huggingface.co/{base}) that sorts English text into six "
        f"emotions ({', '.join(LABELS)}), trained on [{DEFAULT_DATASET}](https://huggingface.co/datasets/"
        f"{DEFAULT_DATASET}) (configuration `split`).",
        "",
        "## Results",
        "",
        "| split | n | accuracy | macro-F1 | weighted-F1 |",
        "|---|---|---|---|---|",
    ]
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            lines.append(f"| {split} | {m['n']} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} |")
    if "test" in metrics:
        lines += ["", "Per class on the test split:", "", "| label | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for label, row in metrics["test"]["per_class"].items():
            lines.append(f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    if "adaptation" in metrics:
        lines += _adaptation_lines(metrics["adaptation"])
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "from peft import PeftModel",
        "",
        "# ignore_mismatched_sizes: the base's own head (DialogRPT's has 1 output) gives way to the adapter's",
        f'base = AutoModelForSequenceClassification.from_pretrained("{base}", num_labels=6, ignore_mismatched_sizes=True)',
        'model = PeftModel.from_pretrained(base, "<this repo or directory>").eval()',
        'tokenizer = AutoTokenizer.from_pretrained("<this repo or directory>")',
        "```",
        "",
        f"Label ids: {', '.join(f'{i} {name}' for i, name in enumerate(LABELS))}.",
    ]
    if "training" in metrics:
        lines += ["", "## Training", "", "```json", json.dumps(metrics["training"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def _adaptation_lines(adaptation: dict) -> list[str]:
    """Lineage and measured gain of an adapter made by emotion_app.adapt (see adaptation.py)."""
    parent, guard = adaptation["parent"], adaptation["forgetting_guard"]
    if guard["method"] == "replay":
        guarded = f"{guard['replay_rows']} replayed rows of {guard['replay_source']}"
    else:
        guarded = f"distillation toward the parent's predictions (no replay: {guard['reason']})"
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


def write_model_card(directory: Path, metrics: dict, license_id: str = "apache-2.0") -> Path:
    path = Path(directory) / "README.md"
    path.write_text(model_card(metrics, license_id), encoding="utf-8")
    return path
