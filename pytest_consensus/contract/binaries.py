"""Finding a store's binary: a binary the user named must be the one certified."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_consensus.contract.errors import HarnessError


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def named_binary(
    source: str, candidate: str | None, advice: str, error: type[HarnessError]
) -> Path | None:
    """The binary named by ``source`` (an option or environment variable) as ``candidate``,
    or None when it names none. A name that is no executable file raises ``error``, saying
    which and ``advice``: falling back to another binary would certify what the user did not
    ask for."""
    if not candidate:
        return None
    path = Path(candidate)
    if is_executable(path):
        return path
    problem = "does not exist" if not path.exists() else "is not an executable file"
    raise error(f"{source}={candidate}: {problem}. {advice}")
