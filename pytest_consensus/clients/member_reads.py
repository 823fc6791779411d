"""Every member's own copy of the acknowledged writes, read on that member.

A strong read is answered by whichever member serves it, so a write lost on one member is
never seen through another. After the cluster has settled (every member at one applied
index), each member is asked for each acknowledged key at the ``stale`` level, which a
member answers from its own state; a store without stale reads is asked for strong reads
through each member (weaker: a member may forward them), and the result says so. A store
with ``scan`` is asked once per member for every key under the writes' prefix instead.
Without it, a member's keys are read by several clients of that member side by side: tens
of thousands of keys after a crash loop took a minute one read at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pytest_consensus.clients.cluster_ops import ReplicasStalled, wait_for_same_applied_index
from pytest_consensus.contract import Client, Cluster, Node, ReadLevel
from pytest_consensus.contract.errors import ConsensusError
from pytest_consensus.contract.waiting import wait_for

#: Seconds to wait for every member to reach one applied index before reading.
SETTLE_TIMEOUT = 30.0
#: Seconds with every member answering, at different indexes, and none moving, after which
#: the wait ends early: a member that stopped that long behind has stopped for good.
STALLED_AFTER = 10.0
#: Seconds a member may take to answer reads again after the settle (a slow restart).
READ_TIMEOUT = 30.0
#: Seconds a member has for one scan (a thorough crash loop leaves a quarter of a million
#: keys; etcd pages them, NATS batches them, about 10 thousand a second).
SCAN_TIMEOUT = 120.0
#: Clients reading one member's keys side by side when it is read key by key, and the
#: fewest keys each is given (a few keys are read by one client).
READERS_PER_MEMBER = 8
KEYS_PER_READER = 250


@dataclass(frozen=True)
class Acknowledged:
    """A write whose success the client saw: its value and when (history seconds)."""

    value: str
    at: float


@dataclass(frozen=True)
class MissingWrite:
    """An acknowledged write a member does not hold: what it read instead."""

    node: str
    key: str
    value: str
    read: str | None
    acknowledged_at: float

    def describe(self) -> str:
        return f"{self.key}={self.value!r} on {self.node} (read {self.read!r})"


@dataclass(frozen=True)
class MemberCheck:
    """What reading every member found; ``level`` is the read level that was used."""

    missing: tuple[MissingWrite, ...]
    members: tuple[str, ...]
    level: ReadLevel
    keys: int
    #: Why the members never reached one applied index (then they were read anyway), or None.
    stalled: str | None = None

    def missing_on(self, node: str) -> list[MissingWrite]:
        return [m for m in self.missing if m.node == node]


def read_every_member(
    cluster: Cluster,
    acknowledged: Mapping[str, Acknowledged],
    *,
    stale_reads: bool,
    timeout: float = 5.0,
    members: Sequence[Node] | None = None,
    scan_prefix: str | None = None,
) -> MemberCheck:
    """Read every acknowledged key on every running member, once they have settled; with
    ``scan_prefix`` (every acknowledged key starts with it) by one scan per member."""
    nodes = [n for n in (members if members is not None else cluster.nodes) if n.is_running()]
    stalled = None
    try:
        wait_for_same_applied_index(
            cluster,
            timeout=SETTLE_TIMEOUT,
            nodes=nodes,
            stalled_after=STALLED_AFTER,
            digests=False,  # level is all the reads need; digests are compared elsewhere
        )
    except ReplicasStalled as error:  # a finding of its own; what each member holds still counts
        stalled = str(error)
    level = ReadLevel.STALE if stale_reads or scan_prefix is not None else ReadLevel.STRONG
    if scan_prefix is not None and not all(k.startswith(scan_prefix) for k in acknowledged):
        raise ValueError(f"every acknowledged key must start with {scan_prefix!r} to scan")
    read = functools.partial(_missing_on, level=level, timeout=timeout, scan_prefix=scan_prefix)
    # Members are read side by side: each has its own client and process, and a check of
    # thousands of keys on three members is most of a power-cut test's time when serial.
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        found = list(pool.map(lambda node: read(cluster, node, acknowledged), nodes))
    missing = [write for writes in found for write in writes]
    members_read = tuple(n.name for n in nodes)
    return MemberCheck(tuple(missing), members_read, level, len(acknowledged), stalled)


def _missing_on(
    cluster: Cluster,
    node: Node,
    acknowledged: Mapping[str, Acknowledged],
    *,
    level: ReadLevel,
    timeout: float,
    scan_prefix: str | None,
) -> list[MissingWrite]:
    """The acknowledged writes ``node`` does not hold, read on it key by key or by a scan."""
    if scan_prefix is None:
        keys = sorted(acknowledged)
        readers = max(1, min(READERS_PER_MEMBER, len(keys) // KEYS_PER_READER))
        shares = [keys[start::readers] for start in range(readers)]
        read = functools.partial(
            _missing_among, cluster, node, acknowledged, level=level, timeout=timeout
        )
        with ThreadPoolExecutor(max_workers=readers) as pool:
            found = list(pool.map(read, shares))
        return sorted((m for share in found for m in share), key=lambda m: m.key)
    client = cluster.client(node)
    try:
        held = wait_for(
            lambda: (client.scan(scan_prefix, timeout=SCAN_TIMEOUT),),
            timeout=READ_TIMEOUT,
            what=f"{node.name} to answer a scan of {scan_prefix}",
            ignore=(ConsensusError,),
        )[0]
    finally:
        client.close()
    return [
        MissingWrite(node.name, key, write.value, held.get(key), write.at)
        for key, write in sorted(acknowledged.items())
        if held.get(key) != write.value
    ]


def _missing_among(
    cluster: Cluster,
    node: Node,
    acknowledged: Mapping[str, Acknowledged],
    keys: Sequence[str],
    *,
    level: ReadLevel,
    timeout: float,
) -> list[MissingWrite]:
    """``keys`` read on ``node`` one by one through a client of their own."""
    missing: list[MissingWrite] = []
    client = cluster.client(node)
    try:
        for key in keys:
            write = acknowledged[key]
            read = wait_for(
                functools.partial(_read, client, key, level, timeout),
                timeout=READ_TIMEOUT,
                what=f"{node.name} to answer a {level.value} read of {key}",
                ignore=(ConsensusError,),
            )[0]
            if read != write.value:
                missing.append(MissingWrite(node.name, key, write.value, read, write.at))
    finally:
        client.close()
    return missing


def _read(client: Client, key: str, level: ReadLevel, timeout: float) -> tuple[str | None]:
    return (client.get(key, level=level, timeout=timeout),)
