"""Publishing an adapter directory to the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# Only the adapter itself goes up; checkpoints and staging files stay local.
UPLOAD_IGNORE = ["checkpoints/*", ".staging/*", "*.bin", "*.pt", "*.pth"]


def push_adapter(directory: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (or reuse) `repo_id` and upload the adapter files; returns the repo URL.

    The token comes from `token`, else HF_TOKEN, else the saved login (huggingface_hub's
    own lookup); it is never logged.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(directory), repo_id=repo_id, ignore_patterns=UPLOAD_IGNORE,
                      commit_message="Upload emotion LoRA adapter")
    logger.info("Pushed %s to %s", directory, url)
    return str(url)


def check_repo_id(repo_id: str) -> None:
    """Raise ValueError unless `repo_id` is a user/name the Hub accepts (train checks it first,
    so that a typo does not surface only after training)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") == 1:
        try:
            validate_repo_id(repo_id)
            return
        except HFValidationError:
            pass
    raise ValueError(f"hub_model_id {repo_id!r} is not a repo id: expected user/name (letters, digits, "
                     "'-', '_', '.'). Pass --hub_model_id user/name.")
