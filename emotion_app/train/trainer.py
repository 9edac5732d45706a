"""train(...) -> an adapter directory with metrics.json and a model card.

Layout of output_dir after a run:
    adapter_config.json, adapter_model.safetensors, tokenizer files, metrics.json, calibration.json,
    shift_detector.safetensors + shift_detector.json (the out-of-distribution detector), README.md
    checkpoints/checkpoint-N/   (one per epoch; `resume` continues from the last)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, set_seed

from emotion_app.analysis.calibration import calibration_metrics
from emotion_app.analysis.metrics import classification_metrics, format_report, label_set_metrics
from emotion_app.analysis.shift import DEFAULT_FIT_ROWS, SHIFTED, fit_from_passes, sample_rows, shifted_copies
from emotion_app.artifacts import (
    ADAPTER_CONFIG,
    METRICS_FILE,
    write_calibration,
    write_json,
    write_labels,
)
from emotion_app.data.labelled import load_splits, texts_labelled
from emotion_app.labels import EMOTIONS, NEUTRAL
from emotion_app.engine.classifier import EmotionClassifier, softmax
from emotion_app.train.arguments import (
    DataArguments,
    LoraArguments,
    ModelArguments,
    RunArguments,
)
from emotion_app.publish.card import write_model_card
from emotion_app.train.lora import build_lora_model
from emotion_app.train.prior import check_prior, prior_targets
from emotion_app.train.soup import (
    check_neutral_recall,
    check_soup_weight,
    fit_neutral_margin,
    lineage,
    load_mix,
    mix,
    read_ingredient,
    recorded_accuracy,
)

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STAGING = ".staging"
# --soup_neutral_recall's rows: the recall reached on unseen neutral text has a standard error of
# sqrt(R (1 - R) / n), about 3 points at 200 rows and under 1 at 4,000; more only cost time
MIN_NEUTRAL_FIT_ROWS = 200
NEUTRAL_FIT_ROWS = 4000


def train(model_args: ModelArguments, data_args: DataArguments, lora_args: LoraArguments,
          run_args: RunArguments) -> Path:
    """Fine-tune, pick the best epoch on validation, evaluate on test once, save (and push)."""
    output_dir = Path(run_args.output_dir)
    if run_args.push_to_hub:  # a bad repo id must fail now, not after the training
        from emotion_app.publish.hub import check_repo_id

        check_repo_id(run_args.hub_model_id or "")
    check_prior(run_args.prior_weight, run_args.prior_temperature, run_args.prior_prompts)
    _check_neutral_options(run_args)
    partner = _soup_partner(run_args) if run_args.soup_with else None
    set_seed(run_args.seed)
    dropped: dict = {}
    capped: list = []
    data = load_splits(data_args, dropped=dropped, seed=run_args.seed, capped=capped)
    labels = tuple(data["train"].features["label"].names)
    logger.info("Labels: %s", ", ".join(labels))
    neutral_rows = None if run_args.soup_neutral_recall is None else \
        _held_out_neutral(data, capped, labels, run_args.seed)
    targets = prior_targets(model_args.base_model, data["train"]["text"], data["train"]["label"],
                            run_args.prior_weight, run_args.prior_temperature,
                            model_args.max_length, labels, run_args.prior_prompts) if run_args.prior_weight else None
    model, tokenizer = build_lora_model(model_args.base_model, lora_args, model_args.max_length, labels)
    if partner is not None:  # an adapter that cannot be mixed with this one must fail now, not after training
        _mix_with(partner, model, tokenizer, run_args, model_args.base_model, labels, check_only=True)
    trainer = _trainer(model, tokenizer, data, targets, model_args.max_length, run_args, output_dir)
    resume_from = _last_checkpoint(output_dir) if run_args.resume else None
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started

    model, soup = trainer.model, None
    if partner is not None:
        model, tokenizer, soup = _mix_with(partner, model, tokenizer, run_args, model_args.base_model, labels,
                                           own_accuracy=_best_accuracy(trainer, run_args), neutral_rows=neutral_rows)
    metrics, detector = measure(model, tokenizer, data, model_args, run_args.per_device_eval_batch_size,
                                run_args.seed, output_dir.name)
    metrics["training"] = _training_summary(model_args, data_args, lora_args, run_args, trainer, seconds, data)
    if dropped:
        metrics["training"]["rows_dropped"] = dropped
    if resume_from:  # train_seconds then counts this invocation's steps only
        metrics["training"]["resumed_from"] = Path(resume_from).name
    if soup is not None:
        metrics["soup"] = {**soup, "max_length": model_args.max_length, "seed": run_args.seed}
    if not trainer.is_world_process_zero():  # under torchrun/accelerate only rank 0 writes and uploads
        return output_dir
    save_adapter(model, tokenizer, metrics, output_dir, model_args.base_model, detector)
    if run_args.push_to_hub:
        from emotion_app.publish.hub import push_adapter

        push_adapter(output_dir, run_args.hub_model_id or "", bool(run_args.hub_private_repo), run_args.hub_token)
    return output_dir


def measure(model, tokenizer, data, model_args: ModelArguments, eval_batch_size: int, seed: int,
            name: str) -> tuple[dict, object]:
    """(metrics, shift detector or None) of a finished model: validation and test at T = 1, the
    temperature fitted on validation with ECE/NLL and the coverage curve on test, and the detector
    on a seeded sample of the training rows (train.py's and the soup's last step)."""
    labels = tuple(data["train"].features["label"].names)
    classifier = EmotionClassifier(model, tokenizer, max_length=model_args.max_length,
                                   batch_size=max(eval_batch_size, 32), labels=labels)
    metrics = {"name": name, "labels": list(labels), "base_model": model_args.base_model}
    passes = {}
    for split in ("validation", "test"):
        # Raw logits and features, computed once: the metrics (at T = 1), the temperature fit and
        # the shift detector share them.
        passes[split] = (*classifier.logits_and_features(list(data[split]["text"])), data[split]["label"])
        metrics[split] = label_set_metrics(data[split]["label"], softmax(passes[split][0]), labels)
        logger.info("\n%s", format_report(metrics[split], f"{split}:"))
    metrics.update(calibration_metrics(passes["validation"][0], data["validation"]["label"],
                                       passes["test"][0], data["test"]["label"]))
    detector = _fit_shift_detector(classifier, data, passes, metrics, seed)
    return metrics, detector


def _soup_partner(run_args: RunArguments):
    """(the --soup_with adapter as a soup Ingredient, its engine.adapters.AdapterSource), checked."""
    check_soup_weight(run_args.soup_weight)
    try:
        return read_ingredient(run_args.soup_with)
    except ValueError as err:
        raise ValueError(f"--soup_with: {err} The adapter to mix with must exist before this run starts "
                         "(configs/minilm-cpu.json mixes with outputs/minilm-labels: make it first with "
                         "`python train.py configs/minilm-labels.json`).") from None


def _check_neutral_options(run_args: RunArguments) -> None:
    margin, recall = run_args.soup_neutral_margin, run_args.soup_neutral_recall
    for name, value in (("--soup_neutral_margin", margin), ("--soup_neutral_recall", recall)):
        if value and not run_args.soup_with:
            raise ValueError(f"{name} is {value} but there is no --soup_with: it applies to a soup. Add --soup_with "
                             f"ADAPTER or leave {name} out.")
    if recall is not None:
        check_neutral_recall(recall)
        if margin:
            raise ValueError(f"--soup_neutral_margin is {margin} and --soup_neutral_recall is {recall}: expected one "
                             "of them (the recall fits the margin). Leave one out.")


def _held_out_neutral(data, capped: list, labels: tuple[str, ...], seed: int) -> list[str]:
    """Texts labelled neutral that the run does not train on (validation's, and the extra files' rows
    the per-label cap set aside), at most NEUTRAL_FIT_ROWS of them (a seeded sample): what
    --soup_neutral_recall fits the margin on. Raises ValueError, before any training, when too few."""
    if NEUTRAL not in labels:
        raise ValueError(f"--soup_neutral_recall needs a `{NEUTRAL}` label; the run's labels are "
                         f"{', '.join(labels)}. Leave it out, or train on rows labelled {NEUTRAL}.")
    neutral = labels.index(NEUTRAL)
    texts = [text for text, label in zip(data["validation"]["text"], data["validation"]["label"]) if label == neutral]
    from_validation = len(texts)
    texts += [text for rows in capped for text in texts_labelled(rows, NEUTRAL)]
    if len(texts) < MIN_NEUTRAL_FIT_ROWS:
        raise ValueError(f"--soup_neutral_recall fits the margin on rows labelled {NEUTRAL} that the run does not "
                         f"train on; found {len(texts)} ({from_validation} in validation, {len(texts) - from_validation} "
                         f"set aside by --extra_train_max_per_label), expected at least {MIN_NEUTRAL_FIT_ROWS}. Add "
                         f"{NEUTRAL} rows to the validation file, cap an extra file with more {NEUTRAL} rows than "
                         "the cap, or give a fixed --soup_neutral_margin instead.")
    logger.info("Neutral margin: fitted after training on %d held-out neutral rows (%d from validation)",
                min(len(texts), NEUTRAL_FIT_ROWS), from_validation)
    return [texts[i] for i in sample_rows(len(texts), NEUTRAL_FIT_ROWS, seed)]


def _mix_with(partner, model, tokenizer, run_args: RunArguments, base_model: str, labels: tuple[str, ...],
              check_only: bool = False, own_accuracy: float | None = None, neutral_rows: list[str] | None = None):
    """This run's adapter mixed with the --soup_with one (train/soup.py): (model, tokenizer, the
    soup's lineage for metrics.json). With neutral_rows (--soup_neutral_recall) the neutral margin
    is fitted on them. With check_only, only whether the two can be mixed (the untrained adapter has
    this run's layers and head, and a margin fits its head), raising ValueError when not."""
    ingredient, source = partner
    weights = [run_args.soup_weight, 1 - run_args.soup_weight]
    recall = run_args.soup_neutral_recall
    margin = run_args.soup_neutral_margin
    with tempfile.TemporaryDirectory() as scratch:
        _save_peft(model, Path(scratch), base_model)
        write_labels(scratch, labels)  # a head of other labels than the six emotions is read by them
        own = dataclasses.replace(read_ingredient(scratch)[0], name=f"{run_args.output_dir} (this run)")
        if check_only:
            # a margin to fit is checked as any nonzero one is (a neutral label, a head bias)
            mix([ingredient, own], weights, 1.0 if recall is not None else margin)
            return None
        if recall is not None:
            unshifted = load_mix([ingredient, own], weights, tokenizer)[0]
            logits = EmotionClassifier(unshifted.model, unshifted.tokenizer, labels=unshifted.labels,
                                       batch_size=max(run_args.per_device_eval_batch_size, 32)).logits(neutral_rows)
            margin = fit_neutral_margin(logits, labels.index(NEUTRAL), recall)
            logger.info("Neutral margin %.4f: the soup calls %.0f%% of the held-out neutral rows neutral", margin,
                        100 * recall)
        loaded, config = load_mix([ingredient, own], weights, tokenizer, margin)
        adapters = [lineage(run_args.soup_with, weights[0], source.directory, recorded_accuracy(source.directory)),
                    lineage(own.name, weights[1], Path(scratch), own_accuracy)]
    soup = {"adapters": adapters, "rank": config["r"], "neutral_margin": margin}
    if recall is not None:
        soup["neutral_margin_fit"] = {"recall": recall, "held_out_neutral_rows": len(neutral_rows)}
    return loaded.model, loaded.tokenizer, soup


def _best_accuracy(trainer: Trainer, run_args: RunArguments) -> float | None:
    """The validation accuracy of the epoch the Trainer kept (None when it chose by another metric)."""
    metric = run_args.metric_for_best_model.removeprefix("eval_")
    return trainer.state.best_metric if run_args.load_best_model_at_end and metric == "accuracy" else None


def _fit_shift_detector(classifier: EmotionClassifier, data, passes: dict, metrics: dict, seed: int):
    """The out-of-distribution detector on the trained model's own features (a seeded sample of
    the training rows), calibrated on validation and its shifted copies; its entries go into
    `metrics`. None, with the reason in metrics.json, when it cannot be fitted (e.g. a tiny
    validation split all right)."""
    sample = data["train"].select(sample_rows(len(data["train"]), DEFAULT_FIT_ROWS, seed))
    shifted_texts, shifted_labels = shifted_copies(data["validation"]["text"], data["validation"]["label"], seed=seed)
    classifier.temperature = metrics["calibration"]["temperature"]
    try:
        detector, entries = fit_from_passes(
            {"train": (*classifier.logits_and_features(list(sample["text"])), sample["label"]),
             SHIFTED: (*classifier.logits_and_features(shifted_texts), shifted_labels), **passes},
            classifier.temperature,
            {"feature": f"last hidden state at the {classifier.feature_token} token (what the classification "
                        "head reads)", "seed": seed, "engine": "torch (the training model)"})
    except ValueError as err:
        logger.warning("No shift detector for this adapter: %s", err)
        metrics["shift_detector"] = {"available": False, "reason": str(err)}
        return None
    metrics.update(entries)
    return detector


def _trainer(model, tokenizer, data, targets: np.ndarray | None, max_length: int, run_args: RunArguments,
             output_dir: Path) -> Trainer:
    """The Trainer. With `targets` ([N, labels] distributions, --prior_weight) the training rows carry
    them as labels; otherwise, and always in validation, the label ids."""
    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    labels = data["train"].features["label"].names
    tokenized = data.map(tokenize, batched=True, remove_columns=["text"])
    if targets is not None:
        tokenized["train"] = tokenized["train"].remove_columns("label").add_column("label", targets.tolist())
    # The Trainer only checkpoints; the final adapter and its upload are done by save_adapter
    # and push_adapter, so checkpoints never reach the Hub.
    args = dataclasses.replace(run_args, output_dir=str(output_dir / CHECKPOINTS), push_to_hub=False)
    return Trainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=functools.partial(_trainer_metrics, labels=labels),
        compute_loss_func=_loss(data["train"]["label"], run_args, labels)
        if run_args.class_weight_power or run_args.prior_weight else None,
    )


def class_weights(ids, power: float, labels=EMOTIONS) -> torch.Tensor:
    """(1 / frequency) ** power per class, scaled so that the mean weight over the examples is 1."""
    if power == 0:
        return torch.ones(len(labels))
    counts = np.bincount(np.asarray(ids, dtype=int), minlength=len(labels)).astype(float)
    if (counts == 0).any():
        missing = [labels[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"class weighting needs every label in the training data; {missing} have no rows. "
                         "Add examples or set --class_weight_power 0.")
    weights = (counts.sum() / counts) ** power
    weights /= (weights * counts).sum() / counts.sum()
    return torch.tensor(weights, dtype=torch.float32)


def _loss(ids, run_args: RunArguments, labels=EMOTIONS):
    """Cross-entropy against label ids (validation) or target distributions (training), each row
    weighted by its label's class weight; the label is a target's largest share (prior_weight < 0.5)."""
    weights = class_weights(ids, run_args.class_weight_power, labels)
    if run_args.class_weight_power:  # 0: all ones
        logger.info("Class weights: %s", dict(zip(labels, weights.round(decimals=3).tolist())))

    def loss(outputs, targets, num_items_in_batch=None):
        logits = outputs.logits.float()
        soft = targets.dim() == 2
        label = targets.argmax(dim=1) if soft else targets
        rows = torch.nn.functional.cross_entropy(logits, targets.float() if soft else targets,
                                                 label_smoothing=run_args.label_smoothing_factor, reduction="none")
        total = (rows * weights.to(logits.device)[label]).sum()
        if num_items_in_batch is None:
            return total / len(label)
        # The Trainer counts the label tensor's entries: one per label and row for target distributions.
        return total / (num_items_in_batch / len(labels) if soft else num_items_in_batch)

    return loss


def _trainer_metrics(prediction, labels) -> dict:
    logits, ids = prediction
    metrics = classification_metrics(ids, softmax(np.asarray(logits)), labels)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def _last_checkpoint(output_dir: Path) -> str | None:
    directory = output_dir / CHECKPOINTS
    # The Trainer writes trainer_state.json last: a checkpoint without it was cut short (a kill
    # while saving) and cannot be resumed from, so take the newest complete one.
    complete = [p for p in directory.glob("checkpoint-*")
                if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").is_file()]
    last = str(max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")))) if complete else None
    if last is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", directory)
    else:
        logger.info("Resuming from %s", last)
    return last


def _training_summary(model_args, data_args, lora_args, run_args, trainer, seconds: float, data) -> dict:
    return {
        "base_model": model_args.base_model,
        "max_length": model_args.max_length,
        "train_rows": len(data["train"]),
        "labels": list(data["train"].features["label"].names),
        "extra_train_files": list(data_args.extra_train_files or []),
        "label_mapping": data_args.label_mapping,
        "extra_train_max_per_label": data_args.extra_train_max_per_label,
        "lora": dataclasses.asdict(lora_args),
        "learning_rate": run_args.learning_rate,
        "lr_scheduler_type": str(getattr(run_args.lr_scheduler_type, "value", run_args.lr_scheduler_type)),
        "warmup_steps": run_args.warmup_steps,
        "per_device_train_batch_size": run_args.per_device_train_batch_size,
        "num_train_epochs": run_args.num_train_epochs,
        "weight_decay": run_args.weight_decay,
        "label_smoothing_factor": run_args.label_smoothing_factor,
        "class_weight_power": run_args.class_weight_power,
        "prior_weight": run_args.prior_weight,
        "prior_temperature": run_args.prior_temperature,
        "prior_prompts": run_args.prior_prompts,
        "seed": run_args.seed,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "global_step": trainer.state.global_step,
        "train_seconds": round(seconds, 1),
    }


def save_adapter(model, tokenizer, metrics: dict, output_dir: Path, base_model: str, detector=None) -> None:
    """Write the adapter so that a crash never leaves a mixed or half-written one.

    Everything is written to a staging directory first, then moved into place with the
    adapter_config.json last (and removed first): whenever that file exists, the set is whole.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = output_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    _save_peft(model, staging, base_model)
    tokenizer.save_pretrained(str(staging))
    write_json(staging / METRICS_FILE, metrics)
    write_labels(staging, metrics["labels"])
    if "calibration" in metrics:  # calibration.json: read by EmotionClassifier.from_adapter
        write_calibration(staging, metrics["calibration"]["temperature"])
    if detector is not None:  # shift_detector.*: read by EmotionClassifier.from_adapter too
        detector.save(staging)
    write_model_card(staging, metrics)
    for stray in staging.glob("*.bin"):  # safetensors only
        stray.unlink()
    (output_dir / ADAPTER_CONFIG).unlink(missing_ok=True)
    names = sorted(p.name for p in staging.iterdir())
    for name in [n for n in names if n != ADAPTER_CONFIG] + [ADAPTER_CONFIG]:
        _fsync(staging / name)
        os.replace(staging / name, output_dir / name)
    staging.rmdir()
    logger.info("Saved the adapter to %s", output_dir)


def _save_peft(model, directory: Path, base_model: str) -> None:
    # Record the base as the user named it (a Hub id), never the bundled package's local path.
    # The vocabulary is never trained, so PEFT need not look the base up on the Hub to check it.
    model.peft_config["default"].base_model_name_or_path = base_model
    model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
