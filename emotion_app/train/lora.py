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
    """(peft model with a head of one output per label, tokenizer) ready to train; with
    args.init_from, its LoRA matrices and head start as that adapter's."""
    tokenizer = load_tokenizer(base_model, max_length)
    model = load_base_model(base_model, tokenizer.pad_token_id, labels)
    from peft import get_peft_model

    model = get_peft_model(model, lora_config(model.config.model_type, args))
    if args.init_from:
        start_from(model, args.init_from, args, tuple(labels))
    return model, tokenizer


def start_from(model, adapter: str, args: LoraArguments, labels: tuple[str, ...]) -> None:
    """Load `adapter`'s LoRA matrices and head rows into the fresh peft `model` (--init_from)."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from emotion_app.train.soup import read_ingredient

    try:
        start, _ = read_ingredient(adapter)
    except (OSError, ValueError) as err:
        raise ValueError(f"--init_from: {err} The adapter to start from must exist before this run starts.") from None
    found = (start.config.get("r"), start.config.get("lora_alpha"))
    if found != (args.lora_r, args.lora_alpha):
        raise ValueError(f"--init_from {adapter} has LoRA rank {found[0]} and alpha {found[1]}; this run asks for "
                         f"{args.lora_r} and {args.lora_alpha}. Pass --lora_r {found[0]} --lora_alpha {found[1]} "
                         "so the run starts exactly at that adapter.")
    extra = [label for label in start.labels if label not in labels]
    if extra:
        raise ValueError(f"--init_from {adapter} has labels {', '.join(extra)} that this run's labels "
                         f"({', '.join(labels)}) lack: its head rows would have nowhere to go. Start from an "
                         "adapter whose labels are among the run's.")
    fresh = get_peft_model_state_dict(model)
    if set(fresh) != set(start.weights):
        differ = sorted(set(fresh) ^ set(start.weights))[:3]
        raise ValueError(f"--init_from {adapter} adapts other layers than this run (e.g. {differ}): pass the "
                         "--target_modules it was trained with.")
    rows = [labels.index(label) for label in start.labels]
    state = {}
    for key, value in start.weights.items():
        lora = key.endswith((".lora_A.weight", ".lora_B.weight"))
        if lora and value.shape == fresh[key].shape:
            state[key] = value
        elif not lora and value.shape[0] == len(rows) and value.shape[1:] == fresh[key].shape[1:]:
            state[key] = fresh[key].clone()  # the head: its rows go by label name, a label it lacks stays fresh
            state[key][rows] = value.to(fresh[key].dtype)
        else:
            raise ValueError(f"--init_from {adapter}: {key} is {tuple(value.shape)} there but "
                             f"{tuple(fresh[key].shape)} in this run: start from an adapter of the same base.")
    set_peft_model_state_dict(model, state)
