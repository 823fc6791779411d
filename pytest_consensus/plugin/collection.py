"""Collecting the installed conformance suite by its package name.

pytest imports test files by path, inserting their root directory into ``sys.path``; for
our suite that root could be the source checkout, whose top-level ``adapters`` and
``conformance`` folders would then shadow a user's packages of the same names. Importing
``pytest_consensus.conformance.<module>`` by name avoids touching ``sys.path`` at all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


class ConformanceModule(pytest.Module):
    """A conformance test module, imported as ``pytest_consensus.conformance.<name>``."""

    def _getobj(self) -> ModuleType:
        name = f"pytest_consensus.conformance.{self.path.stem}"
        try:
            return importlib.import_module(name)
        except Exception as error:
            raise self.CollectError(
                f"cannot import conformance module {name}: {error!r}"
            ) from error
