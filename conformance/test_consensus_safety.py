"""consensus-safety: acknowledged writes survive crashes.

Here: SIGKILL of one node (the leader, or a follower) and its restart from its data
directory loses no acknowledged write, and the restarted replica catches up.
"""

from __future__ import annotations

import random

import pytest

from pytest_consensus.cluster_ops import wait_for_leader, wait_for_same_applied_index
from pytest_consensus.contract import Cluster, Node, ReadLevel
from pytest_consensus.errors import ConsensusError
from pytest_consensus.history import RecordingClient
from pytest_consensus.settings import Settings
from pytest_consensus.waiting import wait_for

pytestmark = pytest.mark.consensus_rule("consensus-safety")

WRITES_BEFORE_CRASH = 20
WRITES_WHILE_DOWN = 10
CATCH_UP_TIMEOUT = 30.0


def write_acknowledged(
    clients: list[RecordingClient], prefix: str, count: int, timeout: float
) -> dict[str, str]:
    """Write ``count`` keys round-robin over the clients; return those acknowledged."""
    acknowledged = {}
    for number in range(count):
        client = clients[number % len(clients)]
        key, value = f"{prefix}-{number}", f"{prefix}-value-{number}"
        try:
            client.put(key, value, timeout=timeout)
        except ConsensusError:
            continue
        acknowledged[key] = value
    return acknowledged


def pick_victim(cluster: Cluster, which: str, leader: Node, rng_choice: int) -> Node:
    if which == "leader":
        return leader
    followers = [node for node in cluster.nodes if node is not leader]
    return followers[rng_choice % len(followers)]


@pytest.mark.consensus_requires("kill", "restart", "leader", "stale")
@pytest.mark.parametrize("which", ["leader", "follower"])
def test_acknowledged_writes_survive_kill_and_restart_of_one_node(
    which: str,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_settings: Settings,
    consensus_rng: random.Random,
) -> None:
    """Every write acknowledged before and during a node's SIGKILL is readable after restart."""
    timeout = consensus_settings.operation_timeout
    leader, _ = wait_for_leader(consensus_cluster)
    acknowledged = write_acknowledged(consensus_clients, "before", WRITES_BEFORE_CRASH, timeout)
    assert acknowledged, "no write was acknowledged before the crash; cannot test durability"

    victim = pick_victim(consensus_cluster, which, leader, consensus_rng.randrange(99))
    consensus_clients[0].history.nemesis("kill", [victim.name])
    victim.kill()
    survivors = [n for n in consensus_cluster.nodes if n is not victim]
    wait_for_leader(consensus_cluster, among=survivors)
    surviving_clients = [c for c in consensus_clients if c.node != victim.name]
    acknowledged |= write_acknowledged(surviving_clients, "during", WRITES_WHILE_DOWN, timeout)

    consensus_clients[0].history.nemesis("restart", [victim.name])
    victim.restart()
    wait_for_leader(consensus_cluster)

    def strong_read(key: str) -> str | None:
        def attempt() -> tuple[str | None] | None:
            for client in consensus_clients:
                try:
                    return (client.get(key, level=ReadLevel.STRONG, timeout=timeout),)
                except ConsensusError:
                    continue
            return None

        return wait_for(attempt, timeout=CATCH_UP_TIMEOUT, what=f"a strong read of {key}")[0]

    lost = {
        key: (value, read)
        for key, value in acknowledged.items()
        if (read := strong_read(key)) != value
    }
    if lost:
        pytest.fail(
            f"{len(lost)} of {len(acknowledged)} acknowledged writes lost after SIGKILL and "
            f"restart of {which} {victim.name}: "
            + ", ".join(
                f"{k} (acknowledged {v!r}, read {r!r})" for k, (v, r) in sorted(lost.items())
            ),
            pytrace=False,
        )
    wait_for_same_applied_index(consensus_cluster, timeout=CATCH_UP_TIMEOUT)
    victim_client = next(c for c in consensus_clients if c.node == victim.name)
    missing = [
        key
        for key, value in acknowledged.items()
        if victim_client.get(key, level=ReadLevel.STALE, timeout=timeout) != value
    ]
    if missing:
        pytest.fail(
            f"restarted {victim.name} has caught up to the cluster's applied index but its "
            f"replica lacks {len(missing)} acknowledged writes: {', '.join(sorted(missing))}",
            pytrace=False,
        )
