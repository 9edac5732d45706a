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

    if repo_id.count("/") != 1:
        raise ValueError(f"hub_model_id {repo_id!r} is not a repo id: expected user/name. "
                         "Pass --hub_model_id user/name.")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(directory), repo_id=repo_id, ignore_patterns=UPLOAD_IGNORE,
                      commit_message="Upload emotion LoRA adapter")
    logger.info("Pushed %s to %s", directory, url)
    return str(url)
