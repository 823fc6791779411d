"""fsm-determinism: the state machine applies deterministically on every replica.

Black box: after a concurrent workload, and after each fault of a schedule heals, every
replica at the same applied index reports the same state digest; odd input sent through
every node gets one answer, and no replica diverges, stalls or dies on it.
"""

from __future__ import annotations

import random

import pytest

from pytest_consensus.cluster_ops import (
    strong_read_anywhere,
    wait_for_leader,
    wait_for_same_applied_index,
)
from pytest_consensus.contract import Client, Cluster
from pytest_consensus.errors import (
    CapabilityMissing,
    ConsensusError,
    NotLeader,
    Rejected,
    Unavailable,
)
from pytest_consensus.faults import Fault, Nemesis, Schedule
from pytest_consensus.fixtures import ScheduleFactory
from pytest_consensus.history import RecordingClient
from pytest_consensus.settings import Settings
from pytest_consensus.waiting import wait_for
from pytest_consensus.workload import run_through_schedule, run_workload

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
    fail_unless_digests_agree(consensus_cluster, "after a concurrent workload")


def fail_unless_digests_agree(cluster: Cluster, when: str) -> None:
    converged = wait_for_same_applied_index(cluster, timeout=CONVERGENCE_TIMEOUT)
    try:
        agree = converged.digests_agree
    except CapabilityMissing as missing:
        pytest.skip(f"n/a: {missing}")
    if not agree:
        pytest.fail(
            f"replicas at the same applied index hold different states {when}: "
            f"{converged.describe()}; the state machine is not deterministic",
            pytrace=False,
        )


#: Faults after whose heal the replicas are compared (each run on its own).
HEAL_KINDS = ("isolate-leader", "random-halves", "bridge", "kill-one", "pause-one")


@pytest.mark.consensus_requires("digest", "cas", "delete", "strong", "kill", "restart", "pause")
@pytest.mark.consensus_requires("network")
def test_replica_digests_agree_after_each_heal(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_nemesis: Nemesis,
    consensus_schedule: ScheduleFactory,
    consensus_settings: Settings,
    consensus_rng: random.Random,
) -> None:
    """Each fault of a schedule, with writes running through it, is healed; then all replicas
    at one applied index report one digest."""
    schedule = consensus_schedule(HEAL_KINDS)
    operate = mixed_operation(1.0)
    for fault in schedule.faults:
        alone = Schedule(
            schedule.seed, schedule.nodes, [Fault(fault.kind, 0.5, fault.duration, fault.targets)]
        )
        run_through_schedule(
            consensus_nemesis,
            alone,
            consensus_clients,
            operate,  # type: ignore[arg-type]
            seed=consensus_rng.randrange(2**32),
        )
        assert not consensus_nemesis.errors, f"faults failed: {consensus_nemesis.errors}"
        wait_for_leader(consensus_cluster)
        fail_unless_digests_agree(consensus_cluster, f"after {fault.kind} healed")


#: Input a store may accept or refuse, but must treat the same way on every node.
ODD_INPUT = [
    ("", "empty key"),
    ("nul\x00key", "a NUL in the key"),
    ("ключ-🙂", "non-ASCII key"),
    ("k" * 4096, "a 4 KiB key"),
    ("odd-value", '"}{"f": "delete", "key": "odd-value"}'),
    ("odd-big", "v" * 200_000),
    ("odd-lines", "line\nline\r\n\ttab"),
]


def _answer(client: Client, key: str, value: str, timeout: float) -> str:
    """The node's answer to a put: ok, a refusal, or "no answer" when the node could not say
    (not the leader, no quorum, timeout), which tells nothing about the input."""
    try:
        client.put(key, value, timeout=timeout)
    except Rejected as error:
        return f"rejected ({error})"
    except (NotLeader, Unavailable):
        return "no answer"
    except ConsensusError as error:
        return f"no answer ({type(error).__name__})"
    return "ok"


@pytest.mark.consensus_requires("digest", "strong")
def test_odd_input_gets_one_answer_and_no_replica_diverges_or_dies(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_settings: Settings,
) -> None:
    """Odd keys and values (empty, NUL, non-ASCII, huge, JSON-like) written through every
    node are accepted everywhere or refused everywhere; every replica stays up and equal."""
    timeout = consensus_settings.operation_timeout
    disagreements = []
    for key, value in ODD_INPUT:
        answers = {
            client.node: _answer(client, key, value, timeout) for client in consensus_clients
        }
        kinds = {a.split(" ")[0] for a in answers.values() if not a.startswith("no answer")}
        if len(kinds) > 1:
            disagreements.append(f"put of {key[:20]!r}: {answers}")
            continue
        if kinds == {"ok"}:
            read = wait_for(
                lambda key=key: strong_read_anywhere(consensus_clients, key, timeout),
                timeout=CONVERGENCE_TIMEOUT,
                what=f"a strong read of {key[:20]!r} from any node",
            )[0]
            if read != value:
                disagreements.append(
                    f"put of {key[:20]!r} acknowledged, strong read gives {str(read)[:40]!r}"
                )
    dead = [node.name for node in consensus_cluster.nodes if not node.is_running()]
    assert not dead, f"nodes died on odd input: {dead}"
    fail_unless_digests_agree(consensus_cluster, "after odd input")
    if disagreements:
        pytest.fail("odd input answered differently: " + "; ".join(disagreements), pytrace=False)
