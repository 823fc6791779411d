"""fsm-determinism: the state machine applies deterministically on every replica.

Black box: after a concurrent workload every replica, at the same applied index, reports
the same state digest.
"""

from __future__ import annotations

import random

import pytest

from pytest_consensus.cluster_ops import wait_for_same_applied_index
from pytest_consensus.contract import Client, Cluster
from pytest_consensus.history import RecordingClient
from pytest_consensus.settings import Settings
from pytest_consensus.workload import run_workload

pytestmark = pytest.mark.consensus_rule("fsm-determinism")

OPERATIONS_PER_CLIENT = 40
SHARED_KEYS = 8
WORKLOAD_TIME_LIMIT = 60.0
CONVERGENCE_TIMEOUT = 30.0


def mixed_operation(timeout: float) -> object:
    """put, cas and (half as often) delete over a few shared keys, so replicas contend."""

    def operate(client: Client, rng: random.Random, number: int) -> None:
        key = f"shared-{rng.randrange(SHARED_KEYS)}"
        choice = rng.random()
        value = f"{client.node}-{number}"
        if choice < 0.5:
            client.put(key, value, timeout=timeout)
        elif choice < 0.85:
            expected = client.get(key, timeout=timeout)
            client.cas(key, expected, value, timeout=timeout)
        else:
            client.delete(key, timeout=timeout)

    return operate


@pytest.mark.consensus_requires("digest", "cas", "delete", "strong")
def test_replica_digests_agree_after_concurrent_workload(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_settings: Settings,
    consensus_rng: random.Random,
) -> None:
    """After concurrent puts, cas and deletes on shared keys, all replicas report one digest."""
    result = run_workload(
        consensus_clients,
        mixed_operation(consensus_settings.operation_timeout),  # type: ignore[arg-type]
        seed=consensus_rng.randrange(2**32),
        operations_per_client=OPERATIONS_PER_CLIENT,
        time_limit=WORKLOAD_TIME_LIMIT,
    )
    assert not result.crashes, "workload workers crashed:\n" + "\n".join(result.crashes)
    assert result.completed > 0, f"no operation succeeded; errors by kind: {result.errors}"
    converged = wait_for_same_applied_index(consensus_cluster, timeout=CONVERGENCE_TIMEOUT)
    if not converged.digests_agree:
        pytest.fail(
            "replicas at the same applied index hold different states: "
            f"{converged.describe()}; the state machine is not deterministic",
            pytrace=False,
        )
