"""Bulk scoring on a Ray cluster: Ray Data `map_batches` around the same inference engine.

    from emotion_app.engine.ray import RayClassifier
    with RayClassifier("models/minilm-emotion-lora", num_workers=8) as classifier:
        probs = classifier.predict_proba(texts)      # [N, 6], in input order

or `python -m emotion_app score INPUT -o OUTPUT --engine ray --workers 8`. Ray is an optional
extra (`pip install -r requirements-ray.txt`); it is imported only when a RayClassifier is built.

How it works: the driver loads the engine once (`EmotionClassifier.from_adapter`: merged, int8 on
CPU, in ONNX Runtime when installed) and puts it in Ray's object store. Each call splits the
texts into `num_workers` blocks; a Ray Data `map_batches` task per block fetches the engine by
reference and scores its block with it, one CPU thread per worker core. Tasks run in Ray's
pooled worker processes, so a call costs no model loading, only fetching the engine
(milliseconds for MiniLM int8), which matters when the streaming CLI calls once per chunk.
Rows carry their index, so the result is in input order whatever order the blocks finish in.
The answers equal the single-process engine's.

Without a running Ray instance (`ray.init` not called, no RAY_ADDRESS), the first RayClassifier
starts a local one sized to `num_workers * cpus_per_worker` CPUs and `close()` stops it. To use a
cluster, call `ray.init(address=...)` first (or set RAY_ADDRESS): the workers must be able to
import `emotion_app` (install the project on every node, or pass it as a runtime_env py_module).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

import numpy as np

from emotion_app.engine.classifier import BasePredictor, EmotionClassifier, _check_texts

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r requirements-ray.txt"


def import_ray():
    """The ray module, or ImportError saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ImportError(f"the Ray engine needs the optional ray[data] package ({err}). Install it with "
                          f"`{INSTALL_HINT}`, or use the single-process engine (--engine local).") from None


class RayClassifier(BasePredictor):
    """predict_proba(texts) -> [N, 6] in input order, computed by `num_workers` Ray workers.

    Same interface as EmotionClassifier for scoring: .labels, .info, .predict_proba, .predict.
    batch_size is the engine's batch size inside each worker; quantize and runtime are passed to
    from_adapter.
    """

    def __init__(self, adapter: str, num_workers: int = 2, batch_size: int = 64, *,
                 base_model: str | None = None, token: str | None = None, quantize: str | bool = "auto",
                 runtime: str = "auto", cpus_per_worker: int = 1):
        for name, value in (("num_workers", num_workers), ("cpus_per_worker", cpus_per_worker)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, found {value!r}.")
        ray = import_ray()
        self.num_workers = num_workers
        self.cpus_per_worker = cpus_per_worker
        engine = EmotionClassifier.from_adapter(adapter, base_model=base_model, token=token,
                                                batch_size=batch_size, quantize=quantize, runtime=runtime)
        self.temperature = engine.temperature
        self.labels = engine.labels
        self.detector = engine.detector
        self.feature_dim = engine.feature_dim
        self.info = {**engine.info, "engine": "ray", "num_workers": num_workers}
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(num_cpus=num_workers * cpus_per_worker, include_dashboard=False,
                     logging_level=logging.WARNING)
            self._started_ray = True
        self._engine_ref = ray.put(engine)
        logger.info("Ray engine ready: %d workers x %d CPU", num_workers, cpus_per_worker)

    def logits(self, texts: Sequence[str], progress=None) -> np.ndarray:
        """Raw logits [N, 6], in input order (`progress` is told once, at the end: Ray's workers
        report nothing in between)."""
        return self._run(texts, False, progress)[0]

    def logits_and_features(self, texts: Sequence[str], progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(raw logits [N, labels], head features [N, D]), in input order, from one forward pass."""
        return self._run(texts, True, progress)

    def _run(self, texts: Sequence[str], features: bool, progress) -> tuple[np.ndarray, np.ndarray | None]:
        import ray.data

        texts = _check_texts(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        feats = np.zeros((len(texts), self.feature_dim or 0), dtype=np.float32) if features else None
        if not texts:
            return out, feats
        blocks = min(self.num_workers, len(texts))
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)],
                                      override_num_blocks=blocks)
        scored = dataset.map_batches(
            score_batch, batch_size=None, batch_format="numpy", num_cpus=self.cpus_per_worker,
            concurrency=self.num_workers, fn_kwargs={"engine_ref": self._engine_ref, "features": features,
                                                     "num_threads": self.cpus_per_worker})
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["row"]] = batch["logits"]
            if features:
                feats[batch["row"]] = batch["features"]
        if progress is not None:
            progress(len(texts), len(texts))
        return out, feats

    def close(self) -> None:
        """Stop the local Ray instance if this classifier started it."""
        if self._started_ray:
            import_ray().shutdown()
            self._started_ray = False

    def __enter__(self) -> RayClassifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def score_batch(batch: dict[str, np.ndarray], engine_ref, num_threads: int,
                features: bool = False) -> dict[str, np.ndarray]:
    """One Ray Data block: {"row", "text"} -> {"row", "logits"} (+ "features") with the shared engine."""
    import ray

    engine = ray.get(engine_ref)
    # A worker owns `num_threads` cores; the default (every core of the node) would make the
    # workers on one node fight over the same cores.
    engine.set_num_threads(num_threads)
    texts = [str(text) for text in batch["text"]]
    if not features:
        return {"row": np.asarray(batch["row"]), "logits": engine.logits(texts)}
    logits, feats = engine.logits_and_features(texts)
    return {"row": np.asarray(batch["row"]), "logits": logits, "features": feats}
