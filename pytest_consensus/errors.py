"""Kept so adapters written against 0.1 keep working: the error taxonomy now lives in
:mod:`pytest_consensus.contract` (import it from there). Nothing in the package imports this."""

from pytest_consensus.contract.errors import (
    AdapterLoadError,
    AdapterNotFound,
    CapabilityMissing,
    ConnectionLost,
    ConsensusError,
    DefiniteError,
    HarnessError,
    IndefiniteError,
    NoAnswer,
    NodeStartError,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
    harness_problem,
)

__all__ = [
    "AdapterLoadError",
    "AdapterNotFound",
    "CapabilityMissing",
    "ConnectionLost",
    "ConsensusError",
    "DefiniteError",
    "HarnessError",
    "IndefiniteError",
    "NoAnswer",
    "NodeStartError",
    "NotLeader",
    "Rejected",
    "Timeout",
    "Unavailable",
    "UnknownError",
    "harness_problem",
]
