"""The base model's zero-shot prior, mixed into the training targets.

Fine-tuning on dair-ai/emotion teaches the head that data set's conventions ("I love X" is joy
there) and forgets what the base knew about emotions in general: the bare all-MiniLM-L6-v2,
comparing a text's mean-pooled embedding with one prompt per label (`labels.PROMPTS`), gets
55.5 % on Reddit comments (GoEmotions-6 dev) where the fine-tuned adapter gets 42 %. Training
on targets (1 - w) * label + w * prior keeps some of that knowledge: the label stays the largest
share (w < 0.5), and the prior says how the base ranks the other five emotions for this text.
Measured in docs/training.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from emotion_app.labels import EMOTIONS, PROMPT_SETS

logger = logging.getLogger(__name__)

BATCH = 128


def prior_targets(base_model: str, texts: Sequence[str], ids: Sequence[int], weight: float,
                  temperature: float, max_length: int, labels: Sequence[str] = EMOTIONS,
                  prompt_set: str = "one") -> np.ndarray:
    """[N, labels] soft targets: (1 - weight) * one-hot(label) + weight * zero-shot prior."""
    check_prior(weight, temperature, prompt_set)
    onehot = np.eye(len(labels), dtype=np.float32)[np.asarray(ids, dtype=int)]
    if weight == 0:
        return onehot
    prompts = PROMPT_SETS[prompt_set]
    missing = [name for name in labels if name.lower() not in prompts]
    if missing:
        raise ValueError(f"--prior_weight needs a prompt per label; there is none for {missing} (prompts exist for "
                         f"{', '.join(prompts)}). Use --prior_weight 0 for these labels.")
    prior = zero_shot_probabilities(base_model, texts, temperature, max_length,
                                    [prompts[name.lower()] for name in labels])
    return (1 - weight) * onehot + weight * prior


def check_prior(weight: float, temperature: float, prompt_set: str = "one") -> None:
    if not 0 <= weight < 0.5:
        raise ValueError(f"prior_weight must be in [0, 0.5) so that the label stays the largest share of "
                         f"each target; found {weight}. Use 0 for plain labels, e.g. 0.3.")
    if not temperature > 0:
        raise ValueError(f"prior_temperature must be positive (it scales cosines in [-1, 1]); found "
                         f"{temperature}. The base's cosines differ by a few hundredths, so use e.g. 50.")
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"prior_prompts must be one of {', '.join(PROMPT_SETS)}; found {prompt_set!r}. "
                         "Use 'one' for one prompt per label.")


def zero_shot_probabilities(base_model: str, texts: Sequence[str], temperature: float, max_length: int,
                            prompts: Sequence[Sequence[str]] | None = None) -> np.ndarray:
    """softmax(temperature * mean cosine of each text's mean-pooled base embedding with each label's
    prompts); the prompts default to one per emotion."""
    prompts = prompts or [PROMPT_SETS["one"][name] for name in EMOTIONS]
    from transformers import AutoModel

    from emotion_app.engine.adapters import load_tokenizer, resolve_base
    from emotion_app.engine.classifier import softmax

    tokenizer = load_tokenizer(base_model, max_length)
    model = AutoModel.from_pretrained(resolve_base(base_model)).eval()
    logger.info("Zero-shot prior of %s on %d texts", base_model, len(texts))
    # All prompts in one pass and one product, so one prompt per label gives the single-prompt prior exactly.
    anchors = mean_embeddings(model, tokenizer, [prompt for group in prompts for prompt in group], max_length)
    rows = mean_embeddings(model, tokenizer, list(texts), max_length)
    ends = np.cumsum([len(group) for group in prompts])
    scaled = temperature * rows @ anchors.T
    return softmax(np.stack([part.mean(1) for part in np.split(scaled, ends[:-1], axis=1)], axis=1)).astype(np.float32)


def mean_embeddings(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Unit-length mean of the last hidden states over each text's tokens."""
    import torch

    # Sorted by length so that a batch pads little; the rows go back to their order at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            index = order[start:start + BATCH]
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1)
            out[index] = torch.nn.functional.normalize(mean, dim=1).float().numpy()
    return out
