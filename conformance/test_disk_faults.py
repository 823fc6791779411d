"""consensus-safety on the disk: acknowledged writes survive power cuts and damaged files.

A SIGKILL never tests durability: the kernel keeps what the killed process wrote. Here the
nodes' data directories are lossy filesystems (hosts.disks) that forget, at a power cut,
everything not synced (file data without fsync, names whose folder was not fsynced). Each
scenario makes its cut happen at the moment it matters, while writers stream, and then
reads every acknowledged write on every member. Damaged files: a stopped member's data
file gets a flipped bit, a truncation or a zeroed block where an acknowledged value lies;
the member must refuse it or repair it from its peers, never serve it.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_consensus.clients.cluster_ops import (
    majority,
    wait_for_leader,
    wait_for_same_applied_index,
)
from pytest_consensus.clients.history import History
from pytest_consensus.clients.load import KEY_PREFIX, WriteLoad
from pytest_consensus.clients.member_reads import MemberCheck, read_every_member
from pytest_consensus.clients.retry import RetryPolicy
from pytest_consensus.contract import Adapter, Capability, Cluster, Node
from pytest_consensus.contract.errors import NodeStartError
from pytest_consensus.contract.waiting import WaitTimeout
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.nemesis.faults import POWER_FAULTS, Fault, Nemesis, Schedule, cut
from pytest_consensus.nemesis.file_damage import damage_node_data
from pytest_consensus.plugin.fixtures import ClusterFactory
from pytest_consensus.plugin.profiles import active_profile
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import EvidenceKeeper

pytestmark = pytest.mark.consensus_rule("consensus-safety")

WRITE_POLICY = RetryPolicy(deadline=10.0, attempt_timeout=2.0)
WRITERS = 3
#: Seconds of writes before the first fault, and between the steps of a scenario.
WARM_UP = 1.0
STEP = 1.5
#: Seconds a node stays without power before it is started again.
DARK = 0.5
#: Writes each writer makes at most (a bound; time ends them first).
MAX_WRITES = 5000


def stream_writers(cluster: Cluster, history: History, seed: int) -> WriteLoad:
    """Writers of unique keys through the retry policy, in threads, sharing one client per
    member; every acknowledgement is in the history with its time."""
    return WriteLoad(
        cluster,
        history,
        workers=WRITERS,
        seed=seed,
        policy=WRITE_POLICY,
        max_writes_per_worker=MAX_WRITES,
        shared_connections=True,
    )


@dataclass(frozen=True)
class Cut:
    """Which nodes lost power when (history seconds), and the window whose writes the cut
    must not lose: acknowledged from ``exposed_from`` until the cut."""

    nodes: tuple[str, ...]
    at: float
    exposed_from: float
    exposed: str


@contextmanager
def evidence_on_failure(
    evidence: EvidenceKeeper, history: History, nemesis: Nemesis | None, allocation: Allocation
) -> Iterator[None]:
    """Keep the history, faults and node logs of a scenario that fails before its checks
    (no leader after the cut, a node that does not come back), and name them."""
    try:
        yield
    except (WaitTimeout, AssertionError, NodeStartError) as error:
        faults = list(nemesis.applied) if nemesis is not None else []
        names = [host.name for host in allocation.hosts]
        cut = sorted({n for f in faults if f.kind in POWER_FAULTS for n in f.targets[0]})
        lost = f" {what_the_disks_lost(losses(allocation, cut))}." if cut else ""
        kept = evidence.keep(history, Schedule(0, names, faults), allocation.hosts)
        pytest.fail(
            f"{error}\n{lost} (history, faults, node logs and loss reports: {kept})",
            pytrace=False,
        )


def leader_of(cluster: Cluster) -> Node:
    return wait_for_leader(cluster)[0]


def run_power_scenario(
    scenario: str, cluster: Cluster, nemesis: Nemesis, rng: random.Random
) -> Cut:
    """Apply ``scenario``'s faults in order (writers run meanwhile) and heal them all."""
    names = [node.name for node in cluster.nodes]
    history = nemesis.history
    time.sleep(WARM_UP)
    if scenario in ("whole-cluster", "minority"):
        victims = names if scenario == "whole-cluster" else _minority(names, rng)
        kind = "power-cut-all" if scenario == "whole-cluster" else "power-cut-minority"
        started = history.now()
        fault = nemesis.apply(Fault(kind, 0, DARK, (tuple(victims),)))
        cut_at = history.now()
        time.sleep(DARK)
        nemesis.heal(fault)
        time.sleep(STEP)
        return Cut(tuple(victims), cut_at, started - 1.0, "in the second before the cut")
    # One node loses power while the others diverge: a minority is cut off while writes
    # commit on the rest; then the leader loses power, that minority comes back, and the
    # other part of the old majority is cut off or paused. The restarted leader and the
    # returning minority are a majority: if the leader lost acknowledged writes with its
    # power, they elect a log without them.
    leader = leader_of(cluster).name
    followers = [n for n in names if n != leader]
    rng.shuffle(followers)
    size = (len(names) - 1) // 2
    returning, held = followers[:size], followers[size : 2 * size]
    away = nemesis.apply(
        Fault("random-halves", 0, 0, cut(returning, [n for n in names if n not in returning]))
    )
    exposed_from = history.now()
    time.sleep(STEP)
    power = nemesis.apply(Fault("power-cut-one", 0, DARK, ((leader,),)))
    cut_at = history.now()
    nemesis.heal(away)
    if scenario == "one-while-another-is-paused":
        holds = [nemesis.apply(Fault("pause-one", 0, 0, ((name,),))) for name in held]
    else:
        others = [n for n in names if n not in held]
        holds = [nemesis.apply(Fault("random-halves", 0, 0, cut(held, others)))]
    time.sleep(DARK)
    nemesis.heal(power)
    time.sleep(STEP * 2)
    for hold in holds:
        nemesis.heal(hold)
    time.sleep(STEP)
    return Cut((leader,), cut_at, exposed_from, f"while {', '.join(returning)} was cut off")


def _minority(names: Sequence[str], rng: random.Random) -> list[str]:
    return sorted(rng.sample(list(names), max(1, len(names) - majority(len(names)))))


#: What each scenario needs beyond a power cut; the profile picks the scenarios.
SCENARIO_NEEDS = {
    "whole-cluster": (),
    "minority": (),
    "one-while-another-is-cut-off": ("network",),
    "one-while-another-is-paused": ("pause", "network"),
}
SCENARIOS = [
    pytest.param(name, marks=pytest.mark.consensus_requires(*SCENARIO_NEEDS[name]), id=name)
    for name in active_profile().power_cuts
]


@pytest.mark.consensus_requires("kill", "restart", "leader", "strong", "power-loss")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_acknowledged_writes_survive_a_power_cut(
    scenario: str,
    request: pytest.FixtureRequest,
    consensus_cluster_factory: ClusterFactory,
    consensus_adapter: Adapter,
    consensus_settings: Settings,
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """Nodes lose power (their processes die and their disks forget what was not synced)
    while writers stream: the whole cluster at once, a minority, or the leader while a
    minority is cut off and the rest of the old majority is then cut off or paused. Every
    acknowledged write must be on every member afterwards, and replicas must agree."""
    evidence = EvidenceKeeper(tmp_path / "failing-runs")
    with consensus_cluster_factory(lossy_disks=True) as (cluster, allocation):
        history = History()
        nemesis = Nemesis(cluster, history, allocation.firewall, disks=allocation.disks)
        writers = stream_writers(cluster, history, consensus_rng.randrange(2**32))
        with evidence_on_failure(evidence, history, nemesis, allocation), writers.running():
            power_cut = run_power_scenario(scenario, cluster, nemesis, consensus_rng)
            wait_for_leader(cluster, timeout=consensus_settings.leader_timeout)
            nemesis.check()
        acknowledged = writers.acknowledged()
        exposed = [
            k for k, w in acknowledged.items() if power_cut.exposed_from <= w.at <= power_cut.at
        ]
        problems = []
        if not exposed:
            problems.append(
                f"no write was acknowledged {power_cut.exposed} ({power_cut.exposed_from:.1f}-"
                f"{power_cut.at:.1f} s), although a majority was up: the cut could not test "
                "durability"
            )
        check = read_every_member(
            cluster,
            acknowledged,
            stale_reads=consensus_adapter.has(Capability.STALE_READ),
            scan_prefix=KEY_PREFIX if consensus_adapter.has(Capability.SCAN) else None,
        )
        lost = losses(allocation, power_cut.nodes)
        request.node.user_properties.append(
            (
                "power_cut",
                {
                    "scenario": scenario,
                    "nodes": list(power_cut.nodes),
                    "window": power_cut.exposed,
                    "exposed": len(exposed),
                    "acknowledged": len(acknowledged),
                    "names_lost": sum(len(report["names"]) for report in lost.values()),
                    "files_lost": sum(len(report["data"]) for report in lost.values()),
                    "missing": len({m.key for m in check.missing}),
                },
            )
        )
        if check.stalled:
            problems.append(f"after the power cut ({scenario}) {check.stalled}")
        if check.missing:
            problems.append(_describe_losses(check, power_cut, scenario))
        if consensus_adapter.has(Capability.DIGEST) and not check.stalled:
            converged = wait_for_same_applied_index(cluster)
            if not converged.digests_agree:
                problems.append(
                    f"replicas at one applied index hold different states after the power "
                    f"cut: {converged.describe()}"
                )
        if problems:
            applied = Schedule(0, [n.name for n in cluster.nodes], list(nemesis.applied))
            kept = evidence.keep(history, applied, allocation.hosts)
            pytest.fail(
                "; ".join(problems)
                + f". {what_the_disks_lost(lost)}"
                + f" (history, faults, node logs and loss reports: {kept})",
                pytrace=False,
            )


def losses(allocation: Allocation, nodes: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """Each node's report of what its disk lost at its last power cut."""
    found = {}
    for host in allocation.hosts:
        reports = sorted(host.log_dir.glob("power-cut-*-lost.json"))
        if host.name in nodes and reports:
            found[host.name] = json.loads(reports[-1].read_text())
    return found


def what_the_disks_lost(lost_by_node: dict[str, dict[str, list[str]]]) -> str:
    """A line per node of what its disk lost at its last power cut (the filesystem's
    report: names whose folder was not synced, files with unsynced bytes)."""
    lines = []
    for name, lost in lost_by_node.items():
        names, data = lost.get("names", []), lost.get("data", [])
        shown = [*names[:3], *data[:3]]
        lines.append(
            f"{name}'s disk lost at the cut {len(names)} unsynced name(s) and "
            f"{len(data)} file(s) with unsynced bytes" + (f": {'; '.join(shown)}" if shown else "")
        )
    return "; ".join(lines) or "the disks lost nothing unsynced at the cut"


def _describe_losses(check: MemberCheck, power_cut: Cut, scenario: str) -> str:
    """Which members lack which writes: members that lack the same ones are named together,
    with the lost writes acknowledged last before the cut (the ones a sync would keep)."""
    lost_keys = sorted({m.key for m in check.missing})
    groups: dict[tuple[str, ...], list[str]] = {}
    for node in check.members:
        missing = check.missing_on(node)
        if missing:
            groups.setdefault(tuple(sorted(m.key for m in missing)), []).append(node)
    parts = []
    for keys, nodes in groups.items():
        missing = sorted(check.missing_on(nodes[0]), key=lambda m: m.acknowledged_at)
        before = [m for m in missing if m.acknowledged_at <= power_cut.at]
        latest = ", ".join(
            f"{m.key}={m.value!r} (acknowledged {power_cut.at - m.acknowledged_at:.2f} s before "
            f"the cut, read {m.read!r})"
            for m in before[-3:]
        )
        after = len(missing) - len(before)
        parts.append(
            f"{' and '.join(nodes)} lack {len(keys)}"
            + (f", the last acknowledged before the cut: {latest}" if before else "")
            + (f" ({after} of them acknowledged after the cut)" if after else "")
        )
    return (
        f"{len(lost_keys)} of {check.keys} acknowledged writes lost after a power cut "
        f"({scenario}) of {', '.join(power_cut.nodes)} at {power_cut.at:.1f} s, read on "
        f"every member at the {check.level.value} level: {'; '.join(parts)}. A store must "
        "sync a write (file and folder) before it acknowledges it"
    )


#: Writes made before a member is stopped and its file damaged.
WRITES_BEFORE_DAMAGE = 60
#: Seconds a restarted member has to refuse its damaged file by exiting.
REFUSAL_GRACE = 3.0


@pytest.mark.consensus_requires("kill", "restart", "leader", "strong", "data-files")
@pytest.mark.parametrize("damage", active_profile().damages)
def test_a_damaged_data_file_is_refused_or_repaired(
    damage: str,
    request: pytest.FixtureRequest,
    consensus_cluster_factory: ClusterFactory,
    consensus_adapter: Adapter,
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """A follower is killed, one of its data files damaged where an acknowledged value lies
    (a flipped bit, a truncation there, or its 4 KiB block zeroed), and it is started again.
    It may refuse to start, or come back with its peers' state; it must not serve the
    damaged state, and no member may lose an acknowledged write."""
    evidence = EvidenceKeeper(tmp_path / "failing-runs")
    with consensus_cluster_factory() as (cluster, allocation):
        history = History()
        writers = stream_writers(cluster, history, consensus_rng.randrange(2**32))
        leader = leader_of(cluster)
        victim = consensus_rng.choice([n for n in cluster.nodes if n is not leader])
        with writers.running():
            _wait_for_acknowledgements(writers, WRITES_BEFORE_DAMAGE)
        history.nemesis("kill", [victim.name])
        victim.kill()
        acknowledged = writers.acknowledged()
        done = damage_node_data(
            victim.host,
            consensus_adapter.data_files,
            damage,
            [w.value for w in acknowledged.values()],
            consensus_rng,
        )
        history.nemesis(f"damage-{damage}", [victim.name, done.relative, done.offset])
        refused = _start_refused(victim)
        outcome = "refused to start" if refused else "started again"
        members = [n for n in cluster.nodes if n is not victim or not refused]
        check = read_every_member(
            cluster,
            acknowledged,
            stale_reads=consensus_adapter.has(Capability.STALE_READ),
            members=members,
            scan_prefix=KEY_PREFIX if consensus_adapter.has(Capability.SCAN) else None,
        )
        if not refused and not check.missing_on(victim.name):
            outcome += " and holds every acknowledged write"
        request.node.user_properties.append(
            ("disk_damage", {"damage": done.describe(), "node": victim.name, "outcome": outcome})
        )
        problems = []
        if check.stalled:
            problems.append(f"after {done.describe()} on {victim.name}, {check.stalled}")
        if check.missing:
            shown = ", ".join(m.describe() for m in check.missing[:8])
            then = "refused to start" if refused else "started"
            problems.append(
                f"{len(check.missing)} acknowledged writes missing or changed after "
                f"{done.describe()} on {victim.name}, which then {then}: "
                f"{shown}. A store must notice a damaged file (refuse it, or rebuild the "
                "replica from its peers), never serve it"
            )
        if not refused and not check.stalled and consensus_adapter.has(Capability.DIGEST):
            converged = wait_for_same_applied_index(cluster)
            if not converged.digests_agree:
                problems.append(
                    f"after {done.describe()} on {victim.name} it started and reached the "
                    f"others' applied index with a different state: {converged.describe()}"
                )
        if problems:
            applied = Schedule(0, [n.name for n in cluster.nodes], [])
            kept = evidence.keep(history, applied, allocation.hosts)
            shutil.copy2(done.path, kept / f"damaged-{done.path.name}")
            pytest.fail(
                "; ".join(problems) + f" (history, node logs and the damaged file: {kept})",
                pytrace=False,
            )


def _wait_for_acknowledgements(writers: WriteLoad, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(writers.acknowledged()) < count:
        if time.monotonic() > deadline:
            pytest.fail(
                f"only {len(writers.acknowledged())} of {count} writes were acknowledged in "
                f"{timeout:.0f} s with every node up",
                pytrace=False,
            )
        time.sleep(0.05)


def _start_refused(node: Node) -> bool:
    """Start ``node`` on its damaged file: True when it refused (exited, at once or within
    a few seconds of serving), which is how a store says it noticed."""
    try:
        node.start()
    except NodeStartError:
        return True
    deadline = time.monotonic() + REFUSAL_GRACE
    while time.monotonic() < deadline:
        if not node.is_running():
            return True
        time.sleep(0.1)
    return False
