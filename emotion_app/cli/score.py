"""Score a table of texts with an emotion adapter, streaming: memory stays flat whatever the size.

    python -m emotion_app score reviews.csv -o scored.csv
    python -m emotion_app score tweets.jsonl -o scored.jsonl --text_column body --threshold 0.6
    python -m emotion_app score big.tsv -o scored.tsv --engine ray --workers 4

Reads CSV/TSV/TXT, JSON Lines, .xlsx or Parquet (encoding, delimiter and header detected, as in the
app), writes every input row and column in order plus emotion, confidence, p_<label> (in_distribution
and ood_score when the adapter has a shift detector, needs_review with --threshold, and note) to
OUTPUT, in the format its suffix names (.csv, .tsv, .jsonl). The last line (and --report
REPORT.json) gives the file's estimated accuracy and says when the file is unlike the training data.
CSV/TSV cells that a spreadsheet would run as formulas get a leading ' unless --raw.
The output appears only when the run completes (it is written beside OUTPUT, then renamed).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from emotion_app.analysis.shift import describe_estimate
from emotion_app.cli.options import add_adapter_option, add_engine_options, add_option
from emotion_app.cli.runner import command_parser, run_command
from emotion_app.constants import HEADER_CHOICES
from emotion_app.engine.classifier import Predictor
from emotion_app.scoring import review_threshold, score_file


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("score", __doc__)
    parser.add_argument("input", help="Table to score: .csv, .tsv, .txt, .jsonl, .xlsx or .parquet.")
    parser.add_argument("-o", "--output", required=True, help="Where to write: .csv, .tsv or .jsonl.")
    add_option(parser, "--text_column", "--text-column", default=None,
               help="Column holding the texts (name, or position 1 = first); default: guessed.")
    add_option(parser, "--header", choices=tuple(HEADER_CHOICES), default="auto",
               help="Whether the first row is a header (default: detected).")
    add_adapter_option(parser)
    add_option(parser, "--batch_size", "--batch-size", type=int, default=64, help="Texts per forward pass.")
    add_option(parser, "--chunk_rows", "--chunk-rows", type=int, default=10_000,
               help="Rows read, scored and written at a time.")
    parser.add_argument("--threshold", type=float, default=None,
                        help="Add needs_review = confidence < THRESHOLD (between 0 and 1).")
    add_option(parser, "--target_accuracy", "--target-accuracy", type=float, default=None,
               help="Instead of --threshold: the lowest threshold whose kept rows reach this accuracy "
               "(e.g. 0.97) on the adapter's test split, from its metrics.json coverage curve.")
    parser.add_argument("--raw", action="store_true",
                        help="Write cells as they are (no ' before =, +, -, @, tab or CR). "
                        "Only for output that no spreadsheet will open.")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process; ray: a Ray cluster (needs requirements-ray.txt).")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (with --engine ray).")
    add_engine_options(parser)
    add_option(parser, "--no_progress", "--no-progress", action="store_true", help="No progress bar on stderr.")
    parser.add_argument("--report", default=None, metavar="REPORT.json",
                        help="Also write the file's estimate (estimated accuracy and its interval, share of rows "
                        "unlike the training data, shift warning, review counts) as JSON.")
    return parser


def score(args: argparse.Namespace, classifier: Predictor | None = None) -> None:
    threshold = review_threshold(args.adapter, args.threshold, args.target_accuracy)
    summary = score_file(args.input, args.output, classifier=classifier, adapter=args.adapter,
                         text_column=args.text_column, header=HEADER_CHOICES[args.header],
                         batch_size=args.batch_size, chunk_rows=args.chunk_rows, threshold=threshold,
                         raw=args.raw, engine=args.engine, workers=args.workers, precision=args.precision,
                         runtime=args.runtime, report=args.report, progress=False if args.no_progress else None)
    left = f" ({summary.unscored:,} left unscored: empty text)" if summary.unscored else ""
    trust = " ".join(describe_estimate(summary.estimate, summary.threshold is not None, summary.review_all))
    print(f"Scored {summary.rows:,} rows{left} of {summary.input} (text column '{summary.text_column}') "
          f"into {summary.output} in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s). {trust}")


def main(argv: list[str] | None = None, classifier: Predictor | None = None) -> int:
    """`classifier` (any object with predict_proba) replaces loading --adapter."""
    return run_command(build_parser(), argv, partial(score, classifier=classifier),
                       interrupted=lambda args: f"{args.output} was not written (an older file there is untouched).")


if __name__ == "__main__":
    sys.exit(main())
