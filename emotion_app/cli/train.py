"""Fine-tune a LoRA emotion classifier on dair-ai/emotion.

The reference recipe (DialogRPT-updown, GPT-2 medium, LoRA r=8; needs the Hub, best on a GPU):
    python -m emotion_app train configs/dialogrpt-updown.json

The bundled MiniLM on a 2-core CPU with the local copy of the data: the embedded adapter (v2) is
the labels-only run (v1) mixed in weight space with a run on the base's zero-shot prior
(docs/training.md); the second command trains the prior run and saves the mix:
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion
    python -m emotion_app train configs/minilm-cpu.json --data_dir ../shared/data/emotion

A smoke run (2 steps) and resuming after an interruption:
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion --max_steps 2 --output_dir /tmp/out
    python -m emotion_app train configs/minilm-labels.json --data_dir ../shared/data/emotion --resume

Flags override the JSON file; `python -m emotion_app train --help` lists them all. Publish with
`--push_to_hub --hub_model_id user/name [--hub_private_repo]` (token from HF_TOKEN or the login).
"""

from __future__ import annotations

import logging
import sys

from emotion_app.train.arguments import parse_train_args
from emotion_app.train.trainer import train


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir = train(*parse_train_args(sys.argv[1:] if argv is None else argv))
    logging.getLogger(__name__).info("Adapter, metrics.json and model card in %s", output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
