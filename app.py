"""The Gradio app, four tabs (Predict, Batch CSV, Review & adapt, Evaluation) on an emotion LoRA adapter.

    python app.py                                  # the embedded models/minilm-emotion-lora, no network
    python app.py --adapter user/emotion-lora      # a Hub repo (HF_TOKEN for a private one)
    EMOTION_ADAPTER=path/to/adapter python app.py  # the same through the environment (a Space variable)

Serves on http://127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise
(Hugging Face Spaces sets them). Upload limits: --max_mb / EMOTION_MAX_MB and --max_rows /
EMOTION_MAX_ROWS. Memory: --max_sessions / EMOTION_MAX_SESSIONS, the gradio sessions whose state
stays in memory (about 165 KB each; see emotion_app/ui/sessions.py). Engine: --precision /
EMOTION_PRECISION (auto, int8, fp32) and --runtime / EMOTION_RUNTIME (auto, onnxruntime, torch).
A local adapter on a local (or the bundled MiniLM) base loads from local paths only, so the app
starts without the network and never waits on a Hub time-out; the Hub features (the Evaluation
tab's test split, Hub adapters) use the network when there is one. HF_HUB_OFFLINE is only ever set
by you.

On CPU the engine runs an ONNX export of the model, cached on disk ($EMOTION_APP_CACHE, else
~/.cache/emotion_app). A first start builds it in a child process while this one imports gradio,
then the explanation's word table (engine/words.py) in a background thread at low priority;
`python app.py --prepare` builds both ahead (e.g. in a Docker build step) and exits.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# Before anything imports gradio or huggingface_hub: they read these when imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

logger = logging.getLogger("app")


def build_parser() -> argparse.ArgumentParser:
    from emotion_app.cli.options import add_adapter_option, add_engine_options
    from emotion_app.constants import DEFAULT_ADAPTER, MAX_UPLOAD_MB, MAX_UPLOAD_ROWS
    from emotion_app.ui.sessions import MAX_SESSION_STATES

    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_adapter_option(parser, default=os.environ.get("EMOTION_ADAPTER") or DEFAULT_ADAPTER)
    add_engine_options(parser, precision=os.environ.get("EMOTION_PRECISION") or "auto")
    parser.set_defaults(runtime=os.environ.get("EMOTION_RUNTIME") or "auto")
    parser.add_argument("--prepare", action="store_true",
                        help="Put the engine's ONNX model and its word table (the explanation's words read "
                             "alone) into the cache and exit (e.g. in a Docker build step).")
    parser.add_argument("--prepare_model_only", action="store_true",
                        help="Like --prepare, without the word table: what a first start runs beside itself "
                             "(the app then builds the table in the background).")
    parser.add_argument("--max_mb", type=float, default=_env_number("EMOTION_MAX_MB", MAX_UPLOAD_MB, float),
                        help=f"Largest upload (table or labelled file) in MB (default $EMOTION_MAX_MB or {MAX_UPLOAD_MB:g}).")
    parser.add_argument("--max_rows", type=int, default=_env_number("EMOTION_MAX_ROWS", MAX_UPLOAD_ROWS, int),
                        help=f"Most rows per uploaded file (default $EMOTION_MAX_ROWS or {MAX_UPLOAD_ROWS}).")
    parser.add_argument("--max_sessions", type=int,
                        default=_env_number("EMOTION_MAX_SESSIONS", MAX_SESSION_STATES, int),
                        help="Gradio sessions (pages, API callers) whose state stays in memory, about 165 KB "
                             "each; the least recently used go first (default $EMOTION_MAX_SESSIONS or "
                             f"{MAX_SESSION_STATES}).")
    return parser


def _env_number(name: str, default, kind):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        raise SystemExit(f"error: {name}={value!r} is not a number: expected e.g. {default}. "
                         "Fix or unset the variable.") from None


def engine_options(args: argparse.Namespace) -> tuple[str, dict]:
    """The adapter and `EmotionClassifier.from_adapter`'s options from the command line, checked."""
    from emotion_app.constants import PRECISIONS, RUNTIMES, resolve_adapter

    adapter = resolve_adapter(args.adapter)
    if args.runtime not in RUNTIMES:  # likewise a bad $EMOTION_RUNTIME
        raise SystemExit(f"error: runtime must be one of {', '.join(RUNTIMES)}, found {args.runtime!r}. "
                         "Fix --runtime or EMOTION_RUNTIME.")
    if args.precision not in PRECISIONS:  # a bad $EMOTION_PRECISION bypasses argparse's choices
        raise SystemExit(f"error: precision must be one of {', '.join(PRECISIONS)}, found {args.precision!r}. "
                         "Fix --precision or EMOTION_PRECISION.")
    return adapter, {"token": os.environ.get("HF_TOKEN") or None, "quantize": PRECISIONS[args.precision],
                     "runtime": args.runtime}


def build(args: argparse.Namespace):
    """Load the classifier and build the Blocks (not launched)."""
    adapter, options = engine_options(args)
    from emotion_app.engine import words
    from emotion_app.engine.classifier import EmotionClassifier
    from emotion_app.engine.threads import THREADS_BY_BATCH
    from emotion_app.storage import cache_root, describe
    from emotion_app.ui.common import Limits
    from emotion_app.ui.layout import build_demo

    if args.max_mb <= 0 or args.max_rows < 1 or args.max_sessions < 1:
        raise SystemExit(f"error: limits must be positive, found --max_mb {args.max_mb}, --max_rows "
                         f"{args.max_rows} and --max_sessions {args.max_sessions}. Pass e.g. --max_mb 50 "
                         "--max_rows 100000 --max_sessions 1000.")
    started = time.perf_counter()
    try:
        classifier = EmotionClassifier.from_adapter(adapter, thread_policy=THREADS_BY_BATCH, **options)
    except (ValueError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None
    words.attach(classifier)  # the explanation's words alone: read from the cache, or built in the background
    logger.info("Loaded adapter %s on %s in %.1f s", args.adapter, classifier.info.get("base_model"),
                time.perf_counter() - started)
    logger.info("Storage: %s", describe(cache_root()))  # the page says where in words only
    limits = Limits(max_bytes=int(args.max_mb * 1024 * 1024), max_rows=args.max_rows)
    demo = build_demo(classifier, limits=limits)
    bound_session_memory(demo, args.max_sessions)
    return demo, limits


def prepare(args: argparse.Namespace) -> None:
    """--prepare: put the engine's ONNX model (and, unless --prepare_model_only, its word table)
    into the cache and exit."""
    adapter, options = engine_options(args)
    from emotion_app.engine import words
    from emotion_app.engine.classifier import EmotionClassifier
    from emotion_app.engine.loading import prepare_onnx

    try:
        cached = prepare_onnx(adapter, **options)
        table = None
        if cached and not args.prepare_model_only:
            # read back from the cache just filled (no torch); words.build runs one thread, as the app does
            table = words.prepare(EmotionClassifier.from_adapter(adapter, **options))
    except (ValueError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None
    logger.info("ONNX model for %s: %s", args.adapter, "in the cache" if cached else
                "none needed (this engine runs in torch here)")
    if table is not None:
        logger.info("word table for %s: %s", args.adapter, table)


def start_background_prepare(args: argparse.Namespace, argv: list[str]) -> subprocess.Popen | None:
    """`python app.py --prepare_model_only` beside this process, given 2+ cores and 2 GiB of free
    memory (the word table this process builds itself, at low priority, once it serves). On
    a first start it exports the model to ONNX while this process imports gradio, and
    `from_adapter` here waits for it (engine.onnx.build_lock) and reads the file: 7-8 s to the
    first answer instead of about 10 s, at the price of a second process for a few seconds (1.16 GB
    for both at the peak; docs/performance.md). With the model already cached the child finds
    it and exits. Its output is dropped: should it fail, this process builds the model itself
    and reports what went wrong."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.runtime == "torch" or cores < 2 or available_memory_gib() < 2:
        return None
    command = [sys.executable, str(Path(__file__).resolve()), "--prepare_model_only", *argv]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    threading.Thread(target=child.wait, name="reap-prepare", daemon=True).start()  # no zombie left
    return child


def available_memory_gib() -> float:
    """MemAvailable from /proc/meminfo (Linux); infinity where that cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


def lighten_gradio_analytics() -> None:
    """Gradio's queue rebuilds a pandas summary of its last 10,000 events after every event (the
    API page's timings): under API load that is several per cent of the CPU and grows with the
    record. Every 500 events over the last 1,000 says the same. Set before the queue exists; the
    environment still wins."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


def bound_session_memory(demo, max_sessions: int) -> None:
    """Bound what gradio keeps per session, which a long-running server otherwise gains with every
    new session (with a session per API call, 165 KB a call: docs in emotion_app/ui/sessions.py):
    its session states, by launch's documented `state_session_capacity`, and its queue's record
    of pending events, which no setting bounds."""
    from emotion_app.ui.sessions import bound_queue_records

    bound_queue_records(demo._queue)  # the queue exists: build_demo configured it
    # layout.launch owns the other launch options; the capacity joins whichever launch is called
    demo.launch = functools.partial(demo.launch, state_session_capacity=max_sessions)


def serve(demo, limits) -> None:
    """Launch on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860); blocks."""
    from emotion_app.ui.layout import launch

    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    # gradio itself refuses uploads far over our limit; in between, our reader explains the limit
    launch(demo, host, port, max_file_bytes=4 * limits.max_bytes)


def __getattr__(name: str):
    """`import app; app.demo` (e.g. `gradio app.py` reload mode) builds the app from the environment."""
    if name == "demo":
        return build(build_parser().parse_args([]))[0]
    raise AttributeError(f"module 'app' has no attribute {name!r}")


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.prepare or args.prepare_model_only:
        prepare(args)
        return
    start_background_prepare(args, argv)  # first, so that it runs while this process imports gradio
    lighten_gradio_analytics()
    demo, limits = build(args)
    serve(demo, limits)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(sys.argv[1:])
