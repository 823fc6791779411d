"""Kept so adapters written against 0.1 keep working: the process-cluster helpers now live in
:mod:`pytest_consensus.contract` (import them from there). Nothing in the package imports this."""

from pytest_consensus.contract.process_cluster import (
    STARTUP_TIMEOUT,
    ProcessCluster,
    ProcessNode,
    wait_until_serving,
)

__all__ = ["STARTUP_TIMEOUT", "ProcessCluster", "ProcessNode", "wait_until_serving"]
