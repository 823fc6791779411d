"""leader-gating: only the leader accepts writes.

A write sent to a follower is either forwarded to the leader and committed, or refused with
a not-leader error; it is never applied by the follower alone.
"""

from __future__ import annotations

import functools

import pytest

from pytest_consensus.clients.cluster_ops import majority, strong_read_anywhere, wait_for_leader
from pytest_consensus.clients.history import RecordingClient
from pytest_consensus.contract import Cluster, ReadLevel
from pytest_consensus.contract.errors import ConsensusError, NotLeader
from pytest_consensus.contract.waiting import WaitTimeout, wait_for
from pytest_consensus.nemesis.faults import Fault, Nemesis
from pytest_consensus.plugin.settings import Settings

pytestmark = pytest.mark.consensus_rule("leader-gating")

#: Enough writes that a follower which applies even 1 write in 100 locally is caught every run.
WRITES_PER_FOLLOWER = 200
#: How many unreplicated writes a failure message lists (it says how many there were).
LISTED = 10
#: How long an acknowledged write may take to reach a majority's replicas.
REPLICATION_TIMEOUT = 15.0


def nodes_holding(
    clients: list[RecordingClient], key: str, value: str, timeout: float
) -> list[str]:
    """Names of the nodes whose local (stale) read of ``key`` returns ``value`` now."""
    holding = []
    for client in clients:
        try:
            if client.get(key, level=ReadLevel.STALE, timeout=timeout) == value:
                holding.append(client.node)
        except ConsensusError:
            continue
    return holding


@pytest.mark.consensus_requires("leader", "strong", "stale")
def test_writes_to_followers_are_committed_or_refused(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_settings: Settings,
) -> None:
    """A write sent to a follower is forwarded and committed (then on a majority) or refused.
    Writes that get no leader or no answer (a spontaneous election) are not judged."""
    timeout = consensus_settings.operation_timeout
    leader, _ = wait_for_leader(consensus_cluster)
    followers = [c for c in consensus_clients if c.node != leader.name]
    acknowledged: list[tuple[str, str, str]] = []
    problems: list[str] = []
    refused = 0
    unanswered: dict[str, int] = {}
    for client in followers:
        for number in range(WRITES_PER_FOLLOWER):
            key, value = f"gating-{client.node}-{number}", f"v{number}-via-{client.node}"
            try:
                client.put(key, value, timeout=timeout)
            except NotLeader as refusal:
                hint = refusal.leader_hint
                if hint is not None and hint not in {n.name for n in consensus_cluster.nodes}:
                    problems.append(
                        f"{client.node} refused {key} with a leader hint {hint!r} "
                        "that names no node of the cluster"
                    )
                refused += 1
                continue
            except ConsensusError as error:
                # No leader for a moment (an election on a loaded machine), or no answer in
                # time: the write was not acknowledged, so there is nothing to judge in it.
                unanswered[error.kind] = unanswered.get(error.kind, 0) + 1
                continue
            acknowledged.append((client.node, key, value))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    if not acknowledged and not refused:
        pytest.fail(
            f"no write sent to a follower was committed or refused as not-leader "
            f"({', '.join(f'{n} {kind}' for kind, n in unanswered.items())}): in a healthy "
            "cluster a follower must forward writes to the leader or refuse them",
            pytrace=False,
        )

    needed = majority(len(consensus_cluster.nodes))

    def unreplicated() -> list[tuple[str, str, str, list[str]]]:
        """Acknowledged writes not (yet) on a majority, with the nodes that hold them."""
        short = []
        for follower, key, value in acknowledged:
            holding = nodes_holding(consensus_clients, key, value, timeout)
            if len(holding) < needed:
                short.append((follower, key, value, holding))
        return short

    try:
        wait_for(
            lambda: not unreplicated(),
            timeout=REPLICATION_TIMEOUT,
            what="every acknowledged write on a majority",
            interval=0.2,
        )
    except WaitTimeout:
        pass
    short = unreplicated()
    if short:
        pytest.fail(
            f"{len(short)} of {len(acknowledged)} writes acknowledged by followers are not on a "
            f"majority ({needed} of {len(consensus_cluster.nodes)}) after "
            f"{REPLICATION_TIMEOUT}s, so they were never committed: "
            + "; ".join(
                f"{key}={value!r} via {follower} is on {holding or 'no node'}"
                for follower, key, value, holding in short[:LISTED]
            )
            + (f" (and {len(short) - LISTED} more)" if len(short) > LISTED else "")
            + ". A follower must forward writes to the leader or refuse them as not-leader, "
            "never apply them locally.",
            pytrace=False,
        )
    leader_client = next(c for c in consensus_clients if c.node == leader.name)
    for follower, key, value in acknowledged:
        read = leader_client.get(key, level=ReadLevel.STRONG, timeout=timeout)
        if read != value:
            pytest.fail(
                f"write {key}={value!r} acknowledged by follower {follower} reads back as "
                f"{read!r} through a strong read on the leader {leader.name}: acknowledged "
                "without commit",
                pytrace=False,
            )


WRITES_TO_DEPOSED_LEADER = 3
DEPOSED_WRITE_TIMEOUT = 1.5


@pytest.mark.consensus_requires("leader", "strong", "network")
def test_a_deposed_leader_in_a_minority_acknowledges_no_write(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
) -> None:
    """A leader cut off in a minority acknowledges no write; the majority elects a new leader
    whose acknowledged writes all survive the heal."""
    timeout = consensus_settings.operation_timeout
    old_leader, old_status = wait_for_leader(consensus_cluster)
    fault = consensus_nemesis.apply(Fault("isolate-leader", 0.0, 0.0))
    majority_side = [n for n in consensus_cluster.nodes if n is not old_leader]
    new_leader, new_status = wait_for_leader(consensus_cluster, among=majority_side)
    client_of = {c.node: c for c in consensus_clients}

    acknowledged_by_deposed = []
    for number in range(WRITES_TO_DEPOSED_LEADER):
        key = f"deposed-{number}"
        try:
            client_of[old_leader.name].put(key, "from-the-minority", timeout=DEPOSED_WRITE_TIMEOUT)
        except ConsensusError:
            continue
        acknowledged_by_deposed.append(key)
    acknowledged = {}
    for number in range(WRITES_TO_DEPOSED_LEADER):
        key, value = f"majority-{number}", f"v{number}"
        try:
            client_of[new_leader.name].put(key, value, timeout=timeout)
        except ConsensusError:
            continue
        acknowledged[key] = value
    consensus_nemesis.heal(fault)
    wait_for_leader(consensus_cluster)

    if acknowledged_by_deposed:
        pytest.fail(
            f"{old_leader.name}, leader of term {old_status.term}, cut off in a minority while "
            f"{new_leader.name} led term {new_status.term}, acknowledged "
            f"{len(acknowledged_by_deposed)} writes: {', '.join(acknowledged_by_deposed)}; "
            "a deposed leader must not acknowledge writes it cannot commit",
            pytrace=False,
        )
    assert acknowledged, "the majority side acknowledged no write; cannot check survival"
    for key, value in acknowledged.items():
        read = wait_for(
            functools.partial(strong_read_anywhere, consensus_clients, key, timeout),
            timeout=REPLICATION_TIMEOUT,
            what=f"a strong read of {key}",
        )[0]
        if read != value:
            pytest.fail(
                f"{key}={value!r} acknowledged by the majority's leader "
                f"{new_leader.name} reads {read!r} after the heal",
                pytrace=False,
            )
