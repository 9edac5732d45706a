"""The torch int8 policy: which linear layers go int8 (the same for torch and ONNX Runtime), and
torch's dynamic quantization of them."""

from __future__ import annotations

import logging
import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


# torch warns that torch.ao.quantization is deprecated (in favour of torchao, not installed here);
# dynamic quantization still works in this torch, and the warning would reach every user.
_QUANTIZATION_WARNINGS = re.compile(r"torch\.ao\.quantization is deprecated|torch\.quantize_per_tensor")



def int8_layer_names(model: PreTrainedModel) -> list[str]:
    """Full names of the linear layers that go int8: the backbone's nn.Linear layers except those
    `_keep_fp32` keeps. The classification head stays fp32: it is tiny, so int8 would save nothing
    there and would only add rounding to the logits. GPT-2 uses Conv1D rather than nn.Linear, so it
    has none (and stays fp32)."""
    import torch

    prefix = model.base_model_prefix
    backbone = getattr(model, prefix, model)
    return [f"{prefix}.{name}" if backbone is not model else name
            for name, module in backbone.named_modules()
            if isinstance(module, torch.nn.Linear) and not _keep_fp32(name, model.config.num_hidden_layers)]



def quantize_int8(model: PreTrainedModel, layers: list[str] | None = None) -> list[str]:
    """Quantize `layers` (default `int8_layer_names(model)`) to int8 in place with torch dynamic
    quantization (int8 weights, activations quantized per batch); returns the quantized names."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    if model.device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on CPU only; the model is on {model.device}. "
                         "Pass quantize=False (or \"auto\") on a GPU.")
    layers = int8_layer_names(model) if layers is None else layers
    if not layers:
        logger.info("int8: %s has no nn.Linear layers to quantize; it stays fp32", type(model).__name__)
        return []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUANTIZATION_WARNINGS.pattern)
        quantize_dynamic(model, {name: default_dynamic_qconfig for name in layers}, dtype=torch.qint8, inplace=True)
    logger.info("int8: quantized %d linear layers of %s", len(layers), type(model).__name__)
    return layers



def _keep_fp32(name: str, num_layers: int) -> bool:
    """Layers left in fp32 by int8: the pooler, and the feed-forward down-projections
    (BERT's `layer.N.output.dense`) of the first half of the layers, whose inputs are GELU
    outputs with large outliers that per-tensor int8 activations round badly. Chosen on the
    validation texts (docs/performance.md): on the embedded model every linear layer int8 lost
    0.35-0.9 points, this choice none. Changing it: bump engine.onnx.FORMAT_VERSION."""
    if name.startswith("pooler"):
        return True
    match = re.search(r"layer\.(\d+)\.output\.dense$", name)
    return match is not None and int(match.group(1)) < num_layers // 2
