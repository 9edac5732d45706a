"""Does the base's zero-shot prior in the targets carry over to real text? A quick check on frozen features.

    python experiments/explore_prior.py --output experiments/results/explore_prior.json

The bare all-MiniLM-L6-v2's mean-pooled embeddings (the features it was pre-trained to give) of
dair-ai train (the first --train-rows), validation and GoEmotions-6 dev; on them:
- the zero-shot classifier: cosine to the prompts of `labels.PROMPTS` ("I feel sad", ...);
- a linear head trained on dair-ai train labels (softmax regression, Adam, full batch);
- the same head trained on train.py's --prior_weight targets, (1 - w) * one-hot + w * the
  zero-shot softmax at temperature T, for each w and T asked for.
Accuracy on validation and on GoEmotions dev for each. A few minutes on 2 cores; no GoEmotions
row is trained on. The features stay frozen here, so validation stays far below a fine-tuned
model's: the question is only what the targets do to real text.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from _setup import EMOTION_DATA, GOEMOTIONS6_DEV, setup_logging

from emotion_app.constants import MINILM_ID
from emotion_app.data.labelled import read_labeled_file
from emotion_app.labels import EMOTIONS, PROMPTS
from emotion_app.train.prior import mean_embeddings

logger = logging.getLogger("explore_prior")


def features(named_texts: dict[str, list[str]], max_length: int = 64) -> dict[str, torch.Tensor]:
    """The bare base's unit-length mean-pooled embedding of each text, per name."""
    from transformers import AutoModel

    from emotion_app.engine.adapters import load_tokenizer, resolve_base

    tokenizer = load_tokenizer(MINILM_ID, max_length)
    model = AutoModel.from_pretrained(resolve_base(MINILM_ID)).eval()
    return {name: torch.from_numpy(mean_embeddings(model, tokenizer, texts, max_length))
            for name, texts in named_texts.items()}


def fit_head(x: torch.Tensor, targets: torch.Tensor, steps: int = 300, seed: int = 0):
    torch.manual_seed(seed)
    weight = torch.zeros(len(EMOTIONS), x.shape[1], requires_grad=True)
    bias = torch.zeros(len(EMOTIONS), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -(targets * torch.log_softmax(x @ weight.T + bias, 1)).sum(1).mean() + 1e-4 * (weight ** 2).sum()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach()


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python experiments/explore_prior.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(EMOTION_DATA))
    parser.add_argument("--real", default=str(GOEMOTIONS6_DEV))
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--weights", default="0.3,0.45")
    parser.add_argument("--temperatures", default="20,50")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    data = {"train": read_labeled_file(Path(args.data_dir) / "train.txt").select(range(args.train_rows)),
            "validation": read_labeled_file(Path(args.data_dir) / "validation.txt"),
            "real": read_labeled_file(args.real)}
    x = features({**{name: list(split["text"]) for name, split in data.items()}, "prompts": [PROMPTS[name] for name in EMOTIONS]})
    prompts = x.pop("prompts")
    y = {name: torch.tensor(split["label"]) for name, split in data.items()}

    def accuracy(scores: dict) -> dict:
        return {name: round(float((scores[name].argmax(1) == y[name]).float().mean()), 4)
                for name in ("validation", "real")}

    results = {"zero-shot prompts": accuracy({name: x[name] @ prompts.T for name in x})}
    onehot = torch.nn.functional.one_hot(y["train"], len(EMOTIONS)).float()
    for label, targets in [("labels", onehot)] + [
            (f"prior w={w:g} T={t:g}", (1 - w) * onehot + w * torch.softmax(t * x["train"] @ prompts.T, 1))
            for t in map(float, args.temperatures.split(",")) for w in map(float, args.weights.split(","))]:
        weight, bias = fit_head(x["train"], targets)
        results[f"linear head, {label}"] = accuracy({name: x[name] @ weight.T + bias for name in x})
    for name, figures in results.items():
        print(f"{name:32s} validation {figures['validation']:.2%}  GoEmotions dev {figures['real']:.2%}")
    if args.output:
        Path(args.output).write_text(json.dumps({"train_rows": args.train_rows, "results": results}, indent=2) + "\n",
                                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
