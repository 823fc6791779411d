"""The digest watch's own logic, on stand-in members whose history is a list of states: which
point is compared, who is left out, what counts as a divergence. (Against a real store it
runs inside the crash loop, conformance/test_crash_loop.py; etcd's digest-at is checked in
tests/test_etcd.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_consensus.clients.digest_watch import DigestWatch
from pytest_consensus.clients.history import History
from pytest_consensus.contract import HostSpec, PointDigest
from pytest_consensus.contract.errors import Timeout

from fake_store import FakeCluster, FakeNode

pytestmark = pytest.mark.usefixtures("tests_on_path")


class HistoryNode(FakeNode):
    """A member whose state at point P is ``states[P]``; it has reached the last point."""

    def __init__(self, host: HostSpec, store: FakeCluster) -> None:
        super().__init__(host, store)
        self.states: list[str] = []
        self.basis = "compacted to 0"
        self.asked: list[int] = []

    def digest_point(self, timeout: float) -> int:
        if not self.running:
            raise Timeout(f"{self.name} is down")
        return len(self.states) - 1

    def digest_at(self, point: int, timeout: float) -> PointDigest:
        self.asked.append(point)
        if point >= len(self.states):
            raise Timeout(f"{self.name}: point {point} not reached")
        return PointDigest(point, f"hash-of-{self.states[point]}", self.basis)


def cluster_of(*histories: list[str]) -> FakeCluster:
    hosts = [HostSpec(f"n{i}", "127.0.0.1", Path("d"), Path("l")) for i in (1, 2, 3)]
    cluster = FakeCluster(hosts)
    nodes = [HistoryNode(host, cluster) for host in hosts]
    for node, states in zip(nodes, histories, strict=True):
        node.states = list(states)
        node.start()
    cluster.nodes = nodes
    return cluster


def test_members_are_compared_at_the_lowest_point_any_of_them_reached() -> None:
    cluster = cluster_of(["a", "ab", "abc"], ["a", "ab"], ["a", "ab", "abc", "abcd"])
    watch = DigestWatch(cluster, History())
    assert watch.compare_once() is None
    assert [n.asked for n in cluster.nodes] == [[1], [1], [1]]  # type: ignore[attr-defined]
    assert (watch.figures.rounds, watch.figures.compared) == (1, 1)


def test_a_member_with_another_state_at_the_same_point_is_a_divergence() -> None:
    # n3 skipped the entry that made "ab": at point 1 it holds "ac".
    cluster = cluster_of(["a", "ab", "abc"], ["a", "ab", "abc"], ["a", "ac", "acd"])
    watch = DigestWatch(cluster, History())
    found = watch.compare_once()
    assert found is not None and found.point == 2
    assert {name: d.digest for name, d in found.digests.items()} == {
        "n1": "hash-of-abc",
        "n2": "hash-of-abc",
        "n3": "hash-of-acd",
    }
    assert "digests at point 2 differ" in found.describe() and "n3 hash-of-acd" in found.describe()
    assert watch.figures.divergences == [found]


def test_a_member_that_is_down_is_left_out_and_one_member_alone_is_not_a_comparison() -> None:
    cluster = cluster_of(["a", "ab"], ["a", "x"], ["a", "ab"])
    cluster.nodes[1].kill()
    watch = DigestWatch(cluster, History())
    assert watch.compare_once() is None  # n2's other state is not seen while it is down
    cluster.nodes[2].kill()
    assert watch.compare_once() is None
    assert (watch.figures.rounds, watch.figures.compared) == (2, 1)


def test_digests_of_different_bases_are_not_compared() -> None:
    cluster = cluster_of(["a", "ab"], ["a", "b"], ["a", "c"])
    cluster.nodes[0].basis = "compacted to 1"  # type: ignore[attr-defined]
    cluster.nodes[1].basis = "compacted to 2"  # type: ignore[attr-defined]
    watch = DigestWatch(cluster, History())
    found = watch.compare_once()
    assert found is None and watch.figures.compared == 0


def test_the_watch_runs_in_the_background_until_its_block_ends() -> None:
    cluster = cluster_of(["a", "ab"], ["a", "ab"], ["a", "ab"])
    watch = DigestWatch(cluster, History(), min_interval=0.01)
    with watch.running():
        deadline = time.monotonic() + 10
        while watch.figures.compared < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    rounds = watch.figures.rounds
    time.sleep(0.1)
    assert rounds >= 3 and watch.figures.rounds == rounds, "no round after the block"
    assert "digests compared in" in watch.figures.describe()
