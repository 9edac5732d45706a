"""One adaptation run, start to saved adapter: `adapt` checks the inputs (inputs.py), then an
AdaptationRun loads the parent trainable, measures the parent, trains once per held-out fold and
once on all corrections (loop.py), scores, refits the temperature and saves the adapter with its
metrics and lineage. See the package's docstring for what each step does and why."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emotion_app.analysis.calibration import calibration_metrics
from emotion_app.analysis.metrics import classification_metrics, label_set_metrics
from emotion_app.artifacts import ADAPTER_FILES, file_sha256
from emotion_app.engine.classifier import softmax
from emotion_app.labels import NEUTRAL
from emotion_app.train.adaptation.inputs import (
    DISTILL_EPOCHS,
    REPLAY_EPOCHS,
    AdaptOptions,
    Plain,
    check_corrections,
    check_options,
    check_output_dir,
    holdout_folds,
    load_neutral,
    load_reference,
    neutral_sample,
    neutral_wanted,
    replay_sample,
    replay_wanted,
)
from emotion_app.train.adaptation.loop import DISTILL_TEMPERATURE, train_loop

logger = logging.getLogger(__name__)

CALIBRATION_ROWS = 500  # dair-ai validation rows for the temperature when no corrections are held out

Progress = Callable[[int, int], None]


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
    if NEUTRAL not in source.labels:
        plain = Plain(None, [], "the model has no neutral label")
    elif options.neutral_rows == 0:
        plain = Plain(None, [], "neutral_rows is 0")
    else:
        plain = load_neutral(options.neutral_data)
    run = AdaptationRun.open(adapter, source, options, (reference, plain), corrections, progress)
    run.timing["load_s"] = time.perf_counter() - started
    return out, run.run(out, started)


def neutral_note(labels, correction_ids, plain: Plain) -> str | None:
    """A warning when the model can say neutral but neither a correction nor a replayed row is
    neutral: such corrections teach it to stop, on plain text too (docs/adaptation.md)."""
    if NEUTRAL not in labels or plain.texts or labels.index(NEUTRAL) in set(np.asarray(correction_ids).tolist()):
        return None
    logger.warning("None of the corrections is %s and none is replayed: the adapted model will hardly ever "
                   "answer %s", NEUTRAL, NEUTRAL)
    return (f"None of the corrections is `{NEUTRAL}` and no plain text was replayed ({plain.reason}): corrections "
            f"that are all emotions teach the model to stop answering {NEUTRAL}, on plain text too "
            f"(docs/adaptation.md measures how far). To keep that answer, label some plain rows `{NEUTRAL}` among "
            "the corrections, or give --neutral_data, and adapt again.")


class AdaptationRun:
    """One adaptation run: the trainable model, the data, and the figures as they come in."""

    def __init__(self, adapter, source, options, references, corrections, model, tokenizer, progress):
        self.adapter, self.source = adapter, source
        # Hashed as it was loaded: the lineage names the weights this run started from.
        self.parent_sha256 = file_sha256(source.directory / ADAPTER_FILES[1])
        (self.reference, self.plain), self.corrections = references, corrections
        self.model, self.tokenizer, self.progress = model, tokenizer, progress
        self.parent_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        self.replay = replay_sample(self.reference, options, len(corrections.texts))
        self.neutral_replay = neutral_sample(self.plain, options, len(corrections.texts))
        epochs = options.epochs or (REPLAY_EPOCHS if len(self.replay[0]) else DISTILL_EPOCHS)
        self.options = dataclasses.replace(options, epochs=epochs)
        self.notes: list[str] = [note] if (note := neutral_note(source.labels, corrections.labels, self.plain)) else []
        self.timing: dict[str, float] = {}
        self.step, self.total = 0, 0

    @classmethod
    def open(cls, adapter, source, options, references, corrections, progress) -> AdaptationRun:
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
        return cls(adapter, source, options, references, corrections, model, tokenizer, progress)

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
        return min(replay_wanted(self.options, n_train), len(self.replay[0]))

    def _neutral_count(self, n_train: int) -> int:
        return min(neutral_wanted(self.options, n_train), len(self.neutral_replay))

    def _steps(self, n_train: int) -> int:
        rows = n_train + self._replay_count(n_train) + self._neutral_count(n_train)
        return self.options.epochs * math.ceil(rows / self.options.batch_size)

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
        n_replay, n_neutral = self._replay_count(len(rows)), self._neutral_count(len(rows))
        texts = [self.corrections.texts[i] for i in rows] + self.replay[0][:n_replay] + self.neutral_replay[:n_neutral]
        neutral = np.full(n_neutral, self.source.labels.index(NEUTRAL) if n_neutral else 0, dtype=np.int64)
        labels = np.concatenate([self.corrections.labels[rows], self.replay[1][:n_replay], neutral])
        soft = None
        if n_replay == 0:  # without replay, the parent's softened probabilities hold the model back
            soft = np.concatenate([softmax(parent_corr[rows] / DISTILL_TEMPERATURE),
                                   np.eye(len(self.source.labels), dtype=np.float32)[neutral]])
        torch.manual_seed(seed)
        steps = train_loop(self.model, self.tokenizer, texts, labels, soft, self.options, seed, self._tick)
        return {"train_rows": len(texts), "corrections": len(rows), "replay_rows": n_replay,
                "neutral_replay_rows": n_neutral, "steps": steps}

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
        neutral = {"neutral_replay_rows": recipe["neutral_replay_rows"], "neutral_source": self.plain.source} \
            if NEUTRAL in self.source.labels else {}
        if recipe["replay_rows"]:
            return {"method": "replay", "replay_source": self.reference.source, "replay_rows": recipe["replay_rows"],
                    **neutral}
        why = "replay_rows is 0" if self.options.replay_rows == 0 else (self.reference.reason or "no train split")
        self.notes.append(f"No replay ({why}): distillation toward the parent's predictions on the corrections "
                          f"(KL to its probabilities at T = {DISTILL_TEMPERATURE}) guarded against forgetting instead.")
        return {"method": "distillation", "distill_weight": self.options.distill_weight,
                "temperature": DISTILL_TEMPERATURE, "reason": why, **neutral}

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
