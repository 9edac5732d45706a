"""Exports of an adapter for tools that do not know PEFT, and the Hub-native repo that
`train.py --push_to_hub` uploads.

    python -m emotion_app export --adapter models/minilm-emotion-lora --merged out/merged
    python -m emotion_app export --adapter models/minilm-emotion-lora --onnx out/onnx
    python -m emotion_app export --adapter A --merged OUT --onnx OUT --push_to_hub user/name --private
    python -m emotion_app export --adapter A --push_to_hub user/name   # what train.py --push_to_hub uploads

--merged OUT: the adapter merged into its base, a plain transformers checkpoint: config.json (the six
    labels as id2label/label2id), model.safetensors, the tokenizer, calibration.json and
    metrics.json when the adapter has them, README.md (how it was made, how to use it).
--onnx OUT: the inference engine's ONNX model (engine/onnx.py: int8 where the engine uses int8)
    as onnx/model_quantized.onnx (onnx/model.onnx when nothing is quantized, e.g. GPT-2), with
    config.json, tokenizer.json and tokenizer_config.json at OUT's root: Optimum's and
    transformers.js's layout. README.md shows how to run it with onnxruntime alone.
--push_to_hub REPO: upload the export folder (one; --merged and --onnx may name the same one), or
    with neither, the adapter in the layout train.py pushes: the merged model at the repo's root,
    so that `pipeline("text-classification", model=REPO)` works without peft, and the adapter in
    `adapter/`, which this project's loaders find there.

Why the merged model at the root, not the adapter with a config.json beside it: transformers 5
(auto_factory / integrations/peft.py maybe_load_adapters) loads a Hub repo holding
adapter_config.json as the base named there plus the adapter, with the base's config (2 labels for
MiniLM, so the 6-way head does not fit); a local folder holding both adapter_config.json and
config.json it takes for a full model and wants its weights (docs/hub.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emotion_app.cli.runner import command_parser, run_command
from emotion_app.constants import resolve_adapter
from emotion_app.engine.adapters import read_adapter
from emotion_app.errors import InputError, model_errors
from emotion_app.paths import check_directory_output, check_outputs, is_adapter_dir, writing
from emotion_app.publish.export import export

logger = logging.getLogger(__name__)

EXPORT_MARKS = ("config.json", "README.md")  # what every export folder holds at its root


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export", __doc__)
    parser.add_argument("--adapter", required=True, help="Adapter directory or Hub repo id (user/name).")
    parser.add_argument("--base_model", default=None, help="Override the base model named in the adapter.")
    parser.add_argument("--merged", default=None, metavar="OUT", help="Write the merged model to this folder.")
    parser.add_argument("--onnx", default=None, metavar="OUT", help="Write the engine's ONNX model to this folder.")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO",
                        help="Upload the export (or, with neither --merged nor --onnx, the adapter with its "
                             "merged model) to this Hub repo (user/name). Token: HF_TOKEN or the saved login.")
    parser.add_argument("--private", action="store_true", help="Create the Hub repo as private.")
    return parser


def is_export(folder: Path) -> bool:
    """An earlier export (written over by a new one), never an adapter."""
    return all((folder / name).is_file() for name in EXPORT_MARKS) and not is_adapter_dir(folder)


def check_paths(args: argparse.Namespace) -> dict[str, str]:
    """The export folders, by flag (one entry when --merged and --onnx name the same folder): each
    new, empty or an earlier export, and none an input or inside one."""
    folders = {}
    for flag, path in (("--merged", args.merged), ("--onnx", args.onnx)):
        if path is not None and Path(path).resolve() not in {Path(p).resolve() for p in folders.values()}:
            folders[flag] = path
    check_outputs(folders, {"--adapter": resolve_adapter(args.adapter), "--base_model": args.base_model},
                  directories=folders)
    for flag, path in folders.items():
        check_directory_output(flag, path, is_export, "Choose a new or empty folder, or an earlier export.")
    return folders


def run(args: argparse.Namespace) -> list[Path]:
    from emotion_app.publish import hub

    if args.merged is None and args.onnx is None and not args.push_to_hub:
        raise InputError("nothing to export: expected --merged OUT and/or --onnx OUT (or --push_to_hub REPO), "
                         "found none. Name an output folder.")
    folders = check_paths(args)
    if args.push_to_hub:
        hub.check_repo_id(args.push_to_hub, flag="--push_to_hub")  # before minutes of export
        if len(folders) > 1:
            raise InputError(f"--push_to_hub uploads one folder, found two: --merged {args.merged} and --onnx "
                             f"{args.onnx}. Give both the same folder, or push them one at a time.")
    with model_errors(args.adapter):
        directory = read_adapter(args.adapter, base_model=args.base_model).directory
    if args.push_to_hub and not folders:
        with writing("--push_to_hub", args.push_to_hub):
            hub.push_adapter(directory, args.push_to_hub, private=args.private, base_model=args.base_model)
        return []
    written = export(args.adapter, args.merged, args.onnx, base_model=args.base_model, repo_id=args.push_to_hub)
    if args.push_to_hub:
        with writing("--push_to_hub", args.push_to_hub):
            hub.push_folder(written[0], args.push_to_hub, private=args.private,
                            commit_message=f"Upload the {'merged' if args.merged else 'ONNX'} emotion model")
    return written


def execute(args: argparse.Namespace) -> None:
    run(args)  # each export folder is named in the log as it is written


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, execute, interrupted=lambda args: (
        "the export folders hold their earlier files or the new ones, each whole; run the command again "
        "to finish the export."))


if __name__ == "__main__":
    sys.exit(main())
