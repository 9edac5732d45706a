"""Publishing to the Hugging Face Hub: an adapter in the Hub-native layout, or an export folder.

A repo that `push_adapter` fills holds the adapter merged into its base at its root (config.json
with the adapter's labels, model.safetensors, the tokenizer, the card), so that
`pipeline("text-classification", model="user/name", top_k=None)` and the Hub's widget work without
peft, and the adapter itself in `adapter/` (with metrics.json and calibration.json), where
`EmotionClassifier.from_adapter("user/name")` and peft (`subfolder="adapter"`) find it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# Only the adapter itself goes up; checkpoints and staging files stay local.
UPLOAD_IGNORE = ["checkpoints/*", ".staging/*", ".export-staging/*", "*.bin", "*.pt", "*.pth"]


def push_adapter(directory: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                 base_model: str | None = None) -> str:
    """Create (or reuse) `repo_id` and upload the adapter in `directory` with its merged model
    (export.hub_folder: merged at the root, the adapter in adapter/); returns the repo URL.

    The token comes from `token`, else HF_TOKEN, else the saved login (huggingface_hub's
    own lookup); it is never logged. Merging needs the base (the bundled MiniLM, or a download).
    """
    check_repo_id(repo_id)
    from emotion_app.publish.export import hub_folder

    with tempfile.TemporaryDirectory(prefix="emotion-push-") as work:
        folder = hub_folder(directory, work, repo_id, base_model=base_model)
        return push_folder(folder, repo_id, private, token, "Upload emotion LoRA adapter and its merged model")


def push_folder(directory: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload emotion model") -> str:
    """Create (or reuse) `repo_id` and upload `directory` as it is (an export folder); returns
    the repo URL."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(directory), repo_id=repo_id, ignore_patterns=UPLOAD_IGNORE,
                      commit_message=commit_message)
    logger.info("Pushed %s to %s", directory, url)
    return str(url)


def check_repo_id(repo_id: str, flag: str = "--hub_model_id") -> None:
    """Raise ValueError unless `repo_id` is a user/name the Hub accepts (train checks it first,
    so that a typo does not surface only after training)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") == 1:
        try:
            validate_repo_id(repo_id)
            return
        except HFValidationError:
            pass
    name = flag.lstrip("-")
    raise ValueError(f"{name} {repo_id!r} is not a repo id: expected user/name (letters, digits, "
                     f"'-', '_', '.'). Pass {flag} user/name.")
