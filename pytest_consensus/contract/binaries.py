"""Finding a store's binary: a binary the user named must be the one certified."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pytest_consensus.contract.errors import HarnessError


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def named_binary(
    named: Sequence[tuple[str, str | None]], advice: str, error: type[HarnessError]
) -> tuple[Path, str] | None:
    """The first binary ``named`` names, as (path, the source that named it), or None when
    none names one. ``named`` lists (source, candidate) pairs in order of precedence, a
    source being an option or environment variable. A name that is no executable file
    raises ``error``, saying which and ``advice``: falling back to another binary would
    certify what the user did not ask for."""
    for source, candidate in named:
        if not candidate:
            continue
        path = Path(candidate)
        if is_executable(path):
            return path, source
        problem = "does not exist" if not path.exists() else "is not an executable file"
        raise error(f"{source}={candidate}: {problem}. {advice}")
    return None
