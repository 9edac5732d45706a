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
from pathlib import Path

from emotion_app.engine.adapters import read_adapter
from emotion_app.publish.export import export

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="Adapter directory or Hub repo id (user/name).")
    parser.add_argument("--base_model", default=None, help="Override the base model named in the adapter.")
    parser.add_argument("--merged", default=None, metavar="OUT", help="Write the merged model to this folder.")
    parser.add_argument("--onnx", default=None, metavar="OUT", help="Write the engine's ONNX model to this folder.")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO",
                        help="Upload the export (or, with neither --merged nor --onnx, the adapter with its "
                             "merged model) to this Hub repo (user/name). Token: HF_TOKEN or the saved login.")
    parser.add_argument("--private", action="store_true", help="Create the Hub repo as private.")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    from emotion_app.publish import hub

    outputs = {Path(path).resolve() for path in (args.merged, args.onnx) if path is not None}
    if args.push_to_hub:
        hub.check_repo_id(args.push_to_hub, flag="--push_to_hub")  # before minutes of export
        if len(outputs) > 1:
            raise ValueError(f"--push_to_hub uploads one folder, found two: --merged {args.merged} and --onnx "
                             f"{args.onnx}. Give both the same folder, or push them one at a time.")
    if args.push_to_hub and not outputs:
        directory = read_adapter(args.adapter, base_model=args.base_model).directory
        hub.push_adapter(directory, args.push_to_hub, private=args.private, base_model=args.base_model)
        return []
    written = export(args.adapter, args.merged, args.onnx, base_model=args.base_model, repo_id=args.push_to_hub)
    if args.push_to_hub:
        hub.push_folder(written[0], args.push_to_hub, private=args.private,
                        commit_message=f"Upload the {'merged' if args.merged else 'ONNX'} emotion model")
    return written


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
