"""Which prompts make the base's zero-shot prior read emotions best, on every style of text?

    python experiments/prior_prompts.py --output experiments/results/prior_prompts.json

The bare all-MiniLM-L6-v2 (no adapter) scores each text by its mean cosine with each emotion's
prompts (`train/prior.zero_shot_probabilities`, the prior that train.py mixes into the targets).
For each candidate set of prompts: six-way accuracy on dair-ai validation, GoEmotions-6 dev and
ISEAR's four labels. Then, with the `several` emotion prompts fixed, candidate neutral prompts:
the share of neutral-only GoEmotions comments and of emotional rows that the seven-way prior calls
neutral. The two sets in `labels.PROMPT_SETS` are the ones train.py offers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _setup import DATA, setup_logging  # puts benchmarks/ on the import path

import bench_real_text as bench  # isort: skip

from emotion_app.constants import MINILM_ID
from emotion_app.labels import EMOTIONS, NEUTRAL, PROMPT_SETS
from emotion_app.train.prior import zero_shot_probabilities

TEMPERATURE, MAX_LENGTH = 50.0, 128
EMOTION_CANDIDATES: dict[str, dict[str, tuple[str, ...]]] = {
    **{name: {e: prompts[e] for e in EMOTIONS} for name, prompts in PROMPT_SETS.items()},
    "words": {"sadness": ("sadness", "grief", "sorrow", "loneliness", "disappointment"),
              "joy": ("joy", "happiness", "pride", "relief", "excitement"),
              "love": ("love", "affection", "tenderness", "caring", "romance"),
              "anger": ("anger", "rage", "annoyance", "irritation", "outrage"),
              "fear": ("fear", "anxiety", "terror", "nervousness", "panic"),
              "surprise": ("surprise", "amazement", "astonishment", "shock", "wonder")},
    "situations": {"sadness": ("I feel sad", "someone I loved died or left me"),
                   "joy": ("I feel happy", "something good happened to me, I succeeded"),
                   "love": ("I feel loving", "I love someone dearly"),
                   "anger": ("I feel angry", "someone treated me unfairly"),
                   "fear": ("I feel afraid", "I was in danger"),
                   "surprise": ("I feel surprised", "something unexpected happened")},
}
NEUTRAL_CANDIDATES: dict[str, tuple[str, ...]] = {
    "one": PROMPT_SETS["several"][NEUTRAL],
    "information": (*PROMPT_SETS["several"][NEUTRAL], "Here is some information", "I have a question about this"),
    "remark": (*PROMPT_SETS["several"][NEUTRAL], "It is an ordinary remark", "The meeting is at noon"),
}
EMOTIONAL_SETS = ("dair-ai validation", "GoEmotions-6 dev", "ISEAR (4 labels)")


def six_way(sets: dict, prompts: dict[str, tuple[str, ...]]) -> dict[str, float]:
    groups = [prompts[e] for e in EMOTIONS]
    out = {}
    for name in EMOTIONAL_SETS:
        texts, truth = sets[name]
        prior = zero_shot_probabilities(MINILM_ID, texts, TEMPERATURE, MAX_LENGTH, groups)
        out[name] = float(np.mean([EMOTIONS[i] == label for i, label in zip(prior.argmax(1), truth, strict=True)]))
    return out


def called_neutral(sets: dict, neutral: tuple[str, ...]) -> dict[str, float]:
    groups = [PROMPT_SETS["several"][e] for e in EMOTIONS] + [neutral]
    return {name: float((zero_shot_probabilities(MINILM_ID, sets[name][0], TEMPERATURE, MAX_LENGTH, groups)
                         .argmax(1) == len(EMOTIONS)).mean())
            for name in ("GoEmotions dev, neutral only", *EMOTIONAL_SETS)}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    sets = bench.real_sets(DATA, test=False)
    result = {"emotion_prompts": {name: six_way(sets, prompts) for name, prompts in EMOTION_CANDIDATES.items()},
              "neutral_prompts": {name: called_neutral(sets, prompts) for name, prompts in NEUTRAL_CANDIDATES.items()}}
    for part, rows in result.items():
        sys.stdout.write(f"\n{part}\n")
        for name, figures in rows.items():
            sys.stdout.write(f"{name:12s} " + "  ".join(f"{k}: {v:.1%}" for k, v in figures.items()) + "\n")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
