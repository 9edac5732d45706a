"""Adapt a trained adapter to a user's own corrected rows, and measure what that gained.

    from emotion_app.train.adaptation import AdaptOptions, adapt
    out_dir, summary = adapt("models/minilm-emotion-lora", texts, label_ids, "outputs/mine",
                             AdaptOptions(), progress=lambda step, total: ...)

The package: `inputs.py` (options, corrections reading and checks, dair-ai/emotion as reference
data, which rows each training takes), `loop.py` (the training loop, and why it is not the HF
Trainer), `run.py` (`adapt` and `AdaptationRun`, the orchestration), `progress.py` (the JSON
progress lines `python -m emotion_app adapt --progress json` writes and the app reads).

What a run does (docs/adaptation.md has the measurements behind the defaults):
1. checks the corrections (at least MIN_CORRECTIONS, every label one of the adapter's) and the
   output directory (never the parent or inside it) before anything heavy is loaded;
2. loads the parent with its own LoRA weights and head, trainable (peft's
   `PeftModel.from_pretrained(..., is_trainable=True)` on `engine.adapters.load_base_model`):
   training continues from the parent, it never starts again from the base;
3. guards against forgetting: dair-ai/emotion train rows (REPLAY_PER_CORRECTION per correction)
   are mixed into every epoch. Without replay (none reachable, or `replay_rows=0`) it distils
   toward the parent instead: each correction's loss adds the KL divergence between the parent's
   and the model's probabilities (at DISTILL_TEMPERATURE), so the model moves only as far as
   the corrections pull it. A model with `neutral` also replays plain texts labelled neutral
   (NEUTRAL_PER_CORRECTION per correction, GoEmotions from the Hub or `neutral_data`): dair-ai
   holds none, and corrections that are all emotions would teach it to drop that answer;
4. measures the gain on corrections held out from training, parent and adapted model on the same
   rows: k-fold cross-validation below CV_BELOW corrections, a held-out 20 % from there (or none);
   the same recipe, the same seed. The final adapter is then trained on all corrections. Its
   weights do not depend on the held-out measurement: every training starts from the parent's
   weights and `torch.manual_seed(seed)`, so a fixed seed reproduces the adapter;
5. scores parent and adapted model on the dair-ai/emotion test split, when reachable;
6. refits the temperature and writes a complete adapter with metrics.json (lineage in
   `adaptation`) and a model card, atomically (`train.trainer.save_adapter`). The parent's files
   are only read.
"""

from emotion_app.train.adaptation.inputs import (
    CV_BELOW,
    DISTILL_EPOCHS,
    HOLDOUT_FOLDS,
    HOLDOUTS,
    MIN_CORRECTIONS,
    NEUTRAL_DATASET,
    NEUTRAL_PER_CORRECTION,
    REPLAY_DATASET,
    REPLAY_EPOCHS,
    REPLAY_PER_CORRECTION,
    AdaptOptions,
    Corrections,
    Reference,
    check_corrections,
    check_options,
    check_output_dir,
    holdout_folds,
    load_reference,
    read_corrections,
)
from emotion_app.train.adaptation.loop import DISTILL_TEMPERATURE
from emotion_app.train.adaptation.run import (
    CALIBRATION_ROWS,
    AdaptationRun,
    Progress,
    adapt,
)

__all__ = [
    "CALIBRATION_ROWS", "CV_BELOW", "DISTILL_EPOCHS", "DISTILL_TEMPERATURE", "HOLDOUTS", "HOLDOUT_FOLDS",
    "MIN_CORRECTIONS", "NEUTRAL_DATASET", "NEUTRAL_PER_CORRECTION", "REPLAY_DATASET", "REPLAY_EPOCHS",
    "REPLAY_PER_CORRECTION", "AdaptOptions",
    "AdaptationRun", "Corrections", "Progress", "Reference", "adapt", "check_corrections", "check_options",
    "check_output_dir", "holdout_folds", "load_reference", "read_corrections",
]
