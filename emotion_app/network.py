"""Is the Hugging Face Hub reachable? Asked once, with a short time-out, before a Hub download or
upload, so that without a network each Hub feature says so within seconds instead of waiting
through the client's retries (about 30 s for a data set), and the rest of the app keeps working.

Nothing here changes the process environment: HF_HUB_OFFLINE is only ever set by the user.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

logger = logging.getLogger(__name__)

TIMEOUT_S = 4.0


class HubUnreachable(ConnectionError):
    """The Hub cannot be reached (no network, a firewall, HF_HUB_OFFLINE=1, a wrong HF_ENDPOINT)."""


def require_hub(purpose: str, timeout: float = TIMEOUT_S) -> None:
    """Raise HubUnreachable, saying what needed the Hub and how to do without, unless the Hub
    endpoint answers within `timeout` seconds (any HTTP status counts as an answer)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise HubUnreachable(f"cannot reach the Hugging Face Hub for {purpose}: HF_HUB_OFFLINE is set. "
                             "Unset it to use the Hub, or use local files instead.")
    endpoint = constants.ENDPOINT
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered (e.g. 404 or 405 for HEAD /): it is reachable
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise HubUnreachable(f"cannot reach the Hugging Face Hub ({endpoint}) for {purpose}: {reason}. "
                             "Check the network (or HF_ENDPOINT), or use local files instead.") from None
