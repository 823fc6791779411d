"""Waiting on a cluster's observable state: a leader, and replicas that agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_consensus.contract import Cluster, Node, NodeStatus, Role
from pytest_consensus.errors import ConsensusError
from pytest_consensus.waiting import WaitTimeout, wait_for

STATUS_TIMEOUT = 2.0


def running_statuses(nodes: Sequence[Node]) -> list[NodeStatus]:
    """Statuses of the nodes that answer now; silent or dead nodes are left out."""
    statuses = []
    for node in nodes:
        if not node.is_running():
            continue
        try:
            statuses.append(node.status(STATUS_TIMEOUT))
        except ConsensusError:
            continue
    return statuses


def majority(size: int) -> int:
    return size // 2 + 1


def wait_for_leader(
    cluster: Cluster, timeout: float = 30.0, among: Sequence[Node] | None = None
) -> tuple[Node, NodeStatus]:
    """A node that says it leads, in a term where a majority of the cluster follows it."""
    candidates = list(among if among is not None else cluster.nodes)
    needed = majority(len(cluster.nodes))

    def probe() -> tuple[Node, NodeStatus] | None:
        statuses = running_statuses(candidates)
        for status in statuses:
            if status.role is not Role.LEADER:
                continue
            followers = [s for s in statuses if s.leader == status.node and s.term == status.term]
            if len(followers) >= needed:
                return cluster.node(status.node), status
        return None

    return wait_for(probe, timeout=timeout, what=f"a leader followed by {needed} nodes")


@dataclass(frozen=True)
class Convergence:
    """Replicas at one applied index: whether their digests agree, and what each said."""

    statuses: tuple[NodeStatus, ...]

    @property
    def digests_agree(self) -> bool:
        return len({s.digest for s in self.statuses}) == 1

    def describe(self) -> str:
        return ", ".join(
            f"{s.node}: applied {s.applied_index} digest {s.digest}" for s in self.statuses
        )


def wait_for_same_applied_index(
    cluster: Cluster, timeout: float = 30.0, nodes: Sequence[Node] | None = None
) -> Convergence:
    """Wait until every given node answers and all report one applied index, twice running.

    Digests are then compared by the caller: a store whose replicas diverge reaches the
    same index with different digests, and that is the failure worth reporting.
    """
    members = list(nodes if nodes is not None else cluster.nodes)
    previous: list[NodeStatus] = []

    def probe() -> Convergence | None:
        nonlocal previous
        statuses = running_statuses(members)
        settled = (
            len(statuses) == len(members)
            and len({s.applied_index for s in statuses}) == 1
            and [s.applied_index for s in previous] == [s.applied_index for s in statuses]
        )
        previous = statuses
        return Convergence(tuple(statuses)) if settled else None

    try:
        return wait_for(probe, timeout=timeout, what="replicas at one applied index", interval=0.1)
    except WaitTimeout as error:
        seen = Convergence(tuple(previous)).describe()
        raise WaitTimeout(f"{error}; last seen: {seen or 'no node answered'}") from None
