"""Reading a store's HTTP monitoring endpoint (etcd's /debug/vars, NATS's /raftz) with its
failures mapped onto the taxonomy, so that status polls treat every store alike."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pytest_consensus.contract.errors import Timeout, Unavailable, UnknownError


def read_json(url: str, node: str, timeout: float) -> dict[str, Any]:
    """The JSON object at ``url``. No answer in time is a ``Timeout``, a refused or failed
    request ``Unavailable``, and an answer that is no JSON object ``UnknownError``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except TimeoutError as error:
        raise Timeout(f"{node}: no status within {timeout}s") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise Timeout(f"{node}: no status within {timeout}s") from error
        raise Unavailable(f"{node}: status: {error.reason}") from error
    except (OSError, ValueError) as error:
        raise UnknownError(f"{node}: unreadable status from {url}: {error}") from error
    if not isinstance(document, dict):
        raise UnknownError(f"{node}: status from {url} is no JSON object: {document!r:.200}")
    return document
