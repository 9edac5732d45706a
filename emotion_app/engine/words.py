"""The word table: the engine's raw logits for every word of the tokenizer's vocabulary read on
its own, computed once per model and kept in the ONNX cache beside it.

Why: the page's explanation (analysis/explain.py) reads each word of the text alone, one short
text per word. Those texts do not depend on the rest of the text, so a word the tokenizer has as
one token is looked up here instead of run again: on the load test's texts that was about a
seventh of the page's CPU per answer (docs/performance.md, "The app under load"). Words the table lacks (two
or more tokens: "today!", a rare name) still go through the model with the request.

What it holds: one row per token sequence that a decoded vocabulary entry tokenizes back to as
the only non-special token (BERT: [CLS] word [SEP]; GPT-2: the word), keyed by that exact id
sequence, so a lookup gives what running the word would. The rows are computed in a fixed order
and fixed batches, so the table, and every explanation that reads it, depends on the model alone,
never on what other visitors asked before (int8 activations are scaled per batch). The app builds
it at low priority in the background the first time it serves a model (16-21 s of one core for
MiniLM's 23,699 words) and reads it from the cache afterwards; until then the explanation runs every
word with the request, as before. `python app.py --prepare` builds it ahead with the ONNX model.
The build's cost grows with the model: a GPT-2-medium base (DialogRPT, fp32) would need several minutes of one
core for its first 32,768 entries (estimated from its FLOPs, not measured), at the same low priority.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion_app.engine.onnx import OnnxModel

logger = logging.getLogger(__name__)

MAX_VOCABULARY = 32768  # ids 0..32767: all of BERT's; GPT-2's first (most frequent) merges
TABLE_BATCH = 64  # rows per forward pass while building: fixed, so that the table is reproducible; the fastest here
FILE_SUFFIX = ".words.npz"


class WordTable:
    """Raw logits [K, labels] of K single-token texts, looked up by their token ids."""

    def __init__(self, ids: np.ndarray, logits: np.ndarray):
        ids, logits = np.asarray(ids, dtype=np.int64), np.asarray(logits, dtype=np.float32)
        if ids.ndim != 2 or logits.ndim != 2 or len(logits) != len(ids) or not np.isfinite(logits).all():
            raise ValueError(f"a word table needs ids [K, L] and finite logits [K, labels]; found ids "
                             f"{ids.shape} and logits {logits.shape}. Delete the file to build it again.")
        self.ids, self.logits = ids, logits
        self._rows = {tuple(row): i for i, row in enumerate(ids.tolist())}

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Each token sequence's row in the table, -1 where the table does not have it."""
        return np.array([self._rows.get(tuple(seq), -1) for seq in sequences], dtype=np.int64)

    def save(self, path: Path) -> Path:
        """Write atomically (a temporary file, then rename): a reader never sees half a table."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, ids=self.ids, logits=self.logits)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> WordTable:
        with np.load(path) as arrays:
            return cls(arrays["ids"], arrays["logits"])


def single_token_words(tokenizer, vocabulary_size: int) -> tuple[list[str], list[list[int]]]:
    """(words, their token ids) for the vocabulary entries, in id order, that decode to a word
    without spaces which tokenizes back to that entry alone between the special tokens."""
    frame = len(tokenizer("")["input_ids"])  # the special tokens every text gets
    size = min(vocabulary_size, MAX_VOCABULARY)
    decoded = [tokenizer.decode([i]) for i in range(size)]
    candidates = [(i, word) for i, word in enumerate(decoded) if word and not any(ch.isspace() for ch in word)]
    encoded = tokenizer([word for _, word in candidates])["input_ids"]
    words, sequences, seen = [], [], set()
    for (i, word), ids in zip(candidates, encoded):
        if len(ids) == frame + 1 and i in ids and tuple(ids) not in seen:
            seen.add(tuple(ids))
            words.append(word)
            sequences.append(list(ids))
    return words, sequences


def build(classifier) -> WordTable:
    """The table of `classifier` (an EmotionClassifier on ONNX Runtime): every single-token word
    run in fixed batches of TABLE_BATCH, in id order, on one thread whatever the classifier's
    own count (as the app runs it), so that the table is the same whoever builds it."""
    model = classifier.model
    if not isinstance(model, OnnxModel):
        raise ValueError(f"a word table is built on an ONNX Runtime engine; found {type(model).__name__}. "
                         'Load the classifier with runtime="onnxruntime" (the default on CPU).')
    if model.num_threads != 1:  # its own session for the build, dropped afterwards
        model = OnnxModel(model.path, model.config, model.int8_layers, 1, model.feature_token)
    vocabulary_size = getattr(model.config, "vocab_size", None)
    if not vocabulary_size:
        raise ValueError("the model's config names no vocab_size: expected one to list the words to tabulate.")
    _, sequences = single_token_words(classifier.tokenizer, int(vocabulary_size))
    ids = np.array(sequences, dtype=np.int64).reshape(len(sequences), -1)
    logits = np.zeros((len(ids), len(classifier.labels)), dtype=np.float32)
    for start in range(0, len(ids), TABLE_BATCH):
        batch = ids[start:start + TABLE_BATCH]
        logits[start:start + len(batch)] = model(batch, np.ones_like(batch))
    return WordTable(ids, logits)


def table_path(classifier) -> Path | None:
    """Where `classifier`'s table lives: beside its cached ONNX model; None for other engines."""
    path = getattr(classifier.model, "path", None)
    return Path(path).with_suffix(FILE_SUFFIX) if path is not None else None


def prepare(classifier) -> Path | None:
    """Build and save `classifier`'s table unless the cache has it (`python app.py --prepare`);
    its path, None for an engine without a cache file."""
    path = table_path(classifier)
    if path is not None and not path.is_file():
        build(classifier).save(path)
    return path


def attach(classifier) -> threading.Thread | None:
    """Give `classifier` its word table: read from the cache when there, else built in a
    background thread at the lowest CPU priority and saved (the thread is returned; a failed
    build is logged and the explanation goes on without the table). None: nothing to start."""
    path = table_path(classifier)
    if path is None:
        return None
    if path.is_file():
        try:
            table = WordTable.load(path)
            if table.logits.shape[1] != len(classifier.labels):
                raise ValueError(f"{table.logits.shape[1]} logits a word, the model has {len(classifier.labels)} labels")
            classifier.word_table = table
            return None
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring the unreadable word table %s (%s); building it again", path, err)
    thread = threading.Thread(target=_build_in_background, args=(classifier, path), name="word-table", daemon=True)
    thread.start()
    return thread


def _build_in_background(classifier, path: Path) -> None:
    try:  # this thread only (Linux threads have their own nice value): visitors' requests come first
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as err:
        logger.info("word table: building at normal priority (%s)", err)
    try:
        table = build(classifier)
    except (ValueError, RuntimeError) as err:
        logger.warning("word table: not built (%s); explanations run every word through the model", err)
        return
    classifier.word_table = table
    try:
        table.save(path)
    except OSError as err:  # a read-only cache: this process keeps it, the next start builds it again
        logger.warning("word table: %d words built, not saved to %s (%s)", len(table), path, err)
        return
    logger.info("word table: %d words of %s saved to %s", len(table), classifier.info.get("adapter"), path)
