"""Can LoRA move the base's mean-pooled embedding into the path BertForSequenceClassification reads?

    python experiments/explore_distillation.py --epochs 1 --output experiments/results/explore_distillation.json

The bare MiniLM knows emotions in general through its mean-pooled embedding (zero-shot prototypes
"I feel sad / happy / ...": 55.5 % on GoEmotions dev), but the sequence classifier's head reads the
pooler output (30.2 % with the same prototypes). This trains LoRA (r=16, every linear layer, the
pooler included) on the dair-ai train texts, without labels, so that the pooler output points where
the base's mean-pooled embedding of the same text points (loss 1 - cosine), and measures the
prototypes through the pooler on dair-ai validation and GoEmotions dev before and after each epoch.
A first stage of a recipe for issue 15, if it works; it never sees a GoEmotions row in training.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _setup import EMOTION_DATA, GOEMOTIONS6_DEV, setup_logging
from explore_generalization import PROTOTYPES, datasets

from emotion_app.constants import MINILM_ID
from emotion_app.data.labelled import read_labeled_file
from emotion_app.engine.adapters import load_base_model, load_tokenizer, resolve_base

logger = logging.getLogger("explore_distillation")
MAX_LENGTH = 64


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(EMOTION_DATA))
    parser.add_argument("--real", default=str(GOEMOTIONS6_DEV))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    return parser.parse_args(argv)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)


def encode(tokenizer, texts: list[str]) -> dict:
    return tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")


def mean_pooled_targets(bert, tokenizer, texts: list[str]) -> torch.Tensor:
    """The bare base's mean-pooled embedding of each text (the teacher), computed once."""
    order = np.argsort([len(t) for t in texts])
    out = torch.zeros(len(texts), bert.config.hidden_size)
    with torch.inference_mode():
        for start in range(0, len(texts), 256):
            index = order[start:start + 256]
            batch = encode(tokenizer, [texts[i] for i in index])
            out[index] = mean_pool(bert(**batch).last_hidden_state, batch["attention_mask"])
    return out


def prototype_accuracy(bert, tokenizer, data: dict) -> dict:
    """Cosine to the prototypes through the pooler output, per data set."""
    def embed(texts):
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), 128):
                rows.append(bert(**encode(tokenizer, texts[start:start + 128])).pooler_output)
        x = torch.cat(rows)
        return x / x.norm(dim=1, keepdim=True)

    anchors = embed(PROTOTYPES)
    return {name: round(float(((embed(texts) @ anchors.T).argmax(1).numpy() == labels).mean()), 4)
            for name, (texts, labels) in data.items()}


def run(args) -> dict:
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(args.seed)
    path = resolve_base(MINILM_ID)
    tokenizer = load_tokenizer(path, MAX_LENGTH)
    texts = list(read_labeled_file(Path(args.data_dir) / "train.txt")["text"])
    data = datasets(args)
    model = load_base_model(path, tokenizer.pad_token_id)
    targets = mean_pooled_targets(model.bert, tokenizer, texts)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=16, lora_alpha=32, lora_dropout=0.0,
                                             target_modules="all-linear"))
    bert = model.base_model.model.bert
    history = [{"epoch": 0, **prototype_accuracy(bert.eval(), tokenizer, data)}]
    logger.info("%s", history[-1])
    steps = args.epochs * (len(texts) // args.batch_size + 1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, s / 30) * max(0.0, 1 - s / steps))
    order = np.argsort([len(t) for t in texts])  # length-sorted batches, in a shuffled order
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        np.random.default_rng(args.seed + epoch).shuffle(batches)
        bert.train()
        losses = []
        for index in batches:
            pooled = bert(**encode(tokenizer, [texts[i] for i in index])).pooler_output
            loss = (1 - torch.nn.functional.cosine_similarity(pooled, targets[index], dim=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "loss_last_50": round(float(np.mean(losses[-50:])), 4),
                        "minutes": round((time.perf_counter() - started) / 60, 1),
                        **prototype_accuracy(bert.eval(), tokenizer, data)})
        logger.info("%s", history[-1])
    return {"recipe": vars(args), "history": history}


def main(argv=None) -> None:
    setup_logging()
    summary = run(parse_args(argv))
    print(json.dumps(summary, indent=2))  # the exploration's result
    if summary["recipe"]["output"]:
        Path(summary["recipe"]["output"]).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
