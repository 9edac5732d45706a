"""Adapt a trained adapter to a user's own corrected rows, and measure what that gained.

    from emotion_app.train.adaptation import AdaptOptions, adapt
    out_dir, summary = adapt("models/minilm-emotion-lora", texts, label_ids, "outputs/mine",
                             AdaptOptions(), progress=lambda step, total: ...)

What a run does (docs/adaptation.md has the measurements behind the defaults):
1. checks the corrections (at least MIN_CORRECTIONS, every label one of the six) and the output
   directory (never the parent or inside it) before anything heavy is loaded;
2. loads the parent with its own LoRA weights and head, trainable (peft's
   `PeftModel.from_pretrained(..., is_trainable=True)` on `modeling.load_base_model`): training
   continues from the parent, it never starts again from the base;
3. guards against forgetting: dair-ai/emotion train rows (REPLAY_PER_CORRECTION per correction)
   are mixed into every epoch. Without replay (none reachable, or `replay_rows=0`) it distils
   toward the parent instead: each correction's loss adds the KL divergence between the parent's
   and the model's probabilities (at DISTILL_TEMPERATURE), so the model moves only as far as
   the corrections pull it;
4. measures the gain on corrections held out from training, parent and adapted model on the same
   rows: k-fold cross-validation below CV_BELOW corrections, a held-out 20 % from there (or none);
   the same recipe, the same seed. The final adapter is then trained on all corrections. Its
   weights do not depend on the held-out measurement: every training starts from the parent's
   weights and `torch.manual_seed(seed)`, so a fixed seed reproduces the adapter;
5. scores parent and adapted model on the dair-ai/emotion test split, when reachable;
6. refits the temperature (`_calibration`) and writes a complete adapter with metrics.json
   (lineage in `adaptation`) and a model card, atomically (`training.save_adapter`). The
   parent's files are only read.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_app.analysis.calibration import calibration_metrics
from emotion_app.analysis.metrics import classification_metrics, label_set_metrics
from emotion_app.artifacts import ADAPTER_FILES, file_sha256
from emotion_app.constants import DEFAULT_DATASET, DEFAULT_DATASET_CONFIG
from emotion_app.engine.classifier import softmax
from emotion_app.labels import EMOTIONS, emotion_ids_in, parse_label

logger = logging.getLogger(__name__)

MIN_CORRECTIONS = 10
CV_BELOW = 50  # fewer corrections than this: k-fold cross-validation, else one held-out share (time: 5 folds
# train the recipe six times, which past 50 corrections takes the run over 3 minutes on 2 cores)
HOLDOUT_FOLDS = 5  # the held-out share is one fold of five: 20 %
HOLDOUTS = ("auto", "cv", "split", "none")
REPLAY_PER_CORRECTION = 4
# Epochs when none are asked for. Without replay an epoch is a fifth of the steps, so it takes more.
REPLAY_EPOCHS = 6
DISTILL_EPOCHS = 10
DISTILL_TEMPERATURE = 2.0  # softens the parent's probabilities so the runners-up count as well
REPLAY_DATASET = (DEFAULT_DATASET, DEFAULT_DATASET_CONFIG)
REFERENCE_SPLITS = ("train", "validation", "test")
CALIBRATION_ROWS = 500  # dair-ai validation rows for the temperature when no corrections are held out

Progress = Callable[[int, int], None]


@dataclass
class AdaptOptions:
    """How to adapt. Defaults chosen by measurement (benchmarks/bench_adapt.py, docs/adaptation.md)."""

    epochs: int | None = None  # None: REPLAY_EPOCHS with replay, DISTILL_EPOCHS when distilling
    learning_rate: float = 3e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    # Replay: a directory with dair-ai/emotion's train/validation/test files (emotion_app.data.labelled);
    # None: the Hub. replay_rows None: REPLAY_PER_CORRECTION per correction; 0: no replay (distil).
    replay_data: str | None = None
    replay_rows: int | None = None
    distill_weight: float = 0.1
    holdout: str = "auto"  # auto: cv below CV_BELOW corrections, else split; cv; split; none
    folds: int = 5
    seed: int = 42


@dataclass
class Corrections:
    """Corrected rows: texts, label ids, and where each row came from (for messages)."""

    texts: list[str]
    labels: np.ndarray
    where: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """dair-ai/emotion splits as (texts, label ids), or none and the reason why."""

    source: str | None
    splits: dict[str, tuple[list[str], np.ndarray]]
    reason: str = ""

    def in_labels(self, labels: Sequence[str]) -> Reference:
        """The same rows with their ids in a model's `labels` (e.g. the six emotions + neutral); none,
        with the reason, when the model lacks one of the six emotions (it cannot be replayed or scored)."""
        if not self.splits or list(labels) == list(EMOTIONS):
            return self
        try:
            ids = np.array(emotion_ids_in(labels), dtype=np.int64)
        except ValueError as err:
            return Reference(None, {}, f"{err} So {self.source} can neither be replayed nor measured")
        return Reference(self.source, {split: (texts, ids[y]) for split, (texts, y) in self.splits.items()})


# --- input checks --------------------------------------------------------------------------------

def check_corrections(texts: Sequence[str], labels: Sequence[object],
                      where: Sequence[str] | None = None, names: Sequence[str] = EMOTIONS) -> Corrections:
    """The corrections as a Corrections, or a ValueError naming the first bad row.
    Labels are names of the model's labels `names` (any case) or their ids, as `labels.parse_label`
    reads them."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, found a single string. Wrap it: [text].")
    texts, labels = list(texts), list(labels)
    where = list(where) if where is not None else [f"correction {i + 1}" for i in range(len(texts))]
    if len(texts) != len(labels):
        raise ValueError(f"found {len(texts)} texts and {len(labels)} labels: expected one label per text.")
    ids = []
    for text, label, place in zip(texts, labels, where):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{place}: the text is {text!r}: expected a non-empty text. Fill it in or remove the row.")
        try:  # numpy scalars (an array of ids) as the Python numbers parse_label takes
            ids.append(parse_label(label.item() if isinstance(label, np.generic) else label, names))
        except ValueError as err:
            raise ValueError(f"{place} ({_preview(text)}): {err} (the labels of the model being adapted). "
                             "Fix the label or remove the row.") from None
    if len(texts) < MIN_CORRECTIONS:
        raise ValueError(f"found {len(texts)} corrections: expected at least {MIN_CORRECTIONS}, fewer cannot "
                         "be learnt from or measured. Correct more rows and try again.")
    return Corrections(texts, np.asarray(ids, dtype=np.int64), where)


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_options(options: AdaptOptions) -> None:
    problems = []
    for name in ("epochs", "batch_size", "folds"):
        value = getattr(options, name)
        if name == "epochs" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "folds" else 1):
            problems.append(f"{name} must be a whole number of at least {2 if name == 'folds' else 1}, found {value!r}")
    if isinstance(options.max_length, bool) or not isinstance(options.max_length, int) or options.max_length < 2:
        problems.append(f"max_length must be a whole number of at least 2 tokens, found {options.max_length!r}")
    if not (isinstance(options.learning_rate, (int, float)) and 0 < options.learning_rate < 1):
        problems.append(f"learning_rate must be a number in (0, 1), found {options.learning_rate!r}")
    if options.replay_rows is not None and (not isinstance(options.replay_rows, int) or options.replay_rows < 0):
        problems.append(f"replay_rows must be 0 or more (0: no replay), found {options.replay_rows!r}")
    if options.holdout not in HOLDOUTS:
        problems.append(f"holdout must be one of {', '.join(HOLDOUTS)}, found {options.holdout!r}")
    if not 0 <= options.warmup_ratio < 1 or options.distill_weight < 0:
        problems.append("warmup_ratio must be in [0, 1) and distill_weight 0 or more")
    if problems:
        raise ValueError("; ".join(problems) + ". Fix the option(s) and run again.")


def check_output_dir(output_dir: str | Path, parent_dir: str | Path) -> Path:
    """The output directory, unless it is the parent adapter's directory or inside it."""
    out, parent = Path(output_dir).expanduser().resolve(), Path(parent_dir).resolve()
    if out == parent or parent in out.parents:
        where = "is the parent adapter's directory" if out == parent else f"is inside the parent adapter {parent}"
        raise ValueError(f"the output directory {output_dir} {where}: expected a new directory, so that the "
                         "parent is never modified. Choose another output directory.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output {output_dir} is a file: expected a directory for the adapter. "
                         "Choose another output directory.")
    return out


# --- reference data (replay, test, calibration) --------------------------------------------------

def load_reference(replay_data: str | None) -> Reference:
    """dair-ai/emotion: from `replay_data` (a directory; unreadable files raise), else the Hub. An
    unreachable Hub is no error: the Reference is empty and says why (the caller falls back)."""
    if replay_data:
        return _local_reference(Path(replay_data))
    try:
        return _hub_reference()
    except _hub_errors() as err:
        reason = f"{REPLAY_DATASET[0]} could not be loaded from the Hub ({type(err).__name__}: {err})"
        logger.warning("%s; pass --replay_data DIR with its train/validation/test files to replay it", reason)
        return Reference(None, {}, reason)


def _local_reference(directory: Path) -> Reference:
    from emotion_app.data.labelled import DataArguments, read_labeled_file, split_files

    files = split_files(DataArguments(data_dir=str(directory)), REFERENCE_SPLITS)
    if "train" not in files:
        raise ValueError(f"replay data {directory} has no train file: expected train.txt (or .csv, .jsonl, ...) "
                         "with dair-ai/emotion's training rows. Point --replay_data at that directory.")
    splits = {}
    for split, path in files.items():
        data = read_labeled_file(path)
        splits[split] = (list(data["text"]), np.asarray(data["label"], dtype=np.int64))
    return Reference(str(directory), splits)


def _hub_reference() -> Reference:
    from emotion_app.data.labelled import load_hub_splits

    # load_hub_splits asks network.require_hub first: an unreachable Hub fails in seconds
    data = load_hub_splits(*REPLAY_DATASET, REFERENCE_SPLITS)
    splits = {s: (list(data[s]["text"]), np.asarray(data[s]["label"], dtype=np.int64)) for s in data}
    return Reference(f"{REPLAY_DATASET[0]} (Hub)", splits)


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    # OSError covers offline mode, DNS failures and a data set not found (datasets' errors derive
    # from it); HfHubHTTPError derives from the HTTP library's base error (httpx's, requests' in
    # older huggingface_hub), which is what a timeout or a refused connection raises.
    return (OSError, *HfHubHTTPError.__bases__)


# --- held-out plan ------------------------------------------------------------------------------

def holdout_folds(corrections: Corrections, holdout: str, folds: int, seed: int) -> tuple[str, list[np.ndarray]]:
    """(description, held-out row indices per fold). Rows with the same text share a fold, so that a
    duplicate never sits on both sides; folds are stratified by label (round robin per label)."""
    n = len(corrections.texts)
    mode = ("cv" if n < CV_BELOW else "split") if holdout == "auto" else holdout
    if mode == "none":
        return "none", []
    k = min(folds if mode == "cv" else HOLDOUT_FOLDS, n)
    first = {}
    for i, text in enumerate(corrections.texts):
        first.setdefault(text, i)
    unique = np.fromiter(first.values(), dtype=np.int64)
    rng = np.random.default_rng([seed, 1])
    unique = unique[rng.permutation(len(unique))]
    unique = unique[np.argsort(corrections.labels[unique], kind="stable")]
    fold_of_text = {corrections.texts[i]: position % k for position, i in enumerate(unique)}
    fold = np.array([fold_of_text[text] for text in corrections.texts])
    chosen = range(k) if mode == "cv" else range(1)
    described = f"{k}-fold cross-validation" if mode == "cv" else f"held-out {100 // k} %"
    return described, [np.flatnonzero(fold == f) for f in chosen if (fold == f).any()]


# --- the run -------------------------------------------------------------------------------------

def adapt(adapter: str, texts: Sequence[str], labels: Sequence[object], output_dir: str | Path,
          options: AdaptOptions | None = None, progress: Progress | None = None,
          where: Sequence[str] | None = None) -> tuple[Path, dict]:
    """Adapt `adapter` (a directory or Hub id) to the corrections; write the new adapter to
    `output_dir`. `progress(step, total)` is called after every optimizer step (all trainings:
    the held-out ones, then the final one). Returns (output_dir, summary), the summary being
    metrics.json's `adaptation` entry: parent, corrections, forgetting guard, held-out and
    dair-ai test figures of parent and adapted model, timing and notes. `labels` are names of the
    adapter's labels or their ids; `where` names each row for messages (a file's lines)."""
    from emotion_app.engine.adapters import read_adapter

    started = time.perf_counter()
    options = options or AdaptOptions()
    check_options(options)
    source = read_adapter(adapter)
    corrections = check_corrections(texts, labels, where, source.labels)
    out = check_output_dir(output_dir, source.directory)
    reference = load_reference(options.replay_data).in_labels(source.labels)
    session = _Session.open(adapter, source, options, reference, corrections, progress)
    session.timing["load_s"] = time.perf_counter() - started
    return out, session.run(out, started)


class _Session:
    """One adaptation: the trainable model, the data, and the figures as they come in."""

    def __init__(self, adapter, source, options, reference, corrections, model, tokenizer, progress):
        self.adapter, self.source = adapter, source
        # Hashed as it was loaded: the lineage names the weights this run started from.
        self.parent_sha256 = file_sha256(source.directory / ADAPTER_FILES[1])
        self.reference, self.corrections = reference, corrections
        self.model, self.tokenizer, self.progress = model, tokenizer, progress
        self.parent_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        self.replay = _replay_sample(reference, options, len(corrections.texts))
        epochs = options.epochs or (REPLAY_EPOCHS if len(self.replay[0]) else DISTILL_EPOCHS)
        self.options = dataclasses.replace(options, epochs=epochs)
        self.notes: list[str] = []
        self.timing: dict[str, float] = {}
        self.step, self.total = 0, 0

    @classmethod
    def open(cls, adapter, source, options, reference, corrections, progress) -> _Session:
        from peft import PeftModel

        from emotion_app.engine.adapters import load_base_model, load_tokenizer
        from emotion_app.engine.threads import set_num_threads

        set_num_threads()
        tokenizer = load_tokenizer(source.tokenizer_source, options.max_length)
        base = load_base_model(source.base_model, tokenizer.pad_token_id, source.labels)
        try:  # the parent's own LoRA weights and head, to train further
            with warnings.catch_warnings():
                # peft asks transformers the deprecated is_gradient_checkpointing: its FutureWarning
                # is about peft's code, and would reach every user of the command.
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                model = PeftModel.from_pretrained(base, str(source.directory), is_trainable=True)
        except (RuntimeError, ValueError, KeyError) as err:
            raise ValueError(f"adapter {adapter} does not fit base model {source.base_model}: {err}. "
                             "Use the base model the adapter was trained on.") from None
        return cls(adapter, source, options, reference, corrections, model, tokenizer, progress)

    def run(self, out: Path, started: float) -> dict:
        texts = self.corrections.texts
        clock = time.perf_counter()
        method, folds = holdout_folds(self.corrections, self.options.holdout, self.options.folds, self.options.seed)
        test = self.reference.splits.get("test")
        parent = self.logits(texts + (test[0] if test else []))  # the parent, before any step
        parent_corr, parent_test = parent[:len(texts)], parent[len(texts):]
        self.total = sum(self._steps(len(texts) - len(f)) for f in folds) + self._steps(len(texts))
        self.timing["parent_eval_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        out_of_fold = self._cross_fit(folds, parent_corr)
        self.timing["heldout_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        recipe = self.fit(np.arange(len(texts)), parent_corr, self.options.seed)
        self.timing["train_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        adapted_test = self.logits(test[0]) if test else None
        calibration_rows = self._calibration_rows(sum(len(f) for f in folds))
        self.timing["evaluate_s"] = time.perf_counter() - clock
        metrics = self._metrics(out, method, folds, parent_corr, out_of_fold, parent_test, adapted_test,
                                calibration_rows, recipe)
        return self._save(out, metrics, started)

    # -- training --

    def _replay_count(self, n_train: int) -> int:
        wanted = self.options.replay_rows if self.options.replay_rows is not None else REPLAY_PER_CORRECTION * n_train
        return min(wanted, len(self.replay[0]))

    def _steps(self, n_train: int) -> int:
        return self.options.epochs * math.ceil((n_train + self._replay_count(n_train)) / self.options.batch_size)

    def _cross_fit(self, folds: list[np.ndarray], parent_corr: np.ndarray) -> np.ndarray:
        """Logits of each held-out row from the model trained without its fold (NaN elsewhere)."""
        out = np.full((len(self.corrections.texts), len(self.source.labels)), np.nan, dtype=np.float32)
        for number, held in enumerate(folds):
            train = np.setdiff1d(np.arange(len(self.corrections.texts)), held)
            self.fit(train, parent_corr, self.options.seed)
            out[held] = self.logits([self.corrections.texts[i] for i in held])
            logger.info("held-out fold %d/%d done (%d rows)", number + 1, len(folds), len(held))
        return out

    def fit(self, rows: np.ndarray, parent_corr: np.ndarray, seed: int) -> dict:
        """Train from the parent's weights on corrections[rows] + replay; the recipe, for metrics."""
        import torch

        with torch.no_grad():  # every training starts from the parent, whatever ran before
            for name, param in self.model.named_parameters():
                if name in self.parent_state:
                    param.copy_(self.parent_state[name])
        n_replay = self._replay_count(len(rows))
        texts = [self.corrections.texts[i] for i in rows] + self.replay[0][:n_replay]
        labels = np.concatenate([self.corrections.labels[rows], self.replay[1][:n_replay]])
        # Without replay, the parent's softened probabilities on the same rows hold the model back.
        soft = softmax(parent_corr[rows] / DISTILL_TEMPERATURE) if n_replay == 0 else None
        torch.manual_seed(seed)
        steps = _train_loop(self.model, self.tokenizer, texts, labels, soft, self.options, seed, self._tick)
        return {"train_rows": len(texts), "corrections": len(rows), "replay_rows": n_replay, "steps": steps}

    def _tick(self) -> None:
        self.step += 1
        if self.progress is not None:
            self.progress(self.step, self.total)

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw logits of the model as it stands, from a merged copy: a quarter faster than the
        LoRA layers (measured on MiniLM), and merging the model itself would nudge the base
        weights that later trainings start from (W + BA - BA is not W in floating point)."""
        from emotion_app.engine.classifier import EmotionClassifier

        if not texts:
            return np.zeros((0, len(self.source.labels)), dtype=np.float32)
        merged = copy.deepcopy(self.model).merge_and_unload()
        return EmotionClassifier(merged, self.tokenizer, max_length=self.options.max_length,
                                 batch_size=64, labels=self.source.labels).logits(texts)

    # -- figures --

    def _calibration_rows(self, n_heldout: int):
        """dair-ai validation rows for the temperature: as many as corrections are held out (equal
        weight to the two domains), CALIBRATION_ROWS when none are; with their final-model logits."""
        validation = self.reference.splits.get("validation")
        if validation is None:
            return None
        count = min(len(validation[0]), n_heldout or CALIBRATION_ROWS)
        pick = np.sort(np.random.default_rng([self.options.seed, 2]).permutation(len(validation[0]))[:count])
        return self.logits([validation[0][i] for i in pick]), validation[1][pick]

    def _metrics(self, out, method, folds, parent_corr, out_of_fold, parent_test, adapted_test,
                 calibration_rows, recipe) -> dict:
        labels = self.corrections.labels
        held = np.sort(np.concatenate(folds)) if folds else np.zeros(0, dtype=np.int64)
        test = self.reference.splits.get("test")
        names = self.source.labels
        metrics = {"name": out.name, "labels": list(names), "base_model": self.source.base_model}
        if test is not None:
            metrics["test"] = label_set_metrics(test[1], softmax(adapted_test), names)
        if len(held):
            metrics["heldout"] = {"method": method,
                                  "parent": classification_metrics(labels[held], softmax(parent_corr[held]), names),
                                  "adapted": classification_metrics(labels[held], softmax(out_of_fold[held]), names)}
        metrics.update(_calibration(out_of_fold[held], labels[held], calibration_rows, test, adapted_test,
                                    self.source.directory, self.notes))
        metrics["training"] = {**dataclasses.asdict(self.options), **recipe, "base_model": self.source.base_model,
                               "parent_adapter": self.adapter, "train_seconds": round(self.timing["train_s"], 1)}
        metrics["adaptation"] = self._summary(out, metrics, parent_test, test, recipe)
        return metrics

    def _summary(self, out, metrics, parent_test, test, recipe) -> dict:
        counts = np.bincount(self.corrections.labels, minlength=len(self.source.labels)).tolist()
        summary = {
            "output_dir": str(out),
            "parent": {"adapter": self.adapter, "directory": str(self.source.directory),
                       "sha256": self.parent_sha256,
                       "base_model": self.source.base_model},
            "corrections": {"n": len(self.corrections.texts),
                            "per_label": dict(zip(self.source.labels, counts))},
            "forgetting_guard": self._guard(recipe),
            "seed": self.options.seed,
            "heldout": _gain(metrics.get("heldout"), metrics.get("heldout", {}).get("method", "none")),
            "dair_test": None,
            "notes": self.notes,
            "timing": self.timing,
        }
        if test is not None:
            summary["dair_test"] = {"source": self.reference.source, **_gain(
                {"parent": label_set_metrics(test[1], softmax(parent_test), self.source.labels),
                 "adapted": metrics["test"]}, "test")}
        else:
            self.notes.append(f"No dair-ai/emotion test split to measure forgetting on: {self.reference.reason}.")
        return summary

    def _guard(self, recipe: dict) -> dict:
        if recipe["replay_rows"]:
            return {"method": "replay", "replay_source": self.reference.source, "replay_rows": recipe["replay_rows"]}
        why = "replay_rows is 0" if self.options.replay_rows == 0 else (self.reference.reason or "no train split")
        self.notes.append(f"No replay ({why}): distillation toward the parent's predictions on the corrections "
                          f"(KL to its probabilities at T = {DISTILL_TEMPERATURE}) guarded against forgetting instead.")
        return {"method": "distillation", "distill_weight": self.options.distill_weight,
                "temperature": DISTILL_TEMPERATURE, "reason": why}

    def _save(self, out: Path, metrics: dict, started: float) -> dict:
        """Write the adapter; the summary, whose timing adds the save (metrics.json's stops before it)."""
        from emotion_app.train.trainer import save_adapter

        self.timing["before_save_s"] = time.perf_counter() - started
        self.timing.update({key: round(value, 2) for key, value in self.timing.items()})
        save_adapter(self.model, self.tokenizer, metrics, out, self.source.base_model)
        summary = copy.deepcopy(metrics["adaptation"])
        total = time.perf_counter() - started
        # What the adaptation itself takes, start to saved adapter, without the held-out measurement.
        summary["timing"].update(to_saved_adapter_s=round(total, 2),
                                 adaptation_s=round(total - self.timing["heldout_s"], 2))
        return summary


def _replay_sample(reference: Reference, options: AdaptOptions, n: int) -> tuple[list[str], np.ndarray]:
    """The rows to replay, in a seeded random order; each training takes the first few it needs."""
    train = reference.splits.get("train")
    if train is None or options.replay_rows == 0:
        return [], np.zeros(0, dtype=np.int64)
    wanted = options.replay_rows if options.replay_rows is not None else REPLAY_PER_CORRECTION * n
    pick = np.random.default_rng([options.seed, 0]).permutation(len(train[0]))[:wanted]
    return [train[0][i] for i in pick], train[1][pick]


def _gain(figures: dict | None, method: str) -> dict:
    if not figures:
        return {"method": method}
    short = {who: {key: figures[who][key] for key in ("accuracy", "macro_f1", "n")} for who in ("parent", "adapted")}
    return {"method": method, **short,
            "accuracy_change": short["adapted"]["accuracy"] - short["parent"]["accuracy"],
            "macro_f1_change": short["adapted"]["macro_f1"] - short["parent"]["macro_f1"]}


def _calibration(heldout_logits, heldout_labels, calibration_rows, test, test_logits, parent_dir,
                 notes: list[str]) -> dict:
    """Temperature fitted on the held-out corrections' out-of-fold logits (the user's domain) plus
    as many dair-ai validation rows (the original one), so both count alike; ECE and the coverage
    curve on dair-ai test. Without dair-ai: on the held-out corrections alone (ECE then measured
    on the rows it was fitted on). With neither, the parent's temperature is kept."""
    parts, names = [], []
    if len(heldout_labels):
        parts.append((heldout_logits, heldout_labels))
        names.append(f"{len(heldout_labels)} held-out corrections (out-of-fold)")
    if calibration_rows is not None:
        parts.append(calibration_rows)
        names.append(f"{len(calibration_rows[1])} dair-ai/emotion validation rows")
    if not parts:
        from emotion_app.artifacts import read_temperature

        notes.append("Temperature kept from the parent: no held-out corrections and no dair-ai/emotion "
                     "validation rows to refit it on.")
        return {"calibration": {"temperature": read_temperature(parent_dir), "fitted_on": "parent"}}
    fit_logits = np.concatenate([p[0] for p in parts])
    fit_labels = np.concatenate([p[1] for p in parts])
    report = (test_logits, test[1]) if test is not None else (fit_logits, fit_labels)
    added = calibration_metrics(fit_logits, fit_labels, *report)
    added["calibration"]["fitted_on"] = " + ".join(names)
    added["calibration"]["measured_on"] = "dair-ai/emotion test" if test is not None else "the rows it was fitted on"
    return added


def _train_loop(model, tokenizer, texts, labels, soft, options: AdaptOptions, seed: int, tick) -> int:
    """A plain torch loop: AdamW, linear warm-up then decay, gradient norm clipped at 1; batches of
    similar lengths (less padding) in a seeded order. Returns the number of steps."""
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
    """One epoch's batches: shuffled, then sorted by length within groups of 16 batches and the
    batches shuffled again (as transformers' group_by_length), so a batch pads little."""
    order = rng.permutation(len(ids))
    group = 16 * batch_size
    batches = []
    for start in range(0, len(order), group):
        chunk = order[start:start + group]
        chunk = chunk[np.argsort([len(ids[i]) for i in chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# --- corrections files ---------------------------------------------------------------------------



def read_corrections(path: str | Path, text_column: str | None = None, label_column: str | None = None):
    """A corrections file's rows (`data.labelled.RawRows`: texts, label cells as written, where each
    row is), read as every labelled file is (`data.labelled.read_raw_rows`, over the one table
    reader: CSV, TSV, `text;label` .txt, JSON Lines, xlsx, Parquet): a text column and a label column
    (found by name in any case or by their content, or named). `adapt` reads the labels against the
    adapter's own."""
    from emotion_app.data.labelled import read_raw_rows

    return read_raw_rows(path, text_column, label_column)
