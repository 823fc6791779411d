"""fsm-determinism: the state machine applies deterministically on every replica.

Black box: after a concurrent workload, and after each fault of a schedule heals, every
replica at the same applied index reports the same state digest; odd input sent through
every node gets one answer, and no replica diverges, stalls or dies on it.
"""

from __future__ import annotations

import functools
import random
import time

import pytest

from pytest_consensus.clients.cluster_ops import (
    Convergence,
    ReplicasStalled,
    strong_read_anywhere,
    wait_for_leader,
    wait_for_same_applied_index,
)
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.clients.retry import RetryingClient, RetryPolicy
from pytest_consensus.contract import Adapter, Client, Cluster, ReadLevel
from pytest_consensus.contract.errors import (
    CapabilityMissing,
    ConsensusError,
    NotLeader,
    Rejected,
    Unavailable,
)
from pytest_consensus.contract.waiting import wait_for
from pytest_consensus.nemesis.faults import Fault, Nemesis, Schedule, cut
from pytest_consensus.nemesis.workload import run_through_schedule, run_workload
from pytest_consensus.plugin.fixtures import ScheduleFactory
from pytest_consensus.plugin.settings import Settings

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


def converged_or_fail(
    cluster: Cluster, when: str, timeout: float = CONVERGENCE_TIMEOUT
) -> Convergence:
    """Every replica at one applied index; a replica that stops applying fails the test,
    named with where it stopped."""
    try:
        return wait_for_same_applied_index(cluster, timeout=timeout)
    except ReplicasStalled as stalled:
        pytest.fail(f"a replica stopped applying {when}: {stalled}", pytrace=False)


def fail_unless_digests_agree(
    cluster: Cluster, when: str, converged: Convergence | None = None
) -> None:
    """Replicas at one applied index (``converged``, or waited for now) hold one state."""
    if converged is None:
        converged = converged_or_fail(cluster, when)
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
        consensus_nemesis.check()
        wait_for_leader(consensus_cluster)
        applied = consensus_nemesis.applied[-1]
        restarted = (
            f" ({', '.join(applied.targets[0])} restarted from their own data)"
            if applied.kind.startswith("kill")
            else ""
        )
        fail_unless_digests_agree(
            consensus_cluster,
            f"after {applied.kind} healed{restarted}",
        )


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
                functools.partial(strong_read_anywhere, consensus_clients, key, timeout),
                timeout=CONVERGENCE_TIMEOUT,
                what=f"a strong read of {key[:20]!r} from any node",
            )[0]
            if read != value:
                disagreements.append(
                    f"put of {key[:20]!r} acknowledged, strong read gives {str(read)[:40]!r}"
                )
        entry = f"put of key {key[:20]!r} with {value[:20]!r} ({len(value)} characters)"
        dead = [node.name for node in consensus_cluster.nodes if not node.is_running()]
        assert not dead, f"nodes died after the {entry}: {dead}"
        fail_unless_digests_agree(consensus_cluster, f"after the {entry}")
    if disagreements:
        pytest.fail("odd input answered differently: " + "; ".join(disagreements), pytrace=False)


LAGGING_KEYS = 30
#: Writes the majority makes while a follower is away, at least; three snapshot intervals
#: when the adapter says how often its nodes snapshot, so the leader has compacted past what
#: the follower holds and must send it a snapshot.
MIN_WRITES_WHILE_AWAY = 150
CATCH_UP_TIMEOUT = 60.0


#: A partition must outlast the store's connection timeouts (PySyncObj's: 3.5 s), or the
#: leader's connection to the follower survives it and delivers the missed entries from its
#: buffers, not a snapshot.
MIN_PARTITION_SECONDS = 5.5


@pytest.mark.consensus_requires("digest", "delete", "strong", "stale", "leader")
@pytest.mark.parametrize(
    "kept_away_by",
    [
        pytest.param("kill", marks=pytest.mark.consensus_requires("kill", "restart")),
        pytest.param("partition", marks=pytest.mark.consensus_requires("network")),
    ],
)
def test_a_follower_kept_away_catches_up_to_the_majoritys_state_through_a_snapshot(
    kept_away_by: str,
    consensus_adapter: Adapter,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_rng: random.Random,
) -> None:
    """A follower is killed (or cut off) while the majority overwrites every key many times
    past the snapshot interval and deletes some; once back it reaches the majority's
    applied index with the same digest, and its stale reads give every key's final value (a
    deleted key reads absent). Catches a restore that merges into the old state instead of
    replacing it: the deleted keys would survive on the follower."""
    leader, _ = wait_for_leader(consensus_cluster)
    followers = [node for node in consensus_cluster.nodes if node is not leader]
    away = followers[consensus_rng.randrange(len(followers))]
    majority_side = {c.node: c.inner for c in consensus_clients if c.node != away.name}
    writer = RetryingClient(
        majority_side,
        consensus_history,
        RetryPolicy(deadline=30.0),
        consensus_rng,
        first_node=leader.name,
    )
    keys = [f"lag-{number}" for number in range(LAGGING_KEYS)]
    for key in keys:
        writer.put(key, f"{key}-before")
    converged_or_fail(consensus_cluster, "after the first writes", CATCH_UP_TIMEOUT)

    deleted, kept = keys[::3], [key for key in keys if key not in keys[::3]]
    snapshot_entries = consensus_adapter.snapshot_entries
    writes = max(MIN_WRITES_WHILE_AWAY, 3 * (snapshot_entries or 0))
    others = [node.name for node in consensus_cluster.nodes if node is not away]
    fault = consensus_nemesis.apply(
        Fault("kill-one", 0, 0, ((away.name,),))
        if kept_away_by == "kill"
        else Fault("random-halves", 0, 0, cut([away.name], others))
    )
    away_since = time.monotonic()
    try:
        # Deletes first, then the overwrites: the leader's next snapshots then cover the
        # deletes, so a follower that restores one must drop those keys itself.
        expected: dict[str, str | None] = {key: None for key in deleted}
        for key in deleted:
            writer.delete(key)
        for number in range(writes):
            key = kept[number % len(kept)]
            value = f"{key}-{number}"
            expected[key] = value
            writer.put(key, value)
        if kept_away_by == "partition":
            time.sleep(max(0.0, away_since + MIN_PARTITION_SECONDS - time.monotonic()))
    finally:
        consensus_nemesis.heal(fault)

    converged = converged_or_fail(
        consensus_cluster, f"after {away.name} came back ({kept_away_by})", CATCH_UP_TIMEOUT
    )
    away_status = next(s for s in converged.statuses if s.node == away.name)
    cause = (
        f"{away.name} was kept away ({kept_away_by}) while the majority applied "
        f"{writes + len(deleted)} "
        + (
            f"entries, more than three snapshot intervals ({snapshot_entries})"
            if snapshot_entries
            else "entries"
        )
        + (
            f", and restored {away_status.restores} snapshot(s) since it started"
            if away_status.restores
            else ""
        )
        + ": a snapshot install whose restore merges into the old state instead of replacing "
        "it keeps keys the majority deleted"
    )
    away_client = next(c for c in consensus_clients if c.node == away.name)
    wrong = {
        key: (value, read)
        for key, value in expected.items()
        if (read := away_client.get(key, level=ReadLevel.STALE, timeout=CONVERGENCE_TIMEOUT))
        != value
    }
    if wrong:
        pytest.fail(
            f"{away.name} caught up to applied index {away_status.applied_index} but "
            f"{len(wrong)} of {len(expected)} keys read differently there: "
            + ", ".join(
                f"{key} reads {read!r}, the majority has {value!r}"
                for key, (value, read) in sorted(wrong.items())[:10]
            )
            + f". {cause}",
            pytrace=False,
        )
    fail_unless_digests_agree(
        consensus_cluster, f"after {away.name} caught up ({cause})", converged
    )
    if away_status.restores:
        print(f"{away.name} restored {away_status.restores} snapshot(s) while catching up")
