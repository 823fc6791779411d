"""Link faults through the nemesis on a real PySyncObj cluster behind link proxies: each kind
slows, holds or drops bytes on the links it names (the proxies' figures show it happened),
writes keep being acknowledged, and the cluster serves them after the heal."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.clients.history import NEMESIS, History
from pytest_consensus.contract.errors import ConsensusError, HarnessError
from pytest_consensus.contract.waiting import wait_for
from pytest_consensus.hosts.firewall import CLIENT, Firewall
from pytest_consensus.hosts.links import Link, LinkProxies
from pytest_consensus.hosts.netns import NamespaceNetwork
from pytest_consensus.nemesis.faults import Fault, Nemesis, static_targets
from pytest_consensus.nemesis.link_faults import (
    LEADER_LINK_FAULTS,
    LINK_FAULTS,
    SLOW,
    SLOW_LEADER,
    leader_link_targets,
    link_table,
    node_links,
)

NODES = ["n1", "n2", "n3"]


def test_each_link_fault_names_its_links() -> None:
    rng = random.Random(3)
    for kind in LINK_FAULTS:
        if kind == SLOW_LEADER:
            assert static_targets(kind, NODES, rng) == ()
            targets = (("n1",),)
        elif kind in LEADER_LINK_FAULTS:
            assert static_targets(kind, NODES, rng) == ()  # resolved when the fault starts
            targets = leader_link_targets(kind, "n1", ["n2", "n3"], rng)
            assert all("n1" in link for link in targets), kind
        else:
            targets = static_targets(kind, NODES, rng)
        table = link_table(kind, targets, NODES)
        assert table, kind
        assert all(a != b for a, b in table), kind
    slow = node_links("n2", NODES, SLOW)
    assert set(slow) == {
        ("n2", "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", "n2"), ("n2", CLIENT), (CLIENT, "n2")
    }  # fmt: skip
    assert link_table("one-way-blackhole", (("n1", "n3"),), NODES) == {
        ("n1", "n3"): Link(mode="blackhole")
    }
    with pytest.raises(HarnessError, match="unknown link mode 'cut'"):
        Link(mode="cut")


def test_a_link_fault_without_proxies_is_a_missing_capability() -> None:
    from pytest_consensus.contract.errors import CapabilityMissing

    nemesis = Nemesis(object(), History(), None)  # type: ignore[arg-type]
    with pytest.raises(CapabilityMissing, match="slow-link needs link proxies"):
        nemesis.apply(Fault("slow-link", 0, 0, (("n1", "n2"), ("n2", "n1"))))


def test_every_link_fault_happens_and_the_cluster_serves_after_each_heal(
    network: NamespaceNetwork,
) -> None:
    allocation = network.allocate(3)
    proxies = LinkProxies(network, allocation).start()
    history = History()
    try:
        with PySyncObjAdapter().start_cluster(allocation.hosts) as cluster:
            wait_for_leader(cluster)
            nemesis = Nemesis(cluster, history, Firewall(network, allocation), links=proxies)
            for number, kind in enumerate(LINK_FAULTS):
                leader, _ = wait_for_leader(cluster)
                client = cluster.client(leader)
                # Pair faults take the leader and a follower; the slowed node is the leader
                # (the one every write crosses), the killed one a follower.
                targets = (
                    ((leader.name,), (next(n for n in NODES if n != leader.name),))
                    if kind in ("slow-node", "slow-node-and-kill")  # slow-leader finds it
                    else ()
                )
                fault = nemesis.apply(Fault(kind, float(number), 0, targets[: _arity(kind)]))
                writes = itertools.count()
                until = time.monotonic() + 1.0  # traffic for the fault to act on, for 1 s
                while time.monotonic() < until:
                    try:
                        client.put(f"{kind}-{next(writes)}", "v", timeout=1.0)
                    except ConsensusError:
                        pass
                nemesis.heal(fault)
                key = f"after-{number}"
                wait_for(
                    lambda key=key: _put(cluster, key),  # type: ignore[misc]
                    timeout=30,
                    what=f"a write acknowledged after {kind} healed",
                    ignore=(ConsensusError,),
                )
    finally:
        proxies.close()
        network.release(allocation)
    assert [effect.kind for effect in nemesis.link_effects] == list(LINK_FAULTS)
    for effect in nemesis.link_effects:
        assert effect.happened, effect
    slow = next(e for e in nemesis.link_effects if e.kind == "slow-node")
    assert slow.delayed > 10 and slow.dropped_bytes == 0
    blackholed = next(e for e in nemesis.link_effects if e.kind == "one-way-blackhole")
    assert blackholed.dropped_bytes > 0
    assert [e.f for e in history.events if e.process == NEMESIS][:2] == [
        "start-slow-link",
        "heal-slow-link",
    ]


def _arity(kind: str) -> int:
    return 2 if kind == "slow-node-and-kill" else 1


def _put(cluster: object, key: str) -> bool:
    leader, _ = wait_for_leader(cluster)  # type: ignore[arg-type]
    cluster.client(leader).put(key, "v", timeout=2.0)  # type: ignore[attr-defined]
    return True
