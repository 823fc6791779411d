"""Waiting on a cluster's observable state: a leader, and replicas that agree."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pytest_consensus.contract import Client, Cluster, Node, NodeStatus, ReadLevel, Role
from pytest_consensus.contract.errors import CapabilityMissing, ConsensusError
from pytest_consensus.contract.waiting import WaitTimeout, wait_for

STATUS_TIMEOUT = 2.0


def running_statuses(nodes: Sequence[Node], *, digests: bool = False) -> list[NodeStatus]:
    """Statuses of the nodes that answer now; silent or dead nodes are left out. Digests
    only when asked (``Node.quick_status`` otherwise): they can be costly to compute (a
    hash or a read of the whole state), so members are then asked side by side."""

    def ask(node: Node) -> NodeStatus | None:
        if not node.is_running():
            return None
        try:
            return (node.status if digests else node.quick_status)(STATUS_TIMEOUT)
        except ConsensusError:
            return None

    if digests and len(nodes) > 1:
        with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="status") as pool:
            answers = list(pool.map(ask, nodes))
    else:
        answers = [ask(node) for node in nodes]
    return [status for status in answers if status is not None]


def strong_read_anywhere(
    clients: Sequence[Client], key: str, timeout: float
) -> tuple[str | None] | None:
    """A strong read of ``key`` from the first node that answers, as ``(value,)``; None when
    every node refused or failed. Followers may refuse strong reads (with not-leader), so a
    test that needs one answer asks each node in turn rather than a fixed one."""
    for client in clients:
        try:
            return (client.get(key, level=ReadLevel.STRONG, timeout=timeout),)
        except ConsensusError:
            continue
    return None


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
        """Whether every replica reports one digest. A replica that reports none cannot be
        compared: two missing digests are not evidence of equal states."""
        silent = [s.node for s in self.statuses if s.digest is None]
        if silent:
            raise CapabilityMissing(
                f"{', '.join(silent)} reported no state digest, so replicas cannot be "
                "compared; an adapter that declares `digest` must report one in every status"
            )
        return len({s.digest for s in self.statuses}) == 1

    def describe(self) -> str:
        """Each replica's applied index and digest, and how many snapshots it restored where
        it says (a restore is the likeliest place for a replica to diverge)."""
        return ", ".join(
            f"{s.node}: applied {s.applied_index} digest {s.digest}"
            + (f" (restored {s.restores} snapshot(s) since it started)" if s.restores else "")
            for s in self.statuses
        )


def wait_for_same_applied_index(
    cluster: Cluster,
    timeout: float = 30.0,
    nodes: Sequence[Node] | None = None,
    *,
    stalled_after: float | None = None,
    digests: bool = True,
) -> Convergence:
    """Wait until every given node answers and all report one applied index, twice running
    with the same digests.

    Digests are then compared by the caller: a store whose replicas diverge reaches the
    same index with different digests, and that is the failure worth reporting.
    ``stalled_after`` gives up sooner when every node answers at different indexes and
    none has moved for that many seconds: a replica that stopped will not catch up by
    waiting out the rest of the timeout. ``digests=False`` waits for the index alone (the
    statuses then carry no digests to compare), for callers that only need members level.
    """
    members = list(nodes if nodes is not None else cluster.nodes)
    previous: list[NodeStatus] = []
    unchanged_since = time.monotonic()

    def probe() -> Convergence | None:
        nonlocal previous, unchanged_since
        statuses = running_statuses(members, digests=digests)
        indexes = [s.applied_index for s in statuses]
        # Digests must hold still too: a store may report its applied index and its digest
        # from two reads (etcd: Raft's index, then HashKV), and the state can trail the index.
        seen = [(s.node, s.applied_index, s.digest) for s in statuses]
        unchanged = (
            len(statuses) == len(members)
            and [(s.node, s.applied_index, s.digest) for s in previous] == seen
        )
        previous = statuses
        if unchanged and len(set(indexes)) == 1:
            return Convergence(tuple(statuses))
        if not unchanged:
            unchanged_since = time.monotonic()
        if stalled_after is not None and time.monotonic() - unchanged_since >= stalled_after:
            raise ReplicasStalled(members, previous, timeout, stalled_after)
        return None

    try:
        return wait_for(probe, timeout=timeout, what="replicas at one applied index", interval=0.1)
    except ReplicasStalled:
        raise
    except WaitTimeout:
        raise ReplicasStalled(members, previous, timeout) from None


class ReplicasStalled(WaitTimeout):
    """Replicas that did not reach one applied index in time; the message names the ones
    that stopped (behind the others, or silent) and where each stood."""

    def __init__(
        self,
        members: Sequence[Node],
        seen: Sequence[NodeStatus],
        timeout: float,
        stalled_after: float | None = None,
    ):
        self.statuses = tuple(seen)
        answered = {s.node: s for s in seen}
        silent = [node.name for node in members if node.name not in answered]
        indexes = [s.applied_index for s in seen if s.applied_index is not None]
        ahead = max(indexes, default=None)
        behind = [s for s in seen if s.applied_index is not None and s.applied_index != ahead]
        parts = [
            f"{s.node} stopped at applied index {s.applied_index} while others reached {ahead}"
            for s in behind
        ]
        parts += [f"{name} did not answer its status (down or hung)" for name in silent]
        detail = (
            "; ".join(parts) or f"indexes still moving: {Convergence(self.statuses).describe()}"
        )
        within = (
            f"(none moved for {stalled_after:.0f}s)"
            if stalled_after is not None
            else f"within {timeout}s"
        )
        super().__init__(f"replicas did not reach one applied index {within}: {detail}")


class LeaderObserver:
    """Collects who led which term while faults run. Nodes that keep their own leadership
    history (``NodeStatus.led_terms``) are taken at their word, history included; for the
    others, each status poll that says "leader of term T" is recorded."""

    def __init__(self, cluster: Cluster, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.interval = interval
        self.leaders: dict[int, set[str]] = {}
        self.polls = 0
        self._seen_last_poll: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-observer", daemon=True)

    def __enter__(self) -> LeaderObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.poll()  # the histories of nodes that restarted meanwhile

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """One round of statuses. A polled "leader of term T" counts only when the same node
        said so in the previous round too: a status can be torn (etcd reads the leader and
        the term separately, so a deposed leader may pair its old role with the new term
        for a moment), while two leaders of one term last until one hears of the other."""
        seen_now = set()
        for status in running_statuses(self.cluster.nodes):
            if status.led_terms is not None:
                for term in status.led_terms:
                    self.leaders.setdefault(term, set()).add(status.node)
            elif status.role is Role.LEADER and status.term is not None:
                seen_now.add((status.node, status.term))
        for node, term in seen_now & self._seen_last_poll:
            self.leaders.setdefault(term, set()).add(node)
        self._seen_last_poll = seen_now
        self.polls += 1

    def terms_with_two_leaders(self) -> dict[int, set[str]]:
        return {term: nodes for term, nodes in self.leaders.items() if len(nodes) > 1}
