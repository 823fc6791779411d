"""consensus-safety: acknowledged writes survive crashes.

Here: SIGKILL of one node (the leader, or a follower) and its restart from its data
directory loses no acknowledged write, and the restarted replica catches up.
"""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path

import pytest

from pytest_consensus.clients.cluster_ops import (
    LeaderObserver,
    strong_read_anywhere,
    wait_for_leader,
    wait_for_same_applied_index,
)
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.clients.member_reads import Acknowledged, MemberCheck, read_every_member
from pytest_consensus.clients.retry import RetryingClient, RetryPolicy, spread_clients
from pytest_consensus.contract import Capability, Cluster, Node, ReadLevel
from pytest_consensus.contract.errors import CapabilityMissing, ConsensusError
from pytest_consensus.contract.waiting import WaitTimeout, wait_for
from pytest_consensus.nemesis.faults import (
    Fault,
    Nemesis,
    Schedule,
    cut,
    restart_offsets,
    static_targets,
)
from pytest_consensus.nemesis.search import schedules, search_schedules
from pytest_consensus.nemesis.workload import run_through_schedule
from pytest_consensus.plugin.fixtures import ClusterFactory, ScheduleFactory
from pytest_consensus.plugin.keys import replayable_id
from pytest_consensus.plugin.profiles import active_profile
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import EvidenceKeeper

pytestmark = pytest.mark.consensus_rule("consensus-safety")

WRITES_BEFORE_CRASH = 20
WRITES_WHILE_DOWN = 10
CATCH_UP_TIMEOUT = 30.0


def write_acknowledged(
    clients: list[RecordingClient], prefix: str, count: int, timeout: float
) -> dict[str, str]:
    """Write ``count`` keys round-robin over the clients; return those acknowledged."""
    acknowledged = {}
    for number in range(count):
        client = clients[number % len(clients)]
        key, value = f"{prefix}-{number}", f"{prefix}-value-{number}"
        try:
            client.put(key, value, timeout=timeout)
        except ConsensusError:
            continue
        acknowledged[key] = value
    return acknowledged


def pick_victim(cluster: Cluster, which: str, leader: Node, rng_choice: int) -> Node:
    if which == "leader":
        return leader
    followers = [node for node in cluster.nodes if node is not leader]
    return followers[rng_choice % len(followers)]


@pytest.mark.consensus_requires("kill", "restart", "leader", "strong", "stale")
@pytest.mark.parametrize("which", ["leader", "follower"])
def test_acknowledged_writes_survive_kill_and_restart_of_one_node(
    which: str,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_settings: Settings,
    consensus_rng: random.Random,
) -> None:
    """Every write acknowledged before and during a node's SIGKILL is readable after restart."""
    timeout = consensus_settings.operation_timeout
    leader, _ = wait_for_leader(consensus_cluster)
    acknowledged = write_acknowledged(consensus_clients, "before", WRITES_BEFORE_CRASH, timeout)
    assert acknowledged, "no write was acknowledged before the crash; cannot test durability"

    victim = pick_victim(consensus_cluster, which, leader, consensus_rng.randrange(99))
    consensus_clients[0].history.nemesis("kill", [victim.name])
    victim.kill()
    survivors = [n for n in consensus_cluster.nodes if n is not victim]
    wait_for_leader(consensus_cluster, among=survivors)
    surviving_clients = [c for c in consensus_clients if c.node != victim.name]
    acknowledged |= write_acknowledged(surviving_clients, "during", WRITES_WHILE_DOWN, timeout)

    consensus_clients[0].history.nemesis("restart", [victim.name])
    victim.restart()
    wait_for_leader(consensus_cluster)

    def strong_read(key: str) -> str | None:
        return wait_for(
            lambda: strong_read_anywhere(consensus_clients, key, timeout),
            timeout=CATCH_UP_TIMEOUT,
            what=f"a strong read of {key}",
        )[0]

    lost = {
        key: (value, read)
        for key, value in acknowledged.items()
        if (read := strong_read(key)) != value
    }
    if lost:
        pytest.fail(
            f"{len(lost)} of {len(acknowledged)} acknowledged writes lost after SIGKILL and "
            f"restart of {which} {victim.name}: "
            + ", ".join(
                f"{k} (acknowledged {v!r}, read {r!r})" for k, (v, r) in sorted(lost.items())
            ),
            pytrace=False,
        )
    wait_for_same_applied_index(consensus_cluster, timeout=CATCH_UP_TIMEOUT)
    victim_client = next(c for c in consensus_clients if c.node == victim.name)
    missing = [
        key
        for key, value in acknowledged.items()
        if victim_client.get(key, level=ReadLevel.STALE, timeout=timeout) != value
    ]
    if missing:
        pytest.fail(
            f"restarted {victim.name} has caught up to the cluster's applied index but its "
            f"replica lacks {len(missing)} acknowledged writes: {', '.join(sorted(missing))}",
            pytrace=False,
        )


SEARCH_KINDS = (
    "isolate-leader",
    "kill-one",
    "kill-minority",
    "random-halves",
    "pause-one",
    "kill-all",
    "rolling-restart",
    # Jepsen's NATS 2.12.1 analysis lost acknowledged writes to one node's crash among
    # delayed links: the slowed node may be the one a new quorum needs.
    "slow-node-and-kill",
    "flapping-link",
    "one-way-blackhole",
)
SEARCH_POLICY = RetryPolicy(deadline=10.0, attempt_timeout=2.0)


def writes_survive(
    factory: ClusterFactory,
    schedule: Schedule,
    evidence: EvidenceKeeper | None = None,
    *,
    after: float = 1.0,
    compare_digests: bool = False,
) -> str | None:
    """Puts of unique keys through the retry policy during ``schedule`` (and ``after``
    seconds past it); afterwards every acknowledged put must be on every member, read from
    its own state (and, with
    ``compare_digests``, replicas at one applied index hold one state). Returns what went
    wrong, or None; a failing run's history, schedule and node logs are kept by
    ``evidence``, and the message names them."""
    with factory(link_proxies=True) as (cluster, allocation):
        history = History()
        nemesis = Nemesis(cluster, history, allocation.firewall, links=allocation.links)
        clients = {node.name: cluster.client(node) for node in cluster.nodes}
        writers = spread_clients(clients, history, SEARCH_POLICY, 3, random.Random(schedule.seed))

        def put(writer: RetryingClient, rng: random.Random, number: int) -> None:
            writer.put(f"w{writers.index(writer)}-{number}", f"v{number}")

        run_through_schedule(nemesis, schedule, writers, put, seed=schedule.seed, after=after)
        try:
            nemesis.check()  # the harness's own errors propagate: no verdict on the store
        except AssertionError as failed:
            return str(failed)
        wait_for_leader(cluster)
        for client in clients.values():
            client.close()
        # Every member is read from its own state: a write lost on one member is not seen
        # through another, and a strong read is answered by whichever member serves it.
        acknowledged = {
            str(e.key): Acknowledged(str(e.value), e.time)
            for e in history.events
            if e.type == "ok" and e.f == "put"
        }
        check = read_every_member(
            cluster,
            acknowledged,
            stale_reads=factory.adapter.has(Capability.STALE_READ),
            scan_prefix="w" if factory.adapter.has(Capability.SCAN) else None,
        )
        faults = ", ".join(f"{f.kind}@{f.at:.1f}s" for f in nemesis.applied)
        problems = []
        if check.missing:
            problems.append(describe_missing(check, f"under [{faults}]"))
        if check.stalled:
            problems.append(f"after [{faults}] {check.stalled}")
        if compare_digests and not check.stalled:
            converged = wait_for_same_applied_index(cluster, timeout=CATCH_UP_TIMEOUT)
            if not converged.digests_agree:
                problems.append(
                    f"replicas at one applied index hold different states after [{faults}]: "
                    f"{converged.describe()}; every node was restarted from its own data, so "
                    "what it recovered from disk (log, snapshot, term) is the likely cause"
                )
        if not problems:
            return None
        message = "; ".join(problems)
        if evidence is not None:
            applied = Schedule(schedule.seed, schedule.nodes, list(nemesis.applied))
            kept = evidence.keep(history, applied, allocation.hosts)
            message += f" (history, schedule and node logs: {kept})"
        return message


def describe_missing(check: MemberCheck, when: str) -> str:
    """How many acknowledged writes are missing ``when``, and which members lack which (the
    first few keys each, with what the member read instead)."""
    lost = sorted({m.key for m in check.missing})
    per_member = "; ".join(
        f"{node} lacks {len(missing)}: " + ", ".join(m.describe() for m in missing[:5])
        for node in check.members
        if (missing := check.missing_on(node))
    )
    return (
        f"{len(lost)} of {check.keys} acknowledged writes lost {when}, read on every member "
        f"at the {check.level.value} level ({per_member})"
    )


@pytest.mark.consensus_requires("kill", "restart", "leader", "strong")
@pytest.mark.parametrize("crash", active_profile().crashes)
def test_acknowledged_writes_survive_every_kind_of_crash(
    crash: str,
    consensus_cluster_factory: ClusterFactory,
    consensus_settings: Settings,
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """Writes acknowledged while a minority, every node at once, or each node in turn is
    killed and restarted are all readable afterwards."""
    nodes = [f"n{i + 1}" for i in range(consensus_settings.nodes)]
    seconds = consensus_settings.profile.fault_seconds[1]
    schedule = Schedule(
        consensus_rng.randrange(2**32),
        nodes,
        [Fault(crash, 1.0, seconds, static_targets(crash, nodes, consensus_rng))],
    )
    evidence = EvidenceKeeper(tmp_path / "failing-runs")
    failure = writes_survive(consensus_cluster_factory, schedule, evidence)
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.mark.consensus_requires("kill", "restart", "pause", "leader", "strong", "network", "links")
def test_searched_fault_schedules_lose_no_acknowledged_write(
    request: pytest.FixtureRequest,
    consensus_cluster_factory: ClusterFactory,
    consensus_settings: Settings,
    tmp_path: Path,
) -> None:
    """Hypothesis searches fault schedules (crashes of one, a minority, all, rolling restarts,
    partitions, pauses, link faults) for one that loses an acknowledged write, and shrinks
    any it finds."""
    nodes = [f"n{i + 1}" for i in range(consensus_settings.nodes)]
    seed = consensus_settings.seed_for(request.node.nodeid)
    evidence = EvidenceKeeper(tmp_path / "failing-runs")
    scenario = functools.partial(writes_survive, consensus_cluster_factory, evidence=evidence)
    if consensus_settings.replay:
        failure = scenario(Schedule.read(Path(consensus_settings.replay)))
        if failure:
            pytest.fail(failure, pytrace=False)
        return
    result = search_schedules(
        scenario,
        schedules(nodes, SEARCH_KINDS, max_faults=consensus_settings.profile.faults, seed=seed),
        examples=consensus_settings.search_examples,
        budget=consensus_settings.search_shrink_budget,
        save_to=tmp_path / "minimal-schedule.json",
        seed=seed,
    )
    if result.failure is not None:
        adapter = request.node.callspec.params["consensus_adapter"]
        shrunk = "minimal" if result.shrunk_fully else "partly shrunk (budget ran out)"
        if not result.reproduced:
            shrunk = "failed once but not when run again (timing-dependent); the failing"
        kept = ", ".join(str(folder) for folder in evidence.kept)
        pytest.fail(
            f"{result.failure}\nevery failing run's history, schedule and node logs: {kept}\n"
            f"{shrunk} reproducer after {result.examples} runs: "
            f"{result.path}\nreplay: "
            + consensus_settings.command(
                adapter, replay=str(result.path), test=replayable_id(request.node)
            ),
            pytrace=False,
        )


ELECTION_KINDS = (
    "isolate-leader",
    "kill-one",
    "random-halves",
    "pause-one",
    "one-way-to-leader",
    "rolling-restart",
)


@pytest.mark.consensus_requires("leader", "kill", "restart", "pause", "network")
def test_at_most_one_leader_per_term(
    consensus_cluster: Cluster,
    consensus_nemesis: Nemesis,
    consensus_schedule: ScheduleFactory,
) -> None:
    """While faults force elections (always including a crash of every node at once, after
    which terms and votes must come back from disk), no two nodes ever lead the same term (as
    the nodes record it where they keep a history, else as observed every 100 ms)."""
    schedule = consensus_schedule(ELECTION_KINDS, required=("kill-all",))
    with LeaderObserver(consensus_cluster) as observer:
        consensus_nemesis.run(schedule)
        wait_for_leader(consensus_cluster)
    consensus_nemesis.check()
    assert observer.leaders, "no leader was ever observed"
    doubled = observer.terms_with_two_leaders()
    if doubled:
        pytest.fail(
            "two leaders in one term: "
            + "; ".join(f"term {t}: {', '.join(sorted(n))}" for t, n in sorted(doubled.items()))
            + f" (terms led: {sorted(observer.leaders)})",
            pytrace=False,
        )


#: Terms the cut-off node must climb above the majority's before it is killed: so many that,
#: had it forgotten them, it could not climb back before its first status after the restart.
TERMS_AHEAD = 2
#: Seconds for a cut-off node to stand for election once (past any election timeout up to
#: 2.5 s); where its term does not rise (pre-vote, a protocol whose epoch needs a quorum),
#: the test is n/a, saying what the node reported.
FIRST_RISE_TIMEOUT = 5.0
#: Seconds to wait for the whole climb: ample for 3 election timeouts (PySyncObj: 0.6-1.2 s).
CLIMB_TIMEOUT = 20.0
#: Seconds a restarted node may answer its status without a term before the test is n/a:
#: a store that keeps its term on disk reads it as it starts (PySyncObj, etcd, ZooKeeper
#: report it in their first status), while NATS reports none until it reaches a peer, and
#: the 20 s of the climb spent on that were 20 s of every NATS run for an n/a.
NO_TERM_GRACE = 8.0
#: Seconds between reading the term and the kill: a term a store has announced is on disk
#: within this (etcd writes its hard state within one Ready cycle, milliseconds).
PERSIST_MARGIN = 0.5


@pytest.mark.consensus_requires("leader", "kill", "restart", "network")
def test_a_node_restarted_while_cut_off_keeps_the_terms_it_reached(
    consensus_cluster: Cluster,
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
) -> None:
    """A follower cut off from the others stands for election again and again, raising its
    term with no log entries of those terms. Killed and restarted while still cut off, it
    must come back at (at least) the term it had reached: Raft keeps the current term and the
    vote on disk, since a node that forgets them can vote twice in one term, and two leaders
    of one term follow (after a crash of every node, or a restart between two elections)."""
    leader, _ = wait_for_leader(consensus_cluster)
    follower = next(n for n in consensus_cluster.nodes if n is not leader)
    others = [n.name for n in consensus_cluster.nodes if n is not follower]
    majority_term = leader.status(consensus_settings.operation_timeout).term
    if majority_term is None:
        pytest.skip("n/a: the store reports no term")
    fault = consensus_nemesis.apply(Fault("random-halves", 0, 0, cut([follower.name], others)))
    seen: list[int | None] = []
    try:
        wait_for(
            lambda: _term_at_least(follower, majority_term + 1, seen),
            timeout=FIRST_RISE_TIMEOUT,
            what=f"{follower.name}'s term to pass {majority_term}",
            ignore=(ConsensusError,),
        )
    except WaitTimeout:
        reported = [str(t) for t in sorted({t for t in seen if t is not None})] or ["none"]
        pytest.skip(
            f"n/a: {follower.name}, cut off from the majority for {FIRST_RISE_TIMEOUT:.0f} s, "
            f"reported no term above the majority's ({majority_term}): it answered "
            f"{len(seen)} status probes, with term(s) {', '.join(reported)}; a "
            "term forgotten on restart cannot show when none was reached"
        )
    climbed = wait_for(
        lambda: _term_at_least(follower, majority_term + TERMS_AHEAD),
        timeout=CLIMB_TIMEOUT,
        what=f"{follower.name}'s term to pass {majority_term + TERMS_AHEAD}",
        ignore=(ConsensusError,),
    )
    time.sleep(PERSIST_MARGIN)
    follower.kill()
    follower.start()
    first_answer_without_term: float | None = None

    def term_after_restart() -> int | None:
        nonlocal first_answer_without_term
        term = follower.status(consensus_settings.operation_timeout).term
        if term is None:
            if first_answer_without_term is None:
                first_answer_without_term = time.monotonic()
            elif time.monotonic() - first_answer_without_term > NO_TERM_GRACE:
                raise _NoTerm()
        return term

    try:
        after = wait_for(
            term_after_restart,
            timeout=CLIMB_TIMEOUT,
            what=f"{follower.name}'s status after its restart",
            ignore=(ConsensusError,),
        )
    except (_NoTerm, WaitTimeout):
        if first_answer_without_term is None:  # it never answered: no verdict, an error
            raise
        consensus_nemesis.heal(fault)
        pytest.skip(
            f"n/a: {follower.name}, restarted while cut off, answered its status but reported "
            f"no term for {NO_TERM_GRACE:.0f} s (the store loads its Raft state only once it "
            "reaches a peer), so whether it kept its term cannot show"
        )
    consensus_nemesis.heal(fault)
    if after < climbed:
        pytest.fail(
            f"{follower.name} reached term {climbed} while cut off, and came back from a "
            f"restart at term {after}: it keeps its term (and so its vote) only in memory, "
            f"so it can vote twice in one term (Raft keeps both on disk)",
            pytrace=False,
        )


class _NoTerm(Exception):
    """The restarted node answered without a term for longer than ``NO_TERM_GRACE``."""


def _term_at_least(node: Node, term: int, seen: list[int | None] | None = None) -> int | None:
    reported = node.status(5.0).term
    if seen is not None:
        seen.append(reported)
    return reported if reported is not None and reported >= term else None


#: Seconds of writing after the nodes of one uneven restart are all started, before the next.
AFTER_UNEVEN_RESTART = 1.0


@pytest.mark.consensus_requires("kill", "restart", "leader", "strong", "digest")
def test_writes_survive_whole_cluster_crashes_with_uneven_restarts(
    consensus_cluster_factory: ClusterFactory,
    consensus_settings: Settings,
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """Every node is killed at once, and the nodes come back in a random order with random
    gaps (0 to 3 s) while clients write to whichever node leads as soon as one does; several
    cycles a run (more in thorough). No acknowledged write is lost, and the replicas agree."""
    nodes = [f"n{i + 1}" for i in range(consensus_settings.nodes)]
    faults, clock = [], 1.0
    for _ in range(consensus_settings.profile.restart_cycles):
        targets = static_targets("kill-all-restart-unevenly", nodes, consensus_rng)
        fault = Fault("kill-all-restart-unevenly", round(clock, 3), 0.5, targets)
        faults.append(fault)
        clock += fault.duration + restart_offsets(fault)[-1] + AFTER_UNEVEN_RESTART
    schedule = Schedule(consensus_rng.randrange(2**32), nodes, faults)
    try:
        failure = writes_survive(
            consensus_cluster_factory,
            schedule,
            EvidenceKeeper(tmp_path / "failing-runs"),
            after=restart_offsets(faults[-1])[-1] + AFTER_UNEVEN_RESTART,
            compare_digests=True,
        )
    except CapabilityMissing as missing:  # replicas without digests cannot be compared
        pytest.skip(f"n/a: {missing}")
    if failure:
        pytest.fail(failure, pytrace=False)
