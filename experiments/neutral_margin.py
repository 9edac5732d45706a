"""How often a neutral model says "no emotion", as a function of a margin on its neutral logit.

    python experiments/neutral_margin.py --adapter outputs/minilm-v3 --output experiments/results/neutral_margin.json

Scores the selection sets of benchmarks/bench_real_text.py once (plain transformers + peft, fp32)
and, for each margin m, calls a row neutral only when its neutral logit beats the best emotion's by
more than m (m = 0 is the model as trained). Six-way figures do not depend on m; what moves is the
share called neutral on emotional rows (dair-ai, GoEmotions-6, ISEAR) against the share of
neutral-only GoEmotions comments called neutral.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _setup import DATA, setup_logging  # puts benchmarks/ on the import path

import bench_real_text as bench  # isort: skip

from emotion_app.labels import NEUTRAL


def called_neutral(logits: np.ndarray, neutral: int, margin: float) -> float:
    emotions = np.delete(logits, neutral, axis=1).max(axis=1)
    return float((logits[:, neutral] - emotions > margin).mean())


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--margins", nargs="+", type=float, default=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--output", default=None, help="Also write the table as JSON here.")
    args = parser.parse_args(argv)
    sets = bench.real_sets(DATA, test=False)
    texts = [text for rows, _ in sets.values() for text in rows]
    logits, labels = bench.plain_peft_logits(args.adapter, texts)
    neutral, start, result = list(labels).index(NEUTRAL), 0, {}
    for name, (rows, _) in sets.items():
        part = logits[start:start + len(rows)]
        start += len(rows)
        result[name] = {str(m): called_neutral(part, neutral, m) for m in args.margins}
    print("| set | " + " | ".join(f"margin {m:g}" for m in args.margins) + " |")
    print("|---|" + "---|" * len(args.margins))
    for name, shares in result.items():
        print(f"| {name} | " + " | ".join(f"{v:.1%}" for v in shares.values()) + " |")
    if args.output:
        Path(args.output).write_text(json.dumps({"adapter": args.adapter, "called_neutral": result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
