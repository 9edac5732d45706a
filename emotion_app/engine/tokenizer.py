"""The engine's tokenizer without transformers: the Rust `tokenizers` tokenizer that transformers'
fast tokenizers wrap, read from a saved tokenizer.json, with the settings transformers keeps in
tokenizer_config.json. The engine uses it whenever those files are there, so that the app's start
from a cached ONNX model imports neither transformers nor, through it, torch (about a second and
190 MB less; docs/performance.md). Its ids equal transformers' (tests/engine/test_tokenizer.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
UNLIMITED = int(1e30)  # transformers' model_max_length when a tokenizer names none


class FastTokenizer:
    """What the engine needs of a transformers tokenizer: `tokenizer(texts, truncation=True,
    max_length=N)["input_ids"]`, `decode`, `model_max_length`, `padding_side`, `pad_token_id`
    and `eos_token_id`. Like transformers' fast tokenizers it sets the truncation on the shared
    Rust tokenizer per call."""

    def __init__(self, backend, config: dict):
        self._backend = backend
        self._backend.no_padding()  # the engine pads each batch itself
        self.model_max_length = int(config.get("model_max_length") or UNLIMITED)
        self.padding_side = config.get("padding_side") or "right"
        self.truncation_side = config.get("truncation_side") or "right"
        self.pad_token_id = self._token_id(config.get("pad_token"))
        self.eos_token_id = self._token_id(config.get("eos_token"))

    @classmethod
    def from_directory(cls, directory: str | Path) -> FastTokenizer | None:
        """The tokenizer saved in `directory`, or None when it lacks tokenizer.json or
        tokenizer_config.json (transformers then has to build it)."""
        from tokenizers import Tokenizer

        path = Path(directory)
        if not all((path / name).is_file() for name in TOKENIZER_FILES):
            return None
        try:
            config = json.loads((path / TOKENIZER_FILES[1]).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path / TOKENIZER_FILES[1]} is not valid JSON ({err}). "
                             "Save the tokenizer again.") from None
        return cls(Tokenizer.from_file(str(path / TOKENIZER_FILES[0])), config)

    def __call__(self, texts: str | Sequence[str], truncation: bool = False,
                 max_length: int | None = None) -> dict[str, list]:
        limit = max_length or self.model_max_length
        if truncation and limit < UNLIMITED:  # as in transformers: no limit, no truncation
            self._backend.enable_truncation(limit, direction=self.truncation_side)
        else:
            self._backend.no_truncation()
        if isinstance(texts, str):
            return {"input_ids": self._backend.encode(texts).ids}
        return {"input_ids": [encoding.ids for encoding in self._backend.encode_batch(list(texts))]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def _token_id(self, token: str | dict | None) -> int | None:
        """A special token as tokenizer_config.json stores it (a string, or an AddedToken dict)."""
        if isinstance(token, dict):
            token = token.get("content")
        return self._backend.token_to_id(token) if token else None
