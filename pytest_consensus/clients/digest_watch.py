"""Members compared while faults run: digests at a point every member has passed.

A member that comes back from a kill without an entry it had applied holds another state
from then on (etcd-io/etcd#13766: one revision behind its peers, for good). The comparison
after the faults finds it too, but only once writes stop and members settle; comparing
during the faults finds it within seconds of the kill that made it, with the kills around
it still in view, and finds a divergence that a later restore would hide. A digest of the
current state cannot be compared while writes stream in (every member is at another point),
so the watch asks each member that answers for its latest point (capability ``digest-at``),
takes the lowest, and asks each for its digest there.

Comparing costs the members work (etcd's HashKV reads every key version): a round waits
at least ``min_interval`` seconds after the last, and at least three times as long as that
round took, so the watch takes at most a quarter of the time it watches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pytest_consensus.clients import stopping
from pytest_consensus.clients.history import History
from pytest_consensus.contract import Cluster, Node, PointDigest
from pytest_consensus.contract.errors import ConsensusError

#: Seconds a member has to answer for its point or its digest; one that does not (killed,
#: restarting, busy) is left out of that round.
ANSWER_TIMEOUT = 5.0
#: Divergences kept: the first is the finding, a few more show whether it lasted.
KEPT = 3


@dataclass(frozen=True)
class Divergence:
    """Members whose digests at one point differ, seen at ``at`` (history seconds)."""

    at: float
    point: int
    digests: dict[str, PointDigest]

    def describe(self) -> str:
        members = ", ".join(
            f"{name} {found.digest}" for name, found in sorted(self.digests.items())
        )
        return f"at {self.at:.1f} s the digests at point {self.point} differ: {members}"


@dataclass
class WatchFigures:
    """How often the members were compared: a clean watch that compared nothing is no
    evidence, and its figures say so."""

    rounds: int = 0
    #: Rounds in which at least two members with the same basis were compared.
    compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)

    def describe(self) -> str:
        found = f", {len(self.divergences)} diverged" if self.divergences else ""
        return f"digests compared in {self.compared} of {self.rounds} rounds{found}"


class DigestWatch:
    """Compares the answering members' digests at a common point while :meth:`running`."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        *,
        min_interval: float = 5.0,
        max_rounds: int = 1000,
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.min_interval = min_interval
        self.max_rounds = max_rounds
        self.figures = WatchFigures()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="digest-watch", daemon=True)

    @contextmanager
    def running(self) -> Iterator[DigestWatch]:
        """The watch runs inside the block; leaving it stops the watch once the round in
        progress, if any, has finished (each member answers within ANSWER_TIMEOUT)."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(2 * ANSWER_TIMEOUT * len(self.cluster.nodes) + 5.0)

    def _watch(self) -> None:
        while self.figures.rounds < self.max_rounds:
            if self._stop.wait(self.min_interval) or stopping.stopping():
                return
            began = time.monotonic()
            self.compare_once()
            took = time.monotonic() - began
            if self._stop.wait(max(0.0, 3 * took - self.min_interval)):
                return

    def compare_once(self) -> Divergence | None:
        """One round: the lowest point of the members that answer, each one's digest there,
        compared among members of one basis. Returns the divergence found, if any."""
        self.figures.rounds += 1
        points = {node.name: p for node in self.cluster.nodes if (p := _point(node)) is not None}
        if len(points) < 2:
            return None
        point = min(points.values())
        digests = {
            node.name: d
            for node in self.cluster.nodes
            if node.name in points and (d := _digest(node, point)) is not None
        }
        by_basis: dict[str, dict[str, PointDigest]] = {}
        for name, found in digests.items():
            by_basis.setdefault(found.basis, {})[name] = found
        comparable = [group for group in by_basis.values() if len(group) >= 2]
        if not comparable:
            return None
        self.figures.compared += 1
        for group in comparable:
            if len({found.digest for found in group.values()}) > 1:
                divergence = Divergence(self.history.now(), point, group)
                if len(self.figures.divergences) < KEPT:
                    self.figures.divergences.append(divergence)
                return divergence
        return None


def _point(node: Node) -> int | None:
    if not node.is_running():
        return None
    try:
        return node.digest_point(ANSWER_TIMEOUT)
    except ConsensusError:
        return None


def _digest(node: Node, point: int) -> PointDigest | None:
    try:
        return node.digest_at(point, ANSWER_TIMEOUT)
    except ConsensusError:
        return None
