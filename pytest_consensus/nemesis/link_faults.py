"""Link faults: what each kind does to which directed links, through the link proxies
(:mod:`pytest_consensus.hosts.links`). The nemesis applies the table a fault makes and
clears it at the heal; the values are here so docs/faults.md can cite one place.

Delays are per direction (a round trip across a slowed pair pays two), chosen to sit
around a store's heartbeat interval, not above its election timeout: the point is a
slow network, in which leaders keep leading, leases are measured against late replies, and
clients time out and retry, not a partition by another name.
"""

from __future__ import annotations

import random

from pytest_consensus.hosts.firewall import CLIENT
from pytest_consensus.hosts.links import Link, LinkTable

#: Every link of one pair both ways, 100 +- 50 ms.
SLOW = Link(delay=0.1, jitter=0.05)
#: One direction only, 300 +- 100 ms: replies (or requests) that come back late.
ONE_WAY_SLOW = Link(delay=0.3, jitter=0.1)
#: One direction's bytes dropped on open connections (reset once the link passes again).
ONE_WAY_BLACKHOLE = Link(mode="blackhole")
#: A pair that is up 0.3 s and blackholed 0.3 s, and so on.
FLAPPING = Link(mode="flap", period=0.3)
#: TCP's view of 30 % packet loss: chunks delayed by a retransmission (0.2-0.4 s).
LOSSY = Link(loss=0.3)

LINK_FAULTS = (
    "slow-link",
    "slow-node",
    "slow-leader",
    "one-way-slow",
    "one-way-blackhole",
    "flapping-link",
    "slow-node-and-kill",
)

#: Link faults on one pair of nodes: the pair is the leader and a follower, found when the
#: fault starts (between two followers, a Raft store sends almost nothing to slow).
LEADER_LINK_FAULTS = ("slow-link", "flapping-link", "one-way-slow", "one-way-blackhole")
#: Every link of the leader (found when the fault starts) slowed: every write crosses one.
#: The partition-retries schedules always hold one, so a client's retries meet a slow network.
SLOW_LEADER = "slow-leader"


def leader_link_targets(
    kind: str, leader: str, followers: list[str], rng: random.Random
) -> tuple[tuple[str, ...], ...]:
    """The directed links of a pair fault: the leader and a follower drawn by ``rng``, both
    ways, or (one-way kinds) one way drawn by ``rng`` too: towards the leader (its
    acknowledgements late or lost) or from it (its heartbeats)."""
    follower = rng.choice(followers)
    if kind in ("slow-link", "flapping-link"):
        return ((leader, follower), (follower, leader))
    if kind in ("one-way-slow", "one-way-blackhole"):
        return ((follower, leader),) if rng.random() < 0.5 else ((leader, follower),)
    raise ValueError(f"{kind!r} is not a link fault on a pair")


def link_targets(kind: str, nodes: list[str], rng: random.Random) -> tuple[tuple[str, ...], ...]:
    """A node fault's targets, drawn from the seed: the node slowed (and for
    slow-node-and-kill, then the node killed)."""
    if kind == "slow-node":
        return ((rng.choice(nodes),),)
    if kind == "slow-node-and-kill":
        slow, killed = rng.sample(nodes, 2)
        return ((slow,), (killed,))
    raise ValueError(f"{kind!r} is not a link fault")


def node_links(node: str, nodes: list[str], link: Link) -> LinkTable:
    """Every link into and out of ``node``, the client's included."""
    table: dict[tuple[str, str], Link] = {}
    for other in [*nodes, CLIENT]:
        if other != node:
            table[(node, other)] = table[(other, node)] = link
    return table


def link_table(kind: str, targets: tuple[tuple[str, ...], ...], nodes: list[str]) -> LinkTable:
    """The links a fault of ``kind`` on ``targets`` sets."""
    if kind == "slow-link":
        return {(a, b): SLOW for a, b in targets}
    if kind == "flapping-link":
        return {(a, b): FLAPPING for a, b in targets}
    if kind == "one-way-slow":
        return {(a, b): ONE_WAY_SLOW for a, b in targets}
    if kind == "one-way-blackhole":
        return {(a, b): ONE_WAY_BLACKHOLE for a, b in targets}
    if kind in ("slow-node", SLOW_LEADER, "slow-node-and-kill", "delay"):
        return node_links(targets[0][0], nodes, SLOW)
    if kind == "loss":
        return node_links(targets[0][0], nodes, LOSSY)
    raise ValueError(f"{kind!r} is not a link fault")
