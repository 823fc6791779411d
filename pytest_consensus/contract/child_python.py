"""How the harness starts Python child processes (store nodes, a second state machine) so they
import exactly the modules this pytest process imported.

A child started as ``python -c ...`` or ``python -m ...`` puts its working directory first on
``sys.path``. Run from a source checkout with a non-editable install, that directory holds a
``pytest_consensus/`` folder without ``adapters/``, and the child fails to import what pytest
imported from site-packages. So a child gets this process's ``sys.path`` as its
``PYTHONPATH``, ``PYTHONSAFEPATH=1`` (no working directory on its path, Python 3.11+), and a
working directory of its own (for Python 3.10, where only that protects it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest_consensus


def import_path() -> list[str]:
    """This process's import path as absolute, existing, distinct folders and archives."""
    entries: list[str] = []
    for entry in sys.path:
        absolute = os.path.abspath(entry or os.curdir)
        if os.path.exists(absolute) and absolute not in entries:
            entries.append(absolute)
    return entries


def package_file() -> str:
    """Where this process imported pytest_consensus from; a child checks it got the same."""
    return str(Path(pytest_consensus.__file__).resolve())


def python_environment(**extra: str) -> dict[str, str]:
    """The environment of a Python child process: this one's, with the import path fixed."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(import_path()),
        "PYTHONSAFEPATH": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
