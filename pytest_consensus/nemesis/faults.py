"""Faults, fault schedules and the nemesis that applies them.

A schedule is a list of faults (what, when, for how long, on which nodes) generated from a
seed, written next to the history and replayable. Partition shapes become sets of blocked
directed links, applied as DROP rules inside node namespaces; process faults go through the
adapter's nodes. Every fault and every heal is recorded into the history as a nemesis event
with its concrete targets, so a replay can be compared event for event.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_consensus.clients import stopping
from pytest_consensus.clients.cluster_ops import majority, wait_for_leader
from pytest_consensus.clients.history import History
from pytest_consensus.contract import Cluster, Node
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError, harness_problem
from pytest_consensus.hosts.disks import LossyDisks
from pytest_consensus.hosts.firewall import CLIENT, Firewall
from pytest_consensus.hosts.link_proxy import link_name
from pytest_consensus.hosts.links import LinkProxies, LinkTable
from pytest_consensus.nemesis.link_faults import (
    LEADER_LINK_FAULTS,
    LINK_FAULTS,
    SLOW_LEADER,
    leader_link_targets,
    link_table,
    link_targets,
)

SCHEDULE_VERSION = 1

PARTITION_SHAPES = (
    "isolate-leader",
    "random-halves",
    "majority-ring",
    "bridge",
    "client-from-node",
    "one-way-to-leader",
)
#: Shapes that leave some node without a majority (on clusters they mean something on).
MINORITY_SHAPES = ("isolate-leader", "random-halves", "majority-ring", "bridge")
PROCESS_FAULTS = (
    "kill-one",
    "kill-minority",
    "kill-all",
    "pause-one",
    "rolling-restart",
    "kill-all-restart-unevenly",
)
#: The longest wait between two nodes' restarts after kill-all-restart-unevenly.
UNEVEN_RESTART_GAP = 3.0
#: Nodes lose power: their processes are killed and their lossy disks (hosts.disks) forget
#: everything that was not synced; at heal they start again on what the disks kept.
POWER_FAULTS = ("power-cut-one", "power-cut-minority", "power-cut-all")
NETWORK_FAULTS = ("delay", "loss")
#: Nodes (every node, as generated) get the client's requests and act on them, but their
#: replies are dropped: the outcome is unknown to the client, so whichever node a retry
#: reaches, it must not apply the write again.
REPLY_FAULTS = ("lost-replies",)
ALL_FAULTS = (
    *PARTITION_SHAPES,
    *PROCESS_FAULTS,
    *NETWORK_FAULTS,
    *REPLY_FAULTS,
    *POWER_FAULTS,
    *LINK_FAULTS,
)
#: Shapes whose targets depend on who leads when the fault starts.
LEADER_DEPENDENT = ("isolate-leader", "one-way-to-leader", SLOW_LEADER, *LEADER_LINK_FAULTS)


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` (a partition shape or process/network fault), start ``at`` and
    ``duration`` in seconds from the schedule's start, and its concrete ``targets``: node
    names, or for partitions the blocked directed links. Targets left empty are chosen when
    the fault starts (the leader, say) and recorded then."""

    kind: str
    at: float
    duration: float
    targets: tuple[tuple[str, ...], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "targets": [list(t) for t in self.targets]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        if data.get("kind") not in ALL_FAULTS:
            raise ValueError(f"unknown fault kind {data.get('kind')!r}; valid: {ALL_FAULTS}")
        return cls(
            kind=data["kind"],
            at=float(data["at"]),
            duration=float(data["duration"]),
            targets=tuple(tuple(t) for t in data.get("targets", [])),
        )


@dataclass
class Schedule:
    seed: int
    nodes: list[str]
    faults: list[Fault] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        body = {
            "version": SCHEDULE_VERSION,
            "seed": self.seed,
            "nodes": self.nodes,
            "faults": [f.to_json() for f in self.faults],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> Schedule:
        try:
            body = json.loads(Path(path).read_text())
            if body.get("version") != SCHEDULE_VERSION:
                raise ValueError(f"schedule version {body.get('version')!r}, expected 1")
            return cls(
                int(body["seed"]), list(body["nodes"]), [Fault.from_json(f) for f in body["faults"]]
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise HarnessError(f"cannot read fault schedule {path}: {error}") from error

    @property
    def duration(self) -> float:
        return max((f.at + f.duration for f in self.faults), default=0.0)


def generate_schedule(
    seed: int,
    nodes: Sequence[str],
    kinds: Sequence[str],
    *,
    faults: int = 3,
    fault_duration: tuple[float, float] = (1.5, 3.0),
    gap: tuple[float, float] = (0.5, 1.5),
    required: Sequence[str] = (),
    at_least: Mapping[str, float] | None = None,
) -> Schedule:
    """A sequence of non-overlapping faults drawn from ``kinds`` with the given seed; each
    kind in ``required`` is in it at least once (at a position drawn from the seed), so a
    schedule has at least as many faults as required kinds. Shapes that mean nothing on
    this many nodes (see :func:`meaningful_kinds`) are not drawn. ``at_least`` gives kinds
    a shortest duration of their own (a partition that must outlast a client's timeout)."""
    rng = random.Random(seed)
    schedule = Schedule(seed, list(nodes))
    choices = meaningful_kinds(kinds, len(nodes))
    # The required kinds first, the rest drawn, then the order shuffled: replacing draws
    # by missing kinds instead could overwrite the one draw of another required kind.
    drawn = list(dict.fromkeys(required))
    drawn += [rng.choice(choices) for _ in range(faults - len(drawn))]
    rng.shuffle(drawn)
    clock = rng.uniform(*gap)
    for kind in drawn:
        duration = round(rng.uniform(*fault_duration), 3)
        if at_least and kind in at_least:
            duration = round(at_least[kind] + duration - fault_duration[0], 3)
        targets = static_targets(kind, list(nodes), rng)
        schedule.faults.append(Fault(kind, round(clock, 3), duration, targets))
        clock += duration + rng.uniform(*gap)
    return schedule


#: Shapes that need at least this many nodes to do anything: on 3 nodes the majority ring
#: blocks no link, and the bridge leaves every node with a majority (no minority at all).
MINIMUM_NODES = {"majority-ring": 4, "bridge": 4}


def meaningful_kinds(kinds: Sequence[str], nodes: int) -> list[str]:
    """The kinds worth drawing on a cluster of ``nodes``: those in :data:`MINIMUM_NODES` are
    left out of smaller clusters, where they would be a fault in name only."""
    usable = [kind for kind in kinds if nodes >= MINIMUM_NODES.get(kind, 1)]
    if not usable:
        raise ValueError(f"none of the fault kinds {list(kinds)} does anything on {nodes} nodes")
    return usable


def static_targets(kind: str, nodes: list[str], rng: random.Random) -> tuple[tuple[str, ...], ...]:
    """Targets that do not depend on the cluster's state, drawn now from the seed."""
    n = len(nodes)
    if kind == "random-halves":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        return cut(shuffled[: n // 2], shuffled[n // 2 :])
    if kind == "majority-ring":
        reach = (majority(n) - 1 + 1) // 2  # neighbours on each side to see a majority
        blocked = []
        for i, a in enumerate(nodes):
            for j, b in enumerate(nodes):
                distance = min((i - j) % n, (j - i) % n)
                if a != b and distance > reach:
                    blocked.append((a, b))
        return tuple(blocked)
    if kind == "bridge":
        middle = n // 2
        return cut(nodes[:middle], nodes[middle + 1 :])
    if kind == "client-from-node":
        node = rng.choice(nodes)
        return ((CLIENT, node), (node, CLIENT))
    if kind in ("kill-one", "pause-one", "power-cut-one"):
        return ((rng.choice(nodes),),)
    if kind in ("kill-minority", "power-cut-minority"):
        return (tuple(sorted(rng.sample(nodes, (n - 1) // 2 or 1))),)
    if kind in ("kill-all", "rolling-restart", "lost-replies", "power-cut-all"):
        return (tuple(nodes),)
    if kind == "kill-all-restart-unevenly":
        # Every node dies; they come back in a random order, each after a random gap (the
        # second target row: seconds after the previous node's restart began).
        order = nodes[:]
        rng.shuffle(order)
        gaps = tuple(f"{rng.uniform(0.0, UNEVEN_RESTART_GAP):.2f}" for _ in order)
        return (tuple(order), gaps)
    if kind in NETWORK_FAULTS:
        return ((rng.choice(nodes),),)
    if kind in LINK_FAULTS and kind not in LEADER_DEPENDENT:
        return link_targets(kind, nodes, rng)
    return ()  # leader-dependent (resolved when the fault starts), or nothing to block


def restart_offsets(fault: Fault) -> list[float]:
    """When each node of a kill-all-restart-unevenly fault starts again, in seconds from the
    heal, in the order of its targets: each gap is counted from the previous restart."""
    return list(itertools.accumulate(float(gap) for gap in fault.targets[1]))


def cut(side_a: Sequence[str], side_b: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Every link between the two sides, both ways."""
    links = [(a, b) for a in side_a for b in side_b] + [(b, a) for a in side_a for b in side_b]
    return tuple(links)


@dataclass(frozen=True)
class LinkEffect:
    """What one link fault did, summed over the links it set: proof that it happened (a
    slowed link that carried nothing slowed nothing)."""

    kind: str
    delayed: int
    held: int
    dropped_bytes: int

    @classmethod
    def between(
        cls,
        kind: str,
        table: LinkTable,
        before: dict[str, dict[str, int]],
        links: LinkProxies,
    ) -> LinkEffect:
        after = links.figures()
        totals = dict.fromkeys(("delayed", "held", "dropped"), 0)
        for a, b in table:
            name = link_name(a, b)
            for field_name in totals:
                now = after.get(name, {}).get(field_name, 0)
                totals[field_name] += now - before.get(name, {}).get(field_name, 0)
        return cls(kind, totals["delayed"], totals["held"], totals["dropped"])

    @property
    def happened(self) -> bool:
        return bool(self.delayed or self.held or self.dropped_bytes)

    def describe(self) -> str:
        return (
            f"{self.delayed} chunks delayed, {self.held} held, {self.dropped_bytes} bytes dropped"
        )


class Nemesis:
    """Applies a schedule to a cluster in a background thread, recording every event."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        firewall: Firewall | None,
        *,
        leader_timeout: float = 30.0,
        on_event: Callable[[str], None] | None = None,
        disks: LossyDisks | None = None,
        links: LinkProxies | None = None,
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.firewall = firewall
        self.disks = disks
        #: The cluster's link proxies: link faults need them, and serve delay and loss
        #: where they are (netem serves those where they are not).
        self.links = links
        #: What each link fault did to its links, in the order healed (see LinkEffect).
        self.link_effects: list[LinkEffect] = []
        self._links_before: dict[str, dict[str, int]] = {}
        self.leader_timeout = leader_timeout
        self.on_event = on_event
        self.applied: list[Fault] = []
        #: What went wrong applying or healing a fault: a description and the error.
        self.failures: list[tuple[str, Exception]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running a schedule --------------------------------------------------------------
    def start(self, schedule: Schedule) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(schedule,), name="nemesis", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop early (heals whatever is active) and wait for the thread; when the run is
        stopping, only briefly: the cluster and its network are removed next anyway."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0 if stopping.stopping() else timeout)

    @property
    def errors(self) -> list[str]:
        return [what for what, _ in self.failures]

    def check(self) -> None:
        """Stop the test if a fault could not be applied or healed. When every cause is the
        harness's own (a firewall rule it could not add), it is a HarnessError, no verdict
        on the store; a restarted node that did not come back, or no leader, fails it."""
        if not self.errors:
            return
        message = f"faults failed: {'; '.join(self.errors)}"
        causes = [error for _, error in self.failures]
        if all(isinstance(error, CapabilityMissing) for error in causes):
            raise CapabilityMissing(message)
        if all(harness_problem(error, "call") for error in causes):
            raise HarnessError(message)
        raise AssertionError(message)

    def wait(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, schedule: Schedule) -> list[Fault]:
        """Apply the whole schedule in this thread; returns the faults as applied."""
        self._run(schedule)
        return self.applied

    def _run(self, schedule: Schedule) -> None:
        begin = time.monotonic()
        for fault in schedule.faults:
            if self._stop.wait(max(0.0, begin + fault.at - time.monotonic())):
                return
            try:
                applied = self.apply(fault)
            except Exception as error:  # recorded, and the test fails on it
                self.failures.append((f"{fault.kind}: {type(error).__name__}: {error}", error))
                continue
            self._stop.wait(fault.duration)
            try:
                self.heal(applied)
            except Exception as error:
                self.failures.append((f"heal {fault.kind}: {type(error).__name__}: {error}", error))

    # -- one fault -----------------------------------------------------------------------
    def apply(self, fault: Fault) -> Fault:
        targets = fault.targets
        if not targets and fault.kind in LEADER_DEPENDENT:
            targets = self._resolve(fault)
        fault = replace(fault, targets=targets)
        kind = fault.kind
        if kind in PARTITION_SHAPES:
            self._require_firewall(kind).block(fault.targets)
        elif kind in ("kill-one", "kill-minority", "kill-all", "kill-all-restart-unevenly"):
            for name in fault.targets[0]:
                self.cluster.node(name).kill()
        elif kind == "pause-one":
            self.cluster.node(fault.targets[0][0]).pause()
        elif kind in POWER_FAULTS:
            for name in fault.targets[0]:  # every process of the machine dies at once
                self.cluster.node(name).kill()
            self._require_disks(kind).power_cut(fault.targets[0])
        elif kind == "lost-replies":
            for name in fault.targets[0]:
                self._require_firewall(kind).drop_replies(name)
        elif kind == "rolling-restart":
            pass  # done at heal time, node by node
        elif kind in LINK_FAULTS or (kind in NETWORK_FAULTS and self.links is not None):
            links = self._require_links(kind)
            names = [node.name for node in self.cluster.nodes]
            self._links_before = links.figures()
            links.set(link_table(kind, fault.targets, names))
            if kind == "slow-node-and-kill":
                self.cluster.node(fault.targets[1][0]).kill()
        elif kind == "delay":
            self._require_firewall(kind).set_netem(fault.targets[0][0], "delay", "100ms", "50ms")
        elif kind == "loss":
            self._require_firewall(kind).set_netem(fault.targets[0][0], "loss", "30%")
        self.history.nemesis(f"start-{kind}", [list(t) for t in fault.targets])
        self.applied.append(fault)
        if self.on_event:
            proxied = kind in NETWORK_FAULTS and self.links is not None
            served = " (through the link proxies)" if proxied else ""
            self.on_event(f"{kind} on {_describe_targets(fault)}{served}")
        return fault

    def heal(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in PARTITION_SHAPES or kind in REPLY_FAULTS:
            self._require_firewall(kind).heal()
        elif kind in ("kill-one", "kill-minority", "kill-all", *POWER_FAULTS):
            start_together([self.cluster.node(name) for name in fault.targets[0]])
        elif kind == "kill-all-restart-unevenly":
            order = fault.targets[0]
            start_together([self.cluster.node(name) for name in order], restart_offsets(fault))
        elif kind == "pause-one":
            self.cluster.node(fault.targets[0][0]).resume()
        elif kind == "rolling-restart":
            for name in fault.targets[0]:
                node = self.cluster.node(name)
                node.kill()
                node.start()
                wait_for_leader(self.cluster, timeout=self.leader_timeout)
        elif kind in LINK_FAULTS or (kind in NETWORK_FAULTS and self.links is not None):
            links = self._require_links(kind)
            table = links.table
            links.heal()
            self.link_effects.append(LinkEffect.between(kind, table, self._links_before, links))
            if kind == "slow-node-and-kill":
                self.cluster.node(fault.targets[1][0]).start()
        elif kind in NETWORK_FAULTS:
            self._require_firewall(kind).clear_netem(fault.targets[0][0])
        self.history.nemesis(f"heal-{kind}", [list(t) for t in fault.targets])
        if self.on_event:
            effect = self.link_effects[-1] if kind in LINK_FAULTS and self.link_effects else None
            self.on_event(f"healed {kind}" + (f" ({effect.describe()})" if effect else ""))

    def _resolve(self, fault: Fault) -> tuple[tuple[str, ...], ...]:
        kind = fault.kind
        names = [node.name for node in self.cluster.nodes]
        if kind == SLOW_LEADER:
            leader, _ = wait_for_leader(self.cluster, timeout=self.leader_timeout)
            return ((leader.name,),)
        if kind in LEADER_LINK_FAULTS:
            leader, _ = wait_for_leader(self.cluster, timeout=self.leader_timeout)
            others = [n for n in names if n != leader.name]
            # Drawn from the fault itself, so one schedule resolves the same way each time
            # the same node leads (the targets are recorded anyway, for replays).
            rng = random.Random(f"{kind}@{fault.at}")
            return leader_link_targets(kind, leader.name, others, rng)
        if kind in ("isolate-leader", "one-way-to-leader"):
            leader, _ = wait_for_leader(self.cluster, timeout=self.leader_timeout)
            others = [n for n in names if n != leader.name]
            if kind == "isolate-leader":
                return cut([leader.name], others)
            return tuple((other, leader.name) for other in others)
        raise HarnessError(f"fault {kind!r} has no targets")

    def _require_disks(self, kind: str) -> LossyDisks:
        if self.disks is None:
            raise CapabilityMissing(f"{kind} needs the nodes' data on lossy disks (power loss)")
        return self.disks

    def _require_links(self, kind: str) -> LinkProxies:
        if self.links is None:
            raise CapabilityMissing(
                f"{kind} needs link proxies on the cluster (a test that requires 'links', on "
                "the namespace host)"
            )
        return self.links

    def _require_firewall(self, kind: str) -> Firewall:
        if self.firewall is None:
            raise CapabilityMissing(f"{kind} needs the namespace host (network faults)")
        return self.firewall


def start_together(nodes: Sequence[Node], offsets: Sequence[float] | None = None) -> None:
    """Start nodes at the same time, or each ``offsets[i]`` seconds from now, each in its own
    thread: a store may not serve a single member until a quorum is back (etcd does not),
    so waiting for one node to serve before starting the next could wait forever."""
    errors: list[BaseException] = []
    began = time.monotonic()

    def start(node: Node, offset: float) -> None:
        time.sleep(max(0.0, began + offset - time.monotonic()))
        try:
            node.start()
        except BaseException as error:  # reported below, from the caller's thread
            errors.append(error)

    threads = [
        threading.Thread(target=start, args=(node, offsets[i] if offsets else 0.0), daemon=True)
        for i, node in enumerate(nodes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _describe_targets(fault: Fault) -> str:
    if fault.kind == "slow-node-and-kill":
        return f"{fault.targets[0][0]} slowed, {fault.targets[1][0]} killed"
    if fault.kind in PARTITION_SHAPES or (fault.kind in LINK_FAULTS and len(fault.targets[0]) == 2):
        return ", ".join(f"{a}->{b}" for a, b in fault.targets) or "nothing"
    return ", ".join(",".join(t) for t in fault.targets)
