"""Fine-tune a LoRA emotion classifier on dair-ai/emotion.

The reference recipe (DialogRPT-updown, GPT-2 medium, LoRA r=8; needs the Hub, best on a GPU):
    python train.py configs/dialogrpt-updown.json

The bundled MiniLM on a 2-core CPU with the local copy of the data (the embedded adapter):
    python train.py configs/minilm-cpu.json --data_dir ../shared/data/emotion

The candidate for real text (docs/training.md, session 6): a run on the base's zero-shot prior mixed
into the labels, then its weight-space mix with the embedded adapter:
    python train.py configs/experiments/run6-prior-w0.45-3ep.json --data_dir ../shared/data/emotion
    python -m emotion_app.soup --adapters models/minilm-emotion-lora outputs/run6-prior --weights 0.5 0.5 \
        --output_dir outputs/soup --data_dir ../shared/data/emotion

A smoke run (2 steps) and resuming after an interruption:
    python train.py configs/minilm-cpu.json --data_dir ../shared/data/emotion --max_steps 2 --output_dir /tmp/out
    python train.py configs/minilm-cpu.json --data_dir ../shared/data/emotion --resume

Flags override the JSON file; `python train.py --help` lists them all. Publish with
`--push_to_hub --hub_model_id user/name [--hub_private_repo]` (token from HF_TOKEN or the login).
"""

from __future__ import annotations

import logging
import sys

from emotion_app.train.arguments import parse_train_args
from emotion_app.train.trainer import train


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir = train(*parse_train_args(sys.argv[1:] if argv is None else argv))
    logging.getLogger("train").info("Adapter, metrics.json and model card in %s", output_dir)


if __name__ == "__main__":
    main()
