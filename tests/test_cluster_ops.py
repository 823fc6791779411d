"""Waiting on replicas: what the harness says when one stops applying (unit tests with
in-process fake nodes; no store is certified here)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_consensus.clients.cluster_ops import ReplicasStalled, wait_for_same_applied_index
from pytest_consensus.contract import HostSpec, NodeStatus, Role
from pytest_consensus.contract.errors import Timeout

from fake_store import FakeCluster, FakeNode


class FixedIndexNode(FakeNode):
    """Reports a fixed applied index, or never answers when it is None."""

    applied: int | None = 0

    def status(self, timeout: float) -> NodeStatus:
        if self.applied is None:
            raise Timeout(f"{self.name} did not answer")
        return NodeStatus(self.name, Role.FOLLOWER, 1, "n1", self.applied, self.applied, "d")


def cluster_with(applied: list[int | None]) -> FakeCluster:
    hosts = [HostSpec(f"n{i + 1}", "127.0.0.1", Path("d"), Path("l")) for i in range(3)]
    cluster = FakeCluster(hosts)
    cluster.nodes = [FixedIndexNode(host, cluster) for host in hosts]
    for node, index in zip(cluster.nodes, applied, strict=True):
        node.start()
        node.applied = index  # type: ignore[attr-defined]
    return cluster


def test_a_replica_behind_the_others_is_named_with_its_index() -> None:
    with pytest.raises(ReplicasStalled) as stalled:
        wait_for_same_applied_index(cluster_with([60, 57, 60]), timeout=0.5)
    assert "n2 stopped at applied index 57 while others reached 60" in str(stalled.value)
    assert "n1 stopped" not in str(stalled.value)


def test_a_replica_that_does_not_answer_is_named() -> None:
    with pytest.raises(ReplicasStalled, match="n3 did not answer its status"):
        wait_for_same_applied_index(cluster_with([60, 60, None]), timeout=0.5)


def test_replicas_at_one_index_converge() -> None:
    converged = wait_for_same_applied_index(cluster_with([42, 42, 42]), timeout=5)
    assert {s.applied_index for s in converged.statuses} == {42}


def test_replicas_that_stopped_moving_are_reported_before_the_timeout() -> None:
    began = time.monotonic()
    with pytest.raises(ReplicasStalled, match=r"none moved for 1s.*n2 stopped at applied index 57"):
        wait_for_same_applied_index(cluster_with([60, 57, 60]), timeout=30, stalled_after=1.0)
    assert time.monotonic() - began < 10


def test_a_silent_replica_is_waited_for_the_whole_timeout() -> None:
    """A member that does not answer may be restarting: no-progress does not cut that short."""
    began = time.monotonic()
    with pytest.raises(ReplicasStalled, match="within 1.5s.*n3 did not answer"):
        wait_for_same_applied_index(cluster_with([60, 60, None]), timeout=1.5, stalled_after=0.2)
    assert time.monotonic() - began >= 1.5
