"""Helpers the tests share: tiny BERT and GPT-2 (DialogRPT-shaped) checkpoints, small labelled
files, running the real train.py, and a Predictor without a model (`FakePredictor`). Everything is
built here, offline; conftest.py turns them into fixtures.

Tiny = hidden 32, 2 layers, so a training step takes milliseconds. The tokenizers are built from
the tests' own sentences below.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from emotion_app.engine.classifier import BasePredictor, Progress

REPO = Path(__file__).resolve().parents[1]
LABEL_NAMES = ("sadness", "joy", "love", "anger", "fear", "surprise")  # the data set's order, spelled out

# Clear, one-emotion sentences: 4 templates x 4 words per label = 16 rows a label.
_WORDS = {
    "sadness": ["sad", "lonely", "miserable", "heartbroken"],
    "joy": ["happy", "cheerful", "delighted", "glad"],
    "love": ["loving", "affectionate", "tender", "devoted"],
    "anger": ["angry", "furious", "irritated", "outraged"],
    "fear": ["scared", "terrified", "afraid", "anxious"],
    "surprise": ["surprised", "amazed", "astonished", "shocked"],
}
_TEMPLATES = [
    "i feel so {} today",
    "i am feeling {} about everything that happened",
    "honestly i felt {} when i read the letter",
    "i keep feeling {} and i cannot hide it",
]


def _examples() -> list[tuple[str, int]]:
    rows = []
    for template in _TEMPLATES:
        for label_id, name in enumerate(LABEL_NAMES):
            for word in _WORDS[name]:
                rows.append((template.format(word), label_id))
    return rows


EXAMPLES = _examples()  # 96 rows, every label in every block of 24
# train: templates 0-1 (48 rows), validation: template 2, test: template 3 (24 rows each)
SPLIT_ROWS = {"train": EXAMPLES[:48], "validation": EXAMPLES[48:72], "test": EXAMPLES[72:]}

# Plain sentences that carry no emotion, for models with a seventh outcome, `neutral` (id 6).
SEVEN_LABELS = (*LABEL_NAMES, "neutral")
NEUTRAL_TEXTS = [template.format(word) for template in
                 ("the meeting is moved to room {}", "the parcel arrives at the {} desk",
                  "please send the {} report by noon", "the bus to the {} station leaves at nine")
                 for word in ("north", "south", "east", "west")]
NEUTRAL_SPLIT_ROWS = {split: rows + [(text, 6) for text in NEUTRAL_TEXTS[i::3]]
                      for i, (split, rows) in enumerate(SPLIT_ROWS.items())}

# Subprocesses: offline, one thread (the machine is small and shared), no accelerator.
SUBPROCESS_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONUNBUFFERED": "1",
}


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, **SUBPROCESS_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def write_split_files(directory: Path, rows: dict[str, list[tuple[str, int]]] | None = None,
                      names: tuple[str, ...] = LABEL_NAMES) -> Path:
    """train/validation/test.txt in the original release's `text;label-name` format."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, split_rows in (rows or SPLIT_ROWS).items():
        lines = [f"{text};{names[label]}" for text, label in split_rows]
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def all_texts() -> list[str]:
    return [text for text, _ in EXAMPLES]


def build_tiny_bert(directory: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = sorted({w for text in all_texts() for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    _seed()
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_gpt2(directory: Path) -> Path:
    """Shaped like microsoft/DialogRPT-updown: GPT2ForSequenceClassification, 1 label, no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2Tokenizer

    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(all_texts(), trainers.BpeTrainer(
        vocab_size=400, special_tokens=[eos], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = GPT2Tokenizer(vocab=model_json["vocab"], merges=merges)
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    config = GPT2Config(vocab_size=len(model_json["vocab"]), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=eos_id, eos_token_id=eos_id, num_labels=1)
    _seed()
    GPT2ForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def run_train(args: list[str], timeout: float = 1200) -> subprocess.CompletedProcess:
    """The real `python train.py ...` in a subprocess; fails the test with its output if it fails."""
    done = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"train.py {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done


def quick_train_args(base: Path, data: Path, output: Path, steps: int = 6) -> list[str]:
    """A few fast steps that still exercise eval, checkpointing and best-model reloading."""
    return [
        "--base_model", str(base), "--data_dir", str(data), "--output_dir", str(output),
        "--max_length", "32", "--max_steps", str(steps), "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16", "--learning_rate", "5e-3", "--eval_strategy", "steps",
        "--eval_steps", "3", "--save_strategy", "steps", "--save_steps", "3", "--logging_steps", "1",
        "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0", "--seed", "7",
        "--report_to", "none", "--use_cpu", "true",
    ]


# --- a Predictor without a model ---------------------------------------------------------------------

class FakePredictor(BasePredictor):
    """The engine's Predictor interface with `rows(texts)` in place of a model: the probabilities of
    each text, one per label of `labels` (uniform without `rows`). Every call's texts are kept in
    `calls` (with `record` False only counted, in `n_calls`: a long stream keeps no rows); `info` is
    what from_adapter records (a Hub adapter on a Hub base unless told). No shift detector, so the
    check for unfamiliar text is unavailable, as for an adapter without one."""

    def __init__(self, rows: Callable[[list[str]], np.ndarray] | None = None, labels: Sequence[str] = LABEL_NAMES,
                 *, adapter: str = "someone/fake-adapter", base_model: str = "fake-base",
                 directory: str | None = None, record: bool = True):
        self.rows = rows
        self.labels = tuple(labels)
        self.info = {"adapter": adapter, "base_model": base_model, "directory": directory}
        self.record = record
        self.calls: list[list[str]] = []
        self.n_calls = 0

    def predict_proba(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        texts = list(texts)
        self.n_calls += 1
        if self.record:
            self.calls.append(texts)
        if self.rows is None:
            probs = np.full((len(texts), len(self.labels)), 1 / len(self.labels))
        else:
            probs = self.rows(texts)
        if progress is not None:
            progress(len(texts), len(texts))
        return probs


def peaked(label_ids: Sequence[int], top: float, n_labels: int = len(LABEL_NAMES)) -> np.ndarray:
    """Probability rows with `top` on each row's label and the rest spread evenly over the others."""
    rows = np.full((len(label_ids), n_labels), (1 - top) / (n_labels - 1))
    rows[np.arange(len(label_ids)), np.asarray(label_ids, dtype=int)] = top
    return rows


def spy_on(predictor: BasePredictor) -> FakePredictor:
    """A FakePredictor answering with `predictor`'s probabilities (its labels too), keeping every call's texts."""
    return FakePredictor(predictor.predict_proba, predictor.labels)
