"""The command line: `emotion-app <command>` (or `python -m emotion_app <command>`), one module per
command in this package, each with build_parser() and main(argv) -> exit code."""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line summary); modules are imported only when their command runs (light start)
COMMANDS = {
    "train": ("emotion_app.cli.train", "fine-tune a LoRA adapter (the same as train.py)"),
    "score": ("emotion_app.cli.score", "label the texts of a table, streaming"),
    "evaluate": ("emotion_app.cli.evaluate", "an adapter's figures on a labelled split or file"),
    "calibrate": ("emotion_app.cli.calibrate", "refit an adapter's calibration, coverage and shift detector"),
    "adapt": ("emotion_app.cli.adapt", "a new adapter from a parent and a file of corrections"),
    "export": ("emotion_app.cli.export", "a merged model for pipeline() and ONNX, optionally pushed to the Hub"),
    "soup": ("emotion_app.cli.soup", "mix adapters of one base in weight space (a model soup)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return ("usage: emotion-app <command> [options]   (or: python -m emotion_app <command> ...)\n\ncommands:\n"
            + "\n".join(lines) + "\n\n`emotion-app <command> --help` lists a command's options.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; expected one of {', '.join(COMMANDS)}.\n\n{usage()}",
              file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name][0]).main(rest) or 0
