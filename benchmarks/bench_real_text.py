"""A model on the benchmark and on real text of other styles: the default model's selection table.

    python benchmarks/bench_real_text.py --adapters outputs/minilm-v3 models/minilm-emotion-lora
    python benchmarks/bench_real_text.py --adapters models/minilm-emotion-lora --test --output docs/bench_real_text.json

Each adapter is loaded with plain transformers + peft (fp32, unmerged: what a user of the Hub
model gets) and scored on:
- dair-ai/emotion validation (and test with --test: read it once, after the choice);
- GoEmotions-6 dev: Reddit comments with exactly one of the six emotions;
- GoEmotions dev comments rated `neutral` only (does the model say "no emotion"?);
- ISEAR rows of anger, fear, joy and sadness (a domain the default model is never trained on).
"Six-way" is the argmax over the six emotions alone (the seed task; for a six-label model its
plain argmax); "called neutral" is the share of rows whose argmax over all labels is `neutral`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from _common import DATA, neutral_only, rows_of_labels, setup_logging

from emotion_app.analysis.metrics import label_set_metrics
from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.adapters import load_adapter
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.labels import EMOTIONS, NEUTRAL, parse_label

logger = logging.getLogger("bench_real_text")

ISEAR_LABELS = ("anger", "fear", "joy", "sadness")


def real_sets(data: Path, test: bool) -> dict[str, tuple[list[str], list[str]]]:
    """{set name: (texts, label names)}; the neutral set's labels are all `neutral`."""
    sets = {}
    for split in ("validation", *(("test",) if test else ())):
        rows = read_labeled_file(data / "emotion" / f"{split}.txt")
        sets[f"dair-ai {split}"] = (list(rows["text"]), [EMOTIONS[i] for i in rows["label"]])
    rows = read_labeled_file(data / "goemotions-6" / "dev.csv")
    sets["GoEmotions-6 dev"] = (list(rows["text"]), [EMOTIONS[i] for i in rows["label"]])
    neutral = neutral_only(data / "goemotions" / "dev.csv")
    sets["GoEmotions dev, neutral only"] = (neutral, [NEUTRAL] * len(neutral))
    isear, _ = rows_of_labels(data / "isear" / "isear.csv", ISEAR_LABELS)
    sets["ISEAR (4 labels)"] = (isear.texts, [cell.strip().lower() for cell in isear.cells])
    return sets


def plain_peft_logits(adapter: str, texts: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Raw logits of the unmerged fp32 PEFT model, and its labels."""
    loaded = load_adapter(adapter, merge=False)
    classifier = EmotionClassifier(loaded.model, loaded.tokenizer, labels=loaded.labels, batch_size=64)
    return classifier.logits(texts), loaded.labels


def figures(probs: np.ndarray, labels: tuple[str, ...], truth: list[str]) -> dict:
    out = {"n": len(truth)}
    called = np.array([labels[i] for i in probs.argmax(axis=1)])
    out["called_neutral"] = float((called == NEUTRAL).mean()) if NEUTRAL in labels else 0.0
    if set(truth) == {NEUTRAL}:
        return out
    metrics = label_set_metrics([parse_label(name, labels) for name in truth], probs, labels)
    six_way = metrics.get("six_way", metrics)  # a six-label model's own figures are six-way
    out["six_way_accuracy"], out["six_way_macro_f1"] = six_way["accuracy"], six_way["macro_f1"]
    if len(labels) != len(EMOTIONS):
        out["all_labels_accuracy"] = metrics["accuracy"]
    return out


def measure(adapter: str, sets: dict) -> dict:
    texts = [text for rows, _ in sets.values() for text in rows]
    logits, labels = plain_peft_logits(adapter, texts)
    probs, result, start = softmax(logits), {"adapter": adapter, "labels": list(labels)}, 0
    for name, (rows, truth) in sets.items():
        result[name] = figures(probs[start:start + len(rows)], labels, truth)
        start += len(rows)
        logger.info("%s, %s: %s", adapter, name, result[name])
    return result


def table(results: list[dict], names: list[str]) -> str:
    keys = ("six_way_accuracy", "six_way_macro_f1", "called_neutral")
    lines = ["| adapter | set | six-way acc | six-way macro-F1 | called neutral |", "|---|---|---|---|---|"]
    for result in results:
        for name in names:
            row = result[name]
            cells = [f"{row[k]:.2%}" if k != "six_way_macro_f1" and k in row else
                     (f"{row[k]:.3f}" if k in row else "–") for k in keys]
            lines.append(f"| {result['adapter']} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_real_text.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", nargs="+", required=True, help="Adapter directories (or Hub ids).")
    parser.add_argument("--data", default=str(DATA), help="The shared data folder (emotion/, goemotions/, ...).")
    parser.add_argument("--test", action="store_true", help="Also score dair-ai test (only after the choice).")
    parser.add_argument("--output", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    sets = real_sets(Path(args.data), args.test)
    results = [measure(adapter, sets) for adapter in args.adapters]
    print(table(results, list(sets)))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
