"""Training throughput: steps/s and examples/s of train.py's Trainer for each config, on tiny data.

    python benchmarks/bench_training.py --output docs/bench_training.json
    python benchmarks/bench_training.py --configs configs/minilm-labels.json --steps 20

Each config runs through the same code as train.py (its JSON + flags parsed by emotion_app.cli,
the LoRA model from emotion_app.train.lora, the Trainer from emotion_app.train.trainer) for --steps
optimizer steps on generated texts shaped like dair-ai/emotion (5-40 words), with evaluation and
checkpointing off. The first step (allocations, warm-up) is not timed.

configs/dialogrpt-updown.json names microsoft/DialogRPT-updown on the Hub, which this benchmark
never downloads: it builds a model of the same shape from its config in code (GPT-2 medium:
24 layers, 1024 wide, 16 heads, 50257-token vocabulary; random weights) with the bundled MiniLM
tokenizer standing in for GPT-2's (about as many tokens per English text). The throughput of
random and trained weights is the same. --gpt2-layers N makes it smaller for a quick try.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path

import torch
from _common import REPO, setup_logging
from transformers import TrainerCallback

from emotion_app.constants import MINILM_ID
from emotion_app.data.labelled import load_splits
from emotion_app.engine.adapters import resolve_base
from emotion_app.labels import EMOTIONS
from emotion_app.train.arguments import (
    REFERENCE_BASE_ID,
    parse_train_args,
)
from emotion_app.train.lora import build_lora_model
from emotion_app.train.trainer import _trainer

logger = logging.getLogger("bench_training")
CONFIGS = [REPO / "configs" / "minilm-labels.json", REPO / "configs" / "dialogrpt-updown.json"]
WORDS = ("i feel so happy sad angry scared surprised loved lonely today about the news from my friend "
         "when we met at work and it was really strange how everyone left early").split()


class StepTimer(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def write_tiny_data(directory: Path, rows: int = 256) -> Path:
    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", rows), ("validation", 32), ("test", 32)):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(5, 40))) + f";{EMOTIONS[i % len(EMOTIONS)]}"
                 for i in range(count)]
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def build_gpt2_medium_shaped(directory: Path, layers: int) -> Path:
    """DialogRPT-updown's architecture (GPT2ForSequenceClassification, GPT-2 medium), random weights."""
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(MINILM_ID))
    config = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=1024, n_layer=layers, n_head=16,
                        num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2ForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def bench_config(config: Path, data_dir: Path, work: Path, steps: int, gpt2_layers: int) -> dict:
    """Time `steps` optimizer steps of `config`'s training after one untimed warm-up step."""
    overrides = ["--data_dir", str(data_dir), "--output_dir", str(work / "out"), "--max_steps", str(steps + 1),
                 "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                 "--report_to", "none", "--logging_steps", "100000", "--use_cpu", "true",
                 "--disable_tqdm", "true"]
    model_args, data_args, lora_args, run_args = parse_train_args([str(config), *overrides])
    note = "real base weights"
    if model_args.base_model == REFERENCE_BASE_ID:
        model_args.base_model = str(build_gpt2_medium_shaped(work / "gpt2-shaped", gpt2_layers))
        note = f"GPT-2-medium-shaped ({gpt2_layers} layers), random weights, built in code; MiniLM tokenizer"
    data = load_splits(data_args)
    model, tokenizer = build_lora_model(model_args.base_model, lora_args, model_args.max_length)
    # Steps cost the same on label ids as on --prior_weight's target distributions; the prior itself
    # (one forward pass of the base over the training texts, before the first step) is not timed.
    trainer = _trainer(model, tokenizer, data, None, model_args.max_length, run_args, work / "out")
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    ends = timer.ends  # timed from the end of step 1 (the warm-up) to the end of the last step
    steps_per_s = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 else float("nan")
    batch = run_args.per_device_train_batch_size * run_args.gradient_accumulation_steps * run_args.world_size
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"config": str(config.relative_to(REPO)), "model": note, "timed_steps": len(ends) - 1,
            "batch_size": batch, "max_length": model_args.max_length, "steps_per_s": steps_per_s,
            "examples_per_s": steps_per_s * batch, "trainable_params": trainable,
            "total_params": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> None:
    setup_logging(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=[str(c) for c in CONFIGS], help="Config files to time.")
    parser.add_argument("--steps", type=int, default=6, help="Timed optimizer steps per config (after 1 warm-up).")
    parser.add_argument("--gpt2-layers", type=int, default=24, help="Layers of the DialogRPT stand-in (24 = medium).")
    parser.add_argument("--output", help="Write the JSON summary to this file too.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        data_dir = write_tiny_data(Path(tmp) / "data")
        for index, config in enumerate(args.configs):
            work = Path(tmp) / f"run{index}"
            results.append(bench_config(Path(config).resolve(), data_dir, work, args.steps, args.gpt2_layers))
    summary = {"torch_threads": torch.get_num_threads(), "results": results}
    text = json.dumps(summary, indent=2)
    print(text)
    print("\n| config | model | batch | steps/s | examples/s |\n|---|---|---:|---:|---:|")
    for row in results:
        print(f"| {row['config']} | {row['model']} | {row['batch_size']} | {row['steps_per_s']:.3f} | "
              f"{row['examples_per_s']:.1f} |")
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
