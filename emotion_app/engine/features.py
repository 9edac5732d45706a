"""The features the classification head reads, taken from the same forward pass as the logits.

The out-of-distribution score (engine/ood.py) works on one vector per text: the last hidden state
at the token the head looks at. Which token that is depends on the architecture:

- encoders with a `classifier` head (BERT, RoBERTa, DistilBERT, ...): the first token ([CLS] /
  <s>), i.e. `model.bert(...).last_hidden_state[:, 0, :]`, the input of BERT's pooler;
- decoders with a `score` head (GPT-2 / DialogRPT, Llama, ...): the last token that is not the pad
  token, found exactly as GPT2ForSequenceClassification finds it (rightmost non-pad token, so left
  and right padding both work).

`head_features` is torch code used twice: inside the ONNX export (a second graph output, see
engine/onnx.py) and on the torch path (`output_hidden_states=True`). Both read the hidden states
the forward pass computes anyway: no second model run, only a gather.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FIRST, LAST = "first", "last"


def feature_token(model) -> str:
    """FIRST for a `classifier` head (the encoder's [CLS]), LAST for a `score` head (a decoder's
    last real token). A PEFT-wrapped model is looked at through its base model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return LAST if hasattr(base, "score") and not hasattr(base, "classifier") else FIRST


def hidden_size(model) -> int | None:
    """Width of the features: the config's hidden_size (BERT) or n_embd (GPT-2); None if unknown."""
    config = getattr(model, "config", None)
    return getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)


def head_features(hidden: torch.Tensor, input_ids: torch.Tensor, token: str, pad_id: int | None) -> torch.Tensor:
    """[N, D] from the last hidden state [N, T, D]: the token `feature_token` names."""
    import torch

    if token == FIRST:
        return hidden[:, 0]
    if pad_id is None:
        return hidden[:, -1]
    non_pad = (input_ids != pad_id).to(torch.int32)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    last = (positions * non_pad).argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def logits_and_features(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, token: str):
    """(logits [N, C], features [N, D]) of a transformers model, from one forward pass."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    pad_id = getattr(model.config, "pad_token_id", None)
    return out.logits, head_features(out.hidden_states[-1], input_ids, token, pad_id)
