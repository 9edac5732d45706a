"""LoRA set-up for training: the peft config per architecture and the model to train."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emotion_app.engine.adapters import load_base_model, load_tokenizer
from emotion_app.labels import EMOTIONS

if TYPE_CHECKING:
    from peft import LoraConfig

    from emotion_app.train.arguments import LoraArguments


# Per architecture: the reference recipe adapts GPT-2's fused attention projection; for BERT
# the LoRA paper's query/value. Anything else must name its modules (or use all-linear).
DEFAULT_TARGETS = {"gpt2": ["c_attn"], "bert": ["query", "value"]}


def lora_config(model_type: str, args: LoraArguments) -> LoraConfig:
    from peft import LoraConfig, TaskType

    targets = args.target_modules or DEFAULT_TARGETS.get(model_type)
    if not targets:
        raise ValueError(f"no default LoRA target modules for model type {model_type!r}: expected one of "
                         f"{sorted(DEFAULT_TARGETS)}. Pass --target_modules (e.g. all-linear).")
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=model_type == "gpt2",  # GPT-2 stores its linear layers as Conv1D
    )


def build_lora_model(base_model: str, args: LoraArguments, max_length: int, labels=EMOTIONS):
    """(peft model with a head of one output per label, tokenizer) ready to train."""
    tokenizer = load_tokenizer(base_model, max_length)
    model = load_base_model(base_model, tokenizer.pad_token_id, labels)
    from peft import get_peft_model

    return get_peft_model(model, lora_config(model.config.model_type, args)), tokenizer
