"""The engine's switches as the app and the CLIs spell them. Light to import on purpose: the app
parses its command line before it loads anything (see app.start_background_prepare)."""

PRECISIONS = {"auto": "auto", "int8": True, "fp32": False}  # --precision -> from_adapter's quantize
RUNTIMES = ("auto", "onnxruntime", "torch")  # --runtime, as EmotionClassifier.from_adapter takes it
