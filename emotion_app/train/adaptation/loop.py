"""The adaptation's training loop: one training from the model's current weights on given rows.

Why not transformers' Trainer (train.py's): a run trains several times on a few hundred rows
(each held-out fold, then the final model: up to six with the defaults), each from weights held
in memory, with a per-row soft target and one step count across them all; that is this page,
where the Trainer would need a custom loss, a collator for the soft targets, a callback and an
output directory each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DISTILL_TEMPERATURE = 2.0  # softens the parent's probabilities so the runners-up count as well
GROUP_BATCHES = 16  # batches sorted by length together (as transformers' group_by_length)


def train_loop(model, tokenizer, texts: list[str], labels: np.ndarray, soft: np.ndarray | None, options,
               seed: int, tick: Callable[[], None]) -> int:
    """Train `model` in place on (texts, labels), plus KL to the `soft` targets when given (weighted
    by options.distill_weight): AdamW, linear warm-up then decay, gradient norm clipped at 1; batches
    of similar lengths in a seeded order. `tick()` after every optimizer step. Returns the number of
    steps. `options` is an AdaptOptions with its epochs set."""
    import torch
    import torch.nn.functional as F

    ids = tokenizer(texts, truncation=True, max_length=options.max_length)["input_ids"]
    rng = np.random.default_rng([seed, 3])
    schedule = [_length_batches(rng, ids, options.batch_size) for _ in range(options.epochs)]
    total = sum(map(len, schedule))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=options.weight_decay)
    warmup = max(1, round(options.warmup_ratio * total)) if options.warmup_ratio else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    targets = torch.as_tensor(labels, dtype=torch.long)
    soft = torch.as_tensor(soft, dtype=torch.float32) if soft is not None else None
    model.train()
    for batch in (b for epoch in schedule for b in epoch):
        inputs = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()
        index = torch.as_tensor(batch)
        loss = F.cross_entropy(logits, targets[index])
        if soft is not None and options.distill_weight:
            student = F.log_softmax(logits / DISTILL_TEMPERATURE, dim=-1)
            # T^2 keeps the gradient scale of the soft term independent of T (Hinton et al., 2015)
            loss = loss + options.distill_weight * DISTILL_TEMPERATURE**2 * F.kl_div(
                student, soft[index], reduction="batchmean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tick()
    model.eval()
    return total


def _length_batches(rng: np.random.Generator, ids: list[list[int]], batch_size: int) -> list[np.ndarray]:
    """One epoch's batches: shuffled, then sorted by length within groups of GROUP_BATCHES batches and
    the batches shuffled again (as transformers' group_by_length), so a batch pads little."""
    order = rng.permutation(len(ids))
    group = GROUP_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), group):
        chunk = order[start:start + group]
        chunk = chunk[np.argsort([len(ids[i]) for i in chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
