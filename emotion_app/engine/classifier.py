"""The inference engine: texts -> probabilities [N, labels], used by the app, the CLIs and evaluation.

What makes it fast on a small CPU (measured in docs/performance.md):
- the LoRA adapter is merged into the base at load, so a forward pass is the plain base model;
- texts are tokenized once, in one call, then sorted by length and cut into batches, so each batch
  pads only to its own longest text; the original order is restored at the end;
- batches are padded with numpy instead of `tokenizer.pad` (less Python work per batch);
- on CPU the merged model runs in ONNX Runtime (`engine/onnx.py`: exported once, cached on disk)
  with most of its linear layers in int8 (see `_keep_fp32` for the ones that stay fp32), unless
  turned off: `from_adapter(..., quantize=False)` for fp32, `runtime="torch"` for plain torch
  (whose int8 is torch's dynamic quantization of the same layers);
- `from_adapter` sets the thread count to the cores this process may use (see `set_num_threads`),
  split by operator, or with `thread_policy=THREADS_BY_BATCH` (a server, bulk scoring) one batch
  per core (`share_cores_by_batch`);
- loading from the ONNX cache needs neither torch nor transformers: the tokenizer is the Rust one
  (`engine/tokenizer.py`), torch is imported only where a torch model is used. The app starts in about
  4 s with 370 MB instead of 5.5 s with 570 MB.

`predict_details` adds, from the same forward pass, each text's out-of-distribution score: the
features the head reads (engine/features.py; the ONNX graph's second output) scored by the
adapter's shift detector (engine/ood.py), when the adapter has one.

`Predictor` is the interface everything above the engine types against (scoring, evaluation, the
review rule, explanations, the app); `BasePredictor` implements it for the engines here and in
engine/ray.py, and for any model that only gives probabilities (override `predict_proba`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from emotion_app.artifacts import read_temperature
from emotion_app.engine.features import feature_token, hidden_size, logits_and_features
from emotion_app.engine.loading import load_model
from emotion_app.engine.onnx import OnnxModel
from emotion_app.engine.ood import ShiftDetector
from emotion_app.engine.threads import (
    THREADS_BY_BATCH,
    THREADS_PER_RUN,
    check_thread_policy,
    default_num_threads,
    set_num_threads,
)
from emotion_app.labels import EMOTIONS, check_labels

if TYPE_CHECKING:  # importing these loads transformers' model code (seconds): see adapters.py
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from emotion_app.engine.words import WordTable


logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (texts done, texts in all)
MAX_POSITIONS = 512  # the most tokens per text, whatever the tokenizer or the model allows


@dataclass
class Details:
    """What `predict_details` returns, row for row: calibrated probabilities [N, labels] and, when the
    adapter has a shift detector, each text's out-of-distribution score [N] and whether it lies in
    the training distribution [N] (both None without a detector: the check is unavailable)."""

    probabilities: np.ndarray
    ood_scores: np.ndarray | None = None
    in_distribution: np.ndarray | None = None


class Predictor(Protocol):
    """What scoring, evaluation, the review rule, explanations and the app ask of a model: its labels
    (the outputs, in order), its shift detector (None: the check for unfamiliar text is unavailable)
    and calibrated probabilities [N, len(labels)] of texts, with OOD scores from the same pass
    (`predict_details`) and of single words (`predict_words`). `progress(done, total)` is called as
    texts are done, so a caller hands over a whole chunk at once and still shows progress."""

    labels: tuple[str, ...]
    detector: ShiftDetector | None

    def predict_proba(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def predict_details(self, texts: Sequence[str], progress: Progress | None = None) -> Details: ...

    def predict_words(self, words: Sequence[str]) -> np.ndarray: ...


class BasePredictor:
    """The Predictor that every engine shares: `logits(texts)` -> [N, labels] and
    `logits_and_features(texts)` are the engine's own; calibrated probabilities, OOD scores and
    single words follow from them, with `labels`, `temperature` and `detector` here. A model that
    gives only probabilities overrides `predict_proba` (and keeps `detector` None)."""

    labels: tuple[str, ...] = EMOTIONS  # the model's outputs, in order (the adapter's labels.json)
    temperature = 1.0
    detector: ShiftDetector | None = None  # the adapter's shift detector, when it has one

    def logits(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        raise NotImplementedError

    def logits_and_features(self, texts: Sequence[str],
                            progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw logits [N, labels], the features the head reads [N, D]) from one forward pass."""
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Probabilities [N, labels] (rows sum to 1), columns in `self.labels` order. The engine sorts
        a call's texts by length, so a whole chunk in one call carries less padding than small slices."""
        return softmax(self.logits(texts, progress) / self.temperature)

    def predict_details(self, texts: Sequence[str], progress: Progress | None = None) -> Details:
        """Probabilities and, with a detector, OOD scores from the same forward pass."""
        if self.detector is None:
            return Details(self.predict_proba(texts, progress))
        logits, features = self.logits_and_features(texts, progress)
        scores = self.detector.score(features)
        return Details(softmax(logits / self.temperature), scores, ~self.detector.is_out_of_distribution(scores))

    def predict_words(self, words: Sequence[str]) -> np.ndarray:
        """`predict_proba` of texts of one word each (an explanation's words read alone); an engine
        with a word table (engine/words.py) looks up the words it has instead of running them."""
        return self.predict_proba(words)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]


class EmotionClassifier(BasePredictor):
    """A sequence-classification model + tokenizer with one output per label, in `labels` order
    (default: the torch model's config names them, else the six emotions).

    `model` is used as given: a transformers model (merged or not, quantized or not) or an
    `engine.onnx.OnnxModel`; `from_adapter` builds the fast one. `temperature` divides the logits
    before the softmax (calibration.json, see `read_temperature`).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 max_length: int | None = None, batch_size: int = 32, temperature: float = 1.0,
                 info: dict | None = None, detector: ShiftDetector | None = None,
                 labels: Sequence[str] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, found {batch_size!r}.")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ValueError(f"max_length must be a whole number of at least 2 tokens, found {max_length!r}. "
                             "Leave it unset to use the tokenizer's limit.")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, found {temperature}.")
        self.model = model if isinstance(model, OnnxModel) else model.eval()
        self.tokenizer = tokenizer
        self.max_length = min(max_length or tokenizer.model_max_length, _position_limit(model))
        self.batch_size = batch_size
        self.batch_workers = 1  # batches of one call run at once (set_batch_workers)
        self.word_table: WordTable | None = None  # single words' logits (engine/words.py), when built
        self.temperature = temperature
        self.labels = check_labels(labels, "the classifier") if labels is not None else _config_labels(model)
        self.info = info or {}
        self.pad_id = _pad_id(tokenizer)
        self.feature_dim = hidden_size(model)
        self.detector = _check_detector(detector, self.feature_dim)
        # which token the features are read at; the ONNX graph reads it itself
        self.feature_token = model.feature_token if isinstance(model, OnnxModel) else feature_token(model)

    @classmethod
    def from_adapter(cls, adapter: str, base_model: str | None = None, token: str | None = None,
                     batch_size: int = 32, *, quantize: str | bool = "auto", runtime: str = "auto",
                     num_threads: int | None = None, device: str | None = None,
                     detect_shift: bool = True, thread_policy: str = THREADS_PER_RUN) -> EmotionClassifier:
        """Load base + adapter (a directory or a Hub repo id), merged, ready for fast inference.

        quantize: "auto" (int8 on CPU, unchanged on a GPU), True (int8; CPU only) or False (fp32).
        runtime: "auto" (ONNX Runtime on CPU when installed, else torch), "onnxruntime" or "torch".
        num_threads: intra-op threads; None = the cores this process may use. For a torch model
            this changes a process-wide torch setting (see `set_num_threads`).
        device: "cpu", "cuda", ...; None = the GPU when torch sees one, else the CPU.
        detect_shift: load the adapter's shift detector when it has one (False: ignore it, as
            `python -m emotion_app calibrate` does while it fits a new one).
        thread_policy: THREADS_PER_RUN (each run's operators over the threads) or THREADS_BY_BATCH
            (one thread per run, one batch per core at once: for a server and bulk scoring; see
            `share_cores_by_batch`).
        """
        from emotion_app.engine.adapters import load_engine_tokenizer

        check_thread_policy(thread_policy)
        loaded = load_model(adapter, base_model, token, quantize=quantize, runtime=runtime,
                            num_threads=num_threads, device=device)
        directory = loaded.source.directory
        detector = ShiftDetector.load(directory) if detect_shift else None
        classifier = cls(loaded.model, load_engine_tokenizer(loaded.source.tokenizer_source), batch_size=batch_size,
                         info=loaded.info, temperature=read_temperature(directory), detector=detector,
                         labels=loaded.source.labels)
        if thread_policy == THREADS_BY_BATCH:
            classifier.share_cores_by_batch()
        return classifier

    def logits(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Raw (uncalibrated) logits [N, labels], in input order; `progress(done, total)` after each batch."""
        return self._run(texts, False, progress)[0]

    def predict_words(self, words: Sequence[str]) -> np.ndarray:
        table = self.word_table  # read once: the app's background build may set it meanwhile
        if table is None:
            return self.predict_proba(words)
        words = _check_texts(words)
        rows = table.rows(self.tokenizer(words, truncation=True, max_length=self.max_length)["input_ids"])
        logits = np.zeros((len(words), len(self.labels)), dtype=np.float32)
        found = rows >= 0
        logits[found] = table.logits[rows[found]]
        if not found.all():
            logits[~found] = self.logits([word for word, hit in zip(words, found) if not hit])
        return softmax(logits / self.temperature)

    def logits_and_features(self, texts: Sequence[str],
                            progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw logits [N, labels], head features [N, D]), in input order, from one forward pass."""
        return self._run(texts, True, progress)

    def _run(self, texts: Sequence[str], features: bool,
             progress: Progress | None) -> tuple[np.ndarray, np.ndarray | None]:
        texts = _check_texts(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        feats = np.zeros((len(texts), self.feature_dim or 0), dtype=np.float32) if features else None
        if not texts:
            return out, feats
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        batches = length_batches(lengths, self.batch_size)
        done = 0
        for index, (logits, batch_features) in zip(batches, self._forward_batches(ids, batches, features)):
            out[index] = logits
            if features:
                feats[index] = batch_features
            done += len(index)
            if progress is not None:
                progress(done, len(texts))
        return out, feats

    def _forward_batches(self, ids: list[list[int]], batches: list[np.ndarray], features: bool):
        """(logits, features) of each batch, in order; on an ONNX model up to `batch_workers`
        batches at once (one session serves concurrent runs, and each releases the GIL), given at
        least two batches a worker: a short call (one text, an explanation's two batches) runs as
        it is, since in a server other requests' runs already fill the cores, and handing two
        batches to two threads made the page's answers dearer (docs/performance.md, "The app under load")."""
        def forward(index: np.ndarray) -> tuple:
            return self._forward(*self._pad([ids[i] for i in index]), features=features)

        workers = min(self.batch_workers, len(batches) // 2) if isinstance(self.model, OnnxModel) else 1
        if workers <= 1:
            yield from map(forward, batches)
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-batch")
        try:
            yield from pool.map(forward, batches)
        finally:  # a caller that stops early (an error, a cancelled job) leaves no batch to run
            pool.shutdown(cancel_futures=True)

    def set_num_threads(self, num_threads: int) -> None:
        """Threads for this engine's forward passes (for torch a process-wide setting)."""
        if isinstance(self.model, OnnxModel):
            self.model.set_num_threads(num_threads)
        else:
            set_num_threads(num_threads)

    def set_batch_workers(self, workers: int) -> None:
        """How many batches of one call run at once on an ONNX model (default 1; torch runs one at
        a time). With one thread per run (`set_num_threads(1)`) this shares the cores out by batch
        instead of splitting each run's operators across threads (see `share_cores_by_batch`)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number of at least 1, found {workers!r}. "
                             "Pass 1 to run one batch at a time.")
        self.batch_workers = workers

    def share_cores_by_batch(self) -> None:
        """One ONNX Runtime thread per run, and up to one batch per core at once: for a server and
        for bulk scoring (`from_adapter(..., thread_policy=THREADS_BY_BATCH)` loads it so). A web server runs several requests at a time, each of a few short runs;
        with two threads per run every operator woke a second thread (docs/performance.md, session
        9: the page's CPU per answer -6 to -13 %). A bulk call has many batches, which keep every
        core busy side by side (the Batch tab and the CLI: +20 % rows/s). Not the default: a lone
        short call (one text) answers a little later on one thread. torch models are left as they
        are: torch's thread count is a process-wide setting that training in the same process
        relies on."""
        if isinstance(self.model, OnnxModel):
            cores = default_num_threads()
            self.set_num_threads(1)
            self.set_batch_workers(cores)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray, features: bool = False) -> tuple:
        """(logits, features or None) of one padded batch."""
        if isinstance(self.model, OnnxModel):  # ONNX Runtime takes numpy directly
            return self.model.run(input_ids, mask, features)
        import torch

        device = self.model.device
        ids, attention = torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)
        with torch.inference_mode():
            if not features:
                return self.model(input_ids=ids, attention_mask=attention).logits.float().cpu().numpy(), None
            logits, feats = logits_and_features(self.model, ids, attention, self.feature_token)
        return logits.float().cpu().numpy(), feats.float().cpu().numpy()

    def _pad(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) for one batch, padded to its longest sequence on the
        tokenizer's padding side. A text that tokenizes to nothing (GPT-2 and "") gets one pad
        token, so it still gets a prediction instead of breaking the batch."""
        width = max(1, max(map(len, sequences)))
        input_ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for row, seq in enumerate(sequences):
            size = max(len(seq), 1)
            where = slice(width - size, width) if left else slice(0, size)
            if seq:
                input_ids[row, where] = seq
            mask[row, where] = 1
        return input_ids, mask


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of at most `batch_size`, by increasing length; a batch also ends
    before a row more than twice as long as its shortest, so no row is padded to more than twice
    its length. Sorted bulk text changes length slowly (batches stay full); a mixed call does not:
    an explanation sends a sentence's one-word-shorter variants and its single words together, and
    in one batch every single word would cost a whole sentence."""
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if (end == len(order) or end - start == batch_size
                or lengths[order[end]] > 2 * max(1, lengths[order[start]])):
            batches.append(order[start:end])
            start = end
    return batches


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _position_limit(model: PreTrainedModel) -> int:
    """The most tokens the model can take (its position embeddings), capped at MAX_POSITIONS."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return min(limit or MAX_POSITIONS, MAX_POSITIONS)


def _config_labels(model) -> tuple[str, ...]:
    """The labels a torch model's config names (train.py's models do); the six emotions for an
    ONNX model or a config with transformers' placeholder names (LABEL_0, ...)."""
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(len(id2label))]
    if len(names) < 2 or any(not isinstance(n, str) or n == f"LABEL_{i}" for i, n in enumerate(names)):
        return EMOTIONS
    return check_labels(names, "the model's config")


def _check_detector(detector: ShiftDetector | None, feature_dim: int | None) -> ShiftDetector | None:
    if detector is not None and feature_dim is not None and detector.dim != feature_dim:
        raise ValueError(f"the shift detector was fitted on {detector.dim}-dimensional features, but this model's are "
                         f"{feature_dim}-dimensional: it belongs to another base model. Fit it again for this adapter "
                         "(python -m emotion_app calibrate --adapter DIR --data_dir DATA).")
    return detector


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad nor an EOS token: expected "
                         "one of them to pad batches. Set tokenizer.pad_token before building the classifier.")
    return pad_id


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, found a single string. Wrap it: [text].")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {type(text).__name__} {text!r}: expected a string. "
                             "Convert the values to text first.")
    return texts
