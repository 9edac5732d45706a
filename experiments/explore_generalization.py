"""How much of the base model's general emotion knowledge does the fine-tuned adapter keep?

    python experiments/explore_generalization.py --output experiments/results/explore_generalization.json

Measured on dair-ai validation (choose there, never on test) and on GoEmotions-6 dev (real text,
never trained on), fp32 torch:
- WiSE-FT for LoRA: the adapter's low-rank update scaled by s (the head kept), for each s of
  --scales; s = 1 is the adapter itself, and s can ship as lora_alpha * s in adapter_config.json;
- zero-shot prototypes on the bare base: cosine between a text's embedding and "I feel sad",
  "I feel happy", ... with three poolings: mean over tokens (the base's own pre-training), the CLS
  token (what BertForSequenceClassification's head reads) and the pooler output;
- how often the texts contain the data set's collection template ("feel").
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _setup import EMBEDDED_ADAPTER, EMOTION_DATA, GOEMOTIONS6_DEV, setup_logging

from emotion_app.artifacts import ADAPTER_WEIGHTS
from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.adapters import (
    _lora_updates,
    load_base_model,
    load_tokenizer,
    read_adapter,
    resolve_base,
)
from emotion_app.labels import EMOTIONS

logger = logging.getLogger("explore_generalization")
PROTOTYPES = [f"I feel {word}" for word in ("sad", "happy", "loving", "angry", "afraid", "surprised")]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(EMBEDDED_ADAPTER))
    parser.add_argument("--data_dir", default=str(EMOTION_DATA))
    parser.add_argument("--real", default=str(GOEMOTIONS6_DEV))
    parser.add_argument("--scales", default="1.0,0.8,0.6,0.5,0.4")
    parser.add_argument("--output")
    return parser.parse_args(argv)


def datasets(args) -> dict[str, tuple[list[str], np.ndarray]]:
    validation = read_labeled_file(Path(args.data_dir) / "validation.txt")
    real = pd.read_csv(args.real)
    return {"validation": (list(validation["text"]), np.asarray(validation["label"])),
            "goemotions_dev": (list(real["text"]), real["label"].map({name: i for i, name in enumerate(EMOTIONS)}).to_numpy())}


def accuracy(model, tokenizer, texts, labels) -> float:
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(texts), 128):
            batch = tokenizer(texts[start:start + 128], padding=True, truncation=True, max_length=64,
                              return_tensors="pt")
            predictions.append(model(**batch).logits.argmax(-1).numpy())
    return round(float((np.concatenate(predictions) == labels).mean()), 4)


def wise_sweep(args, data, scales) -> list[dict]:
    source = read_adapter(args.adapter)
    tokenizer = load_tokenizer(source.tokenizer_source)
    model = load_base_model(source.base_model, tokenizer.pad_token_id).eval()
    from safetensors.torch import load_file

    weights = {k.removeprefix("base_model.model."): v for k, v in load_file(str(source.directory / ADAPTER_WEIGHTS)).items()}
    updates = _lora_updates(weights, source.config)
    params = dict(model.named_parameters())
    original = {name: p.detach().clone() for name, p in params.items()}
    rows = []
    for scale in scales:
        with torch.no_grad():
            for name, value in original.items():
                params[name].copy_(value)
            for name, value, replace in updates:
                params[name].copy_(value) if replace else params[name].add_(scale * value)
        rows.append({"scale": scale, **{name: accuracy(model, tokenizer, *pair) for name, pair in data.items()}})
        logger.info("%s", rows[-1])
    return rows


def prototypes(data) -> dict:
    from transformers import AutoModel, AutoTokenizer

    from emotion_app.constants import MINILM_ID

    path = resolve_base(MINILM_ID)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts):
        out = {"mean": [], "cls": [], "pooler": []}
        with torch.inference_mode():
            for start in range(0, len(texts), 128):
                batch = tokenizer(texts[start:start + 128], padding=True, truncation=True, max_length=64,
                                  return_tensors="pt")
                result = model(**batch)
                mask = batch["attention_mask"].unsqueeze(-1).float()
                out["mean"].append(((result.last_hidden_state * mask).sum(1) / mask.sum(1)).numpy())
                out["cls"].append(result.last_hidden_state[:, 0].numpy())
                out["pooler"].append(result.pooler_output.numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    anchors = embed(PROTOTYPES)
    results = {}
    for name, (texts, labels) in data.items():
        embedded = embed(texts)
        results[name] = {k: round(float(((unit(embedded[k]) @ unit(anchors[k]).T).argmax(1) == labels).mean()), 4)
                         for k in embedded}
        results[name]["share_with_feel"] = round(float(np.mean(["feel" in t.lower() for t in texts])), 4)
    return results


def main(argv=None) -> None:
    setup_logging()
    args = parse_args(argv)
    data = datasets(args)
    summary = {"wise_ft": wise_sweep(args, data, [float(s) for s in args.scales.split(",")]),
               "prototypes": prototypes(data)}
    print(json.dumps(summary, indent=2))  # the exploration's result
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
