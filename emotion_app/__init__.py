"""Fine-tune a LoRA emotion classifier and put it to work.

The public API, imported on first use so that `import emotion_app` stays light (the app starts
before torch and transformers are loaded):

    from emotion_app import EmotionClassifier, score_file
    classifier = EmotionClassifier.from_adapter("models/minilm-emotion-lora")
    classifier.predict_proba(["what a lovely surprise"])

Where things live: `cli/` the commands, `engine/` loading and running a model, `data/` reading
tables and labelled splits, `analysis/` metrics, review and shift, `train/` training and adaptation,
`publish/` export, model card and the Hub, `ui/` the Gradio app (docs/architecture.md).
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_EXPORTS = {
    "EMOTIONS": "emotion_app.labels",
    "NEUTRAL": "emotion_app.labels",
    "EmotionClassifier": "emotion_app.engine.classifier",
    "load_adapter": "emotion_app.engine.adapters",
    "score_file": "emotion_app.scoring",
    "read_table": "emotion_app.data.tables",
    "read_labeled_file": "emotion_app.data.labelled",
    "classification_metrics": "emotion_app.analysis.metrics",
    "adapt": "emotion_app.train.adaptation",
    "train": "emotion_app.train.trainer",
    "export": "emotion_app.publish.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emotion_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
