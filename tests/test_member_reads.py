"""Reading every member's own copy of the acknowledged writes, on stand-in members that each
hold their own data: what is reported missing, where, and through how many clients.
(Against real stores it runs in the crash tests, the crash loop and the power cuts.)"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pytest_consensus.clients import member_reads
from pytest_consensus.clients.member_reads import Acknowledged, read_every_member
from pytest_consensus.contract import Client, HostSpec, Node, ReadLevel

from fake_store import FakeCluster, FakeNode

pytestmark = pytest.mark.usefixtures("tests_on_path")


class MemberClient(Client):
    """Reads the data of the one member it was made for."""

    def __init__(self, cluster: MembersCluster, node: str) -> None:
        self.node = node
        self.data = cluster.held[node]
        self.levels: list[ReadLevel] = []

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        raise AssertionError("the check only reads")

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        self.levels.append(level)
        return self.data.get(key)

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        return {k: v for k, v in self.data.items() if k.startswith(prefix)}


class MembersCluster(FakeCluster):
    def __init__(self, hosts: list[HostSpec], held: dict[str, dict[str, str]]) -> None:
        super().__init__(hosts)
        self.held = held
        self.made: list[MemberClient] = []
        self.made_lock = threading.Lock()

    def client(self, node: Node) -> Client:
        made = MemberClient(self, node.name)
        with self.made_lock:
            self.made.append(made)
        return made


def cluster_holding(count: int) -> tuple[MembersCluster, dict[str, Acknowledged]]:
    acknowledged = {f"w0-{n}": Acknowledged(f"v{n}", n / 100) for n in range(count)}
    every = {key: write.value for key, write in acknowledged.items()}
    held = {"n1": dict(every), "n2": dict(every), "n3": dict(every)}
    for key in ("w0-7", "w0-500", "w0-1199"):
        held["n2"].pop(key, None)
    held["n3"]["w0-42"] = "another value"
    hosts = [HostSpec(f"n{i}", "127.0.0.1", Path("d"), Path("l")) for i in (1, 2, 3)]
    return MembersCluster(hosts, held), acknowledged


def test_each_member_is_read_on_its_own_and_what_it_lacks_is_named() -> None:
    cluster, acknowledged = cluster_holding(1200)
    check = read_every_member(cluster, acknowledged, stale_reads=True)

    assert [(m.node, m.key, m.read) for m in check.missing] == [
        ("n2", "w0-1199", None),
        ("n2", "w0-500", None),
        ("n2", "w0-7", None),
        ("n3", "w0-42", "another value"),
    ]
    assert check.members == ("n1", "n2", "n3") and check.keys == 1200
    assert check.level is ReadLevel.STALE
    reads = [level for client in cluster.made for level in client.levels]
    assert len(reads) == 3 * 1200 and set(reads) == {ReadLevel.STALE}


def test_many_keys_are_read_by_several_clients_of_each_member_and_few_by_one() -> None:
    cluster, acknowledged = cluster_holding(1200)
    read_every_member(cluster, acknowledged, stale_reads=True)
    per_member = {n: sum(c.node == n for c in cluster.made) for n in ("n1", "n2", "n3")}
    assert per_member == dict.fromkeys(("n1", "n2", "n3"), 1200 // member_reads.KEYS_PER_READER)

    few, acknowledged = cluster_holding(1200)
    small = {k: acknowledged[k] for k in list(acknowledged)[:100]}
    read_every_member(few, small, stale_reads=True)
    assert len(few.made) == 3


def test_a_store_with_scan_is_asked_once_per_member() -> None:
    cluster, acknowledged = cluster_holding(1200)
    check = read_every_member(cluster, acknowledged, stale_reads=True, scan_prefix="w")
    assert len(check.missing) == 4 and len(cluster.made) == 3
    assert all(not client.levels for client in cluster.made), "no key-by-key read"


def test_a_member_that_is_down_is_not_read() -> None:
    cluster, acknowledged = cluster_holding(1200)
    node = cluster.nodes[1]
    assert isinstance(node, FakeNode)
    node.kill()
    check = read_every_member(cluster, acknowledged, stale_reads=True, members=cluster.nodes)
    assert check.members == ("n1", "n3")
    assert [m.node for m in check.missing] == ["n3"]
