"""Kept so adapters written against 0.1 keep working: :class:`NodeProcess` now lives in
:mod:`pytest_consensus.contract` (import it from there). Nothing in the package imports this."""

from pytest_consensus.contract.process import NodeProcess

__all__ = ["NodeProcess"]
