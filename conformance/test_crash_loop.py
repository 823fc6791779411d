"""The crash loop under load: one run, two verdicts.

Unpaced writers push the store while one member after another is SIGKILLed and restarted
(pytest_consensus.nemesis.crash_loop), with the store set to snapshot often where its
adapter can. Then the writes stop, the members settle, and each member's own state is read:

- consensus-safety: every acknowledged write is on every member. A member missing one is
  named, with the key, when it was acknowledged and the kills around it.
- fsm-determinism: members at one applied index hold one state (equal digests). A member
  that skipped an entry it had applied stands at the same index with another state. Where
  the store can digest a past point (capability ``digest-at``), the members that answer are
  also compared every few seconds while the loop runs (pytest_consensus.clients.digest_watch).

The loop runs once per adapter (a session fixture); both tests read its outcome.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pytest_consensus.clients.cluster_ops import (
    Convergence,
    running_statuses,
    wait_for_leader,
    wait_for_same_applied_index,
)
from pytest_consensus.clients.digest_watch import DigestWatch, WatchFigures
from pytest_consensus.clients.history import History
from pytest_consensus.clients.load import KEY_PREFIX, LoadFigures, WriteLoad
from pytest_consensus.clients.member_reads import MemberCheck, read_every_member
from pytest_consensus.clients.retry import RetryPolicy
from pytest_consensus.contract import Adapter, Capability, Cluster, Node
from pytest_consensus.contract.errors import CapabilityMissing, NodeStartError
from pytest_consensus.contract.waiting import WaitTimeout
from pytest_consensus.hosts.providers import HostProvider
from pytest_consensus.nemesis.crash_loop import CrashLoop, CrashLoopPlan, Kill, kills_around
from pytest_consensus.nemesis.faults import Fault, Schedule
from pytest_consensus.plugin.fixtures import ClusterFactory
from pytest_consensus.plugin.keys import evidence_folders_key
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import EvidenceKeeper

WRITE_POLICY = RetryPolicy(deadline=10.0, attempt_timeout=2.0)
#: Writer threads, each with its own connection to every member.
WRITERS = 8
#: Seconds of writes before the first kill.
WARM_UP = 2.0
#: Seconds for the members to reach one applied index with the same digests, after the
#: reads (which waited for them to settle already). Generous: a digest may read every key
#: the loop wrote (ZooKeeper's: seconds per ten thousand keys), and a correct store waits
#: only as long as its digests take.
SETTLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class CrashLoopOutcome:
    """What one crash loop did and what reading every member afterwards found."""

    kills: tuple[Kill, ...]
    load: LoadFigures
    check: MemberCheck | None
    convergence: Convergence | None
    #: The members never settled at one applied index (a finding), or None.
    stalled: str | None
    #: A member that did not come back from a kill (its start error), or None.
    restart_failed: str | None
    evidence: Path | None
    snapshots: str
    #: The comparisons made while the loop ran (None: the store cannot digest a past point).
    watch: WatchFigures | None = None

    def describe_loop(self) -> str:
        catching_up = sum(k.catching_up for k in self.kills)
        watched = f"; {self.watch.describe()} while it ran" if self.watch else ""
        return (
            f"{len(self.kills)} SIGKILLs ({catching_up} of a member still catching up) under "
            f"{self.load.describe()}; {self.snapshots}{watched}"
        )

    def figures(self) -> dict[str, object]:
        return {
            "kills": len(self.kills),
            "catching_up": sum(k.catching_up for k in self.kills),
            "seconds": round(self.load.seconds, 1),
            "acknowledged": self.load.acknowledged,
            "rate": round(self.load.rate),
            "missing": len({m.key for m in self.check.missing}) if self.check else None,
            "digests_agree": self.digests_agree(),
            "compared_while_running": self.watch.compared if self.watch else None,
            "diverged_while_running": len(self.watch.divergences) if self.watch else None,
        }

    def digests_agree(self) -> bool | None:
        """Whether the members' digests agreed; None when they were not compared (no
        convergence, or a member reported no digest: the fsm-determinism test says n/a)."""
        if self.convergence is None:
            return None
        try:
            return self.convergence.digests_agree
        except CapabilityMissing:
            return None

    @property
    def failed(self) -> bool:
        """Whether either test fails on it (then its evidence is kept)."""
        return bool(
            self.restart_failed
            or self.stalled
            or (self.check is not None and self.check.missing)
            or self.digests_agree() is False
            or (self.watch is not None and self.watch.divergences)
        )


def run_crash_loop(
    adapter: Adapter, settings: Settings, hosts: HostProvider, evidence: EvidenceKeeper
) -> CrashLoopOutcome:
    """Start a cluster snapshotting often, run the loop under load, settle and read."""
    loop_adapter = adapter.with_frequent_snapshots()
    factory = ClusterFactory(loop_adapter, settings, hosts)
    rng = random.Random(settings.seed_for("crash-loop"))
    plan = CrashLoopPlan(seconds=settings.profile.crash_loop_seconds)
    with factory() as (cluster, allocation):
        history = History()
        load = WriteLoad(
            cluster, history, workers=WRITERS, seed=rng.randrange(2**32), policy=WRITE_POLICY
        )
        loop = CrashLoop(cluster, history, plan, rng)
        watch = DigestWatch(cluster, history) if adapter.has(Capability.DIGEST_AT) else None
        restart_failed = stalled = None
        check = convergence = None
        with ExitStack() as running:
            running.enter_context(load.running())
            if watch is not None:
                running.enter_context(watch.running())
            try:  # the factory waited for a leader
                time.sleep(WARM_UP)
                loop.run()
            except NodeStartError as error:
                restart_failed = str(error)
        if restart_failed is None:
            # Runs in a fixture's setup, where a timeout would read as the harness's error:
            # members that do not settle or answer are the store's finding, recorded here.
            try:
                check, convergence, stalled = _verify(adapter, settings, cluster, load)
            except WaitTimeout as error:  # no leader
                stalled = str(error)
        outcome = CrashLoopOutcome(
            kills=tuple(loop.kills),
            load=load.figures(),
            check=check,
            convergence=convergence,
            stalled=stalled,
            restart_failed=restart_failed,
            evidence=None,
            snapshots=loop_adapter.snapshot_setting(),
            watch=watch.figures if watch else None,
        )
        if outcome.failed:
            names = [node.name for node in cluster.nodes]
            faults = [
                Fault("kill-one", k.at, k.restarted_at - k.at, ((k.node,),)) for k in loop.kills
            ]
            kept = evidence.keep(history, Schedule(0, names, faults), allocation.hosts)
            outcome = replace(outcome, evidence=kept)
        return outcome


def _verify(
    adapter: Adapter, settings: Settings, cluster: Cluster, load: WriteLoad
) -> tuple[MemberCheck, Convergence | None, str | None]:
    """A leader, then every member's own copy of the acknowledged writes, then (where the
    store has digests) the members' digests at one applied index; and why the members did
    not settle, if they did not."""
    wait_for_leader(cluster, timeout=settings.leader_timeout)
    check = read_every_member(
        cluster,
        load.acknowledged(),
        stale_reads=adapter.has(Capability.STALE_READ),
        scan_prefix=KEY_PREFIX if adapter.has(Capability.SCAN) else None,
    )
    convergence, stalled = None, check.stalled
    if adapter.has(Capability.DIGEST):
        # Members that stopped behind (a finding the other test reports) are left out: the
        # rest still stand at one applied index, where they must hold one state.
        compared = list(cluster.nodes) if stalled is None else _furthest(cluster)
        if len(compared) >= 2:
            try:
                convergence = wait_for_same_applied_index(
                    cluster, timeout=SETTLE_TIMEOUT, nodes=compared
                )
            except WaitTimeout as error:
                stalled = stalled or str(error)
    return check, convergence, stalled


def _furthest(cluster: Cluster) -> list[Node]:
    """The members that answer at the highest applied index any of them reports."""
    indexes = {s.node: s.applied_index for s in running_statuses(cluster.nodes)}
    known = [index for index in indexes.values() if index is not None]
    names = {name for name, index in indexes.items() if known and index == max(known)}
    return [node for node in cluster.nodes if node.name in names]


@pytest.fixture(scope="session")
def crash_loop_outcome(
    consensus_adapter: Adapter,
    consensus_settings: Settings,
    consensus_hosts: HostProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> CrashLoopOutcome:
    """The crash loop's outcome for this adapter, run once for both of its tests."""
    evidence = EvidenceKeeper(tmp_path_factory.mktemp(f"crash-loop-{consensus_adapter.name}"))
    return run_crash_loop(consensus_adapter, consensus_settings, consensus_hosts, evidence)


def _record(request: pytest.FixtureRequest, outcome: CrashLoopOutcome) -> None:
    request.node.user_properties.append(("crash_loop", outcome.figures()))


def _keep(request: pytest.FixtureRequest, outcome: CrashLoopOutcome) -> None:
    """The loop's evidence is a session fixture's, outside the test's tmp_path: register it,
    so that a failure keeps it beyond pytest's temp-folder rotation."""
    if outcome.evidence is not None:
        request.node.stash.setdefault(evidence_folders_key, []).append(outcome.evidence)


def _evidence(outcome: CrashLoopOutcome) -> str:
    return f" (history, kills and node logs: {outcome.evidence})" if outcome.evidence else ""


@pytest.mark.consensus_rule("consensus-safety")
@pytest.mark.consensus_requires("kill", "restart", "leader", "strong")
def test_every_member_keeps_every_acknowledged_write_through_a_crash_loop(
    request: pytest.FixtureRequest, crash_loop_outcome: CrashLoopOutcome
) -> None:
    """Members killed one after another (some while still catching up) under unpaced writes
    come back with every write acknowledged, read on each member from its own state."""
    outcome = crash_loop_outcome
    _record(request, outcome)
    _keep(request, outcome)
    if outcome.restart_failed:
        pytest.fail(
            f"a member did not come back from a SIGKILL in the crash loop "
            f"({outcome.describe_loop()}): {outcome.restart_failed}{_evidence(outcome)}",
            pytrace=False,
        )
    if outcome.load.acknowledged == 0:
        pytest.fail(
            f"no write was acknowledged during the crash loop ({outcome.describe_loop()}): a "
            f"majority was up all along, so the store stopped serving{_evidence(outcome)}",
            pytrace=False,
        )
    if outcome.check is not None and outcome.check.missing:
        # Members that never settled were read all the same: what each lacks comes first.
        stalled = f"; the members did not settle: {outcome.stalled}" if outcome.stalled else ""
        pytest.fail(
            _describe_missing(outcome, outcome.check) + stalled + _evidence(outcome),
            pytrace=False,
        )
    if outcome.check is None or outcome.stalled:
        pytest.fail(
            f"after the crash loop ({outcome.describe_loop()}) the members did not settle: "
            f"{outcome.stalled}{_evidence(outcome)}",
            pytrace=False,
        )


def _describe_missing(outcome: CrashLoopOutcome, check: MemberCheck) -> str:
    """Per member: how many acknowledged writes it lacks, the first few with the time each
    was acknowledged and the kills around it."""
    parts = []
    for node in check.members:
        missing = sorted(check.missing_on(node), key=lambda m: m.acknowledged_at)
        if not missing:
            continue
        shown = []
        for write in missing[:3]:
            around = kills_around(list(outcome.kills), write.acknowledged_at)
            kills = "; ".join(k.describe() for k in around) or "no kill within 5 s"
            shown.append(
                f"{write.key}={write.value!r} acknowledged at {write.acknowledged_at:.2f} s, "
                f"read {write.read!r} (kills around it: {kills})"
            )
        parts.append(f"{node} lacks {len(missing)}: " + "; ".join(shown))
    lost = len({m.key for m in check.missing})
    return (
        f"{lost} of {check.keys} acknowledged writes missing on a member after the crash loop "
        f"({outcome.describe_loop()}), each member read at the {check.level.value} level: "
        + " | ".join(parts)
    )


@pytest.mark.consensus_rule("fsm-determinism")
@pytest.mark.consensus_requires("kill", "restart", "leader", "strong", "digest")
def test_members_at_one_applied_index_agree_after_a_crash_loop(
    request: pytest.FixtureRequest, crash_loop_outcome: CrashLoopOutcome
) -> None:
    """After the crash loop the members reach one applied index with one digest: a member
    that lost or skipped an applied entry in a restart holds another state there."""
    outcome = crash_loop_outcome  # its figures are recorded once, by the other test
    _keep(request, outcome)
    if outcome.watch and outcome.watch.divergences:
        first = outcome.watch.divergences[0]
        around = kills_around(list(outcome.kills), first.at, before=10.0, after=0.0)
        kills = "; ".join(k.describe() for k in around) or "no kill in the 10 s before"
        pytest.fail(
            f"members diverged while the crash loop ran ({outcome.describe_loop()}): "
            f"{first.describe()} (kills before it: {kills}); a member that skipped or lost "
            f"an entry it had applied, in a restart, is the likely cause{_evidence(outcome)}",
            pytrace=False,
        )
    if outcome.convergence is None:
        reason = outcome.restart_failed or outcome.stalled or "the members were not compared"
        pytest.skip(
            f"n/a: the members could not be compared after the crash loop ({reason}); "
            "the consensus-safety crash-loop test reports it"
        )
    try:
        agree = outcome.convergence.digests_agree
    except CapabilityMissing as missing:
        pytest.skip(f"n/a: {missing}")
    if not agree:
        left_out = (
            f" (the members at the furthest applied index; {outcome.stalled})"
            if outcome.stalled
            else ""
        )
        pytest.fail(
            f"members at one applied index hold different states after the crash loop "
            f"({outcome.describe_loop()}): {outcome.convergence.describe()}{left_out}; a "
            f"member that skipped or lost an entry it had applied, in a restart, is the "
            f"likely cause{_evidence(outcome)}",
            pytrace=False,
        )
