"""read-levels: strong and stale reads are distinct, advertised levels.

A member cut off from the majority may serve stale reads (that lag, measured and reported,
but never invent a value, and converge after the heal), and must never answer a strong read
with a value the majority has overwritten: it fails or blocks instead.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from pytest_consensus.checkers.linearizability import check_history
from pytest_consensus.checkers.models import CasRegisterModel
from pytest_consensus.checkers.stale import check_stale_reads, committed_values
from pytest_consensus.clients import stopping
from pytest_consensus.clients.cluster_ops import strong_read_anywhere, wait_for_leader
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.contract import Cluster, Node, NodeStatus, ReadLevel
from pytest_consensus.contract.errors import ConsensusError, DefiniteError, Timeout
from pytest_consensus.contract.waiting import WaitTimeout, wait_for
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.links import Link, LinkProxies, LinkTable
from pytest_consensus.nemesis.faults import Fault, Nemesis, cut
from pytest_consensus.nemesis.workload import run_through_schedule
from pytest_consensus.plugin.fixtures import ScheduleFactory
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import write_counterexample
from pytest_consensus.report.records import COUNTEREXAMPLE_PROPERTY

pytestmark = pytest.mark.consensus_rule("read-levels")

#: A strong read on the cut-off member may take this long to fail; it must not succeed.
ISOLATED_READ_TIMEOUT = 2.0
CONVERGENCE_TIMEOUT = 30.0
OVERWRITES = 3
#: Writes sent to the member while it is cut off (each with a unique value).
MINORITY_WRITES = 3
STALE_READS_WHILE_CUT_OFF = 3
#: How many invented reads a failure message lists (it says how many more there were).
LISTED = 5
#: Seconds without faults after convergence before the final state is read.
QUIET_AFTER_HEAL = 1.0


@pytest.mark.consensus_requires("strong", "stale", "leader", "network")
@pytest.mark.parametrize("which", ["leader", "follower"])
def test_a_member_cut_off_serves_stale_reads_but_no_overwritten_strong_ones(
    request: pytest.FixtureRequest,
    which: str,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
) -> None:
    """Cut off from the majority (and sent writes it cannot commit), a member's stale reads
    lag without inventing values (a value is valid only if it committed) and converge after
    the heal; its strong reads never return an overwritten value. A member that served no
    read while cut off (refusing is its right) exposed nothing: the test is then n/a with what
    it served, never a pass."""
    timeout = consensus_settings.operation_timeout
    client_of = {client.node: client for client in consensus_clients}
    leader, _ = wait_for_leader(consensus_cluster)
    cut_off = (
        leader if which == "leader" else next(n for n in consensus_cluster.nodes if n is not leader)
    )
    client_of[leader.name].put("k", "v0", timeout=timeout)
    wait_for(
        lambda: client_of[cut_off.name].get("k", level=ReadLevel.STALE, timeout=timeout) == "v0",
        timeout=CONVERGENCE_TIMEOUT,
        what=f"v0 on {cut_off.name}",
        ignore=(ConsensusError,),
    )

    others = [n.name for n in consensus_cluster.nodes if n is not cut_off]
    fault = consensus_nemesis.apply(Fault("random-halves", 0, 0, cut([cut_off.name], others)))
    majority_side = [n for n in consensus_cluster.nodes if n is not cut_off]
    new_leader, _ = wait_for_leader(consensus_cluster, among=majority_side)
    for number in range(1, OVERWRITES + 1):
        client_of[new_leader.name].put("k", f"v{number}", timeout=timeout)
    overwritten = f"v{OVERWRITES}"
    # Writes sent to the cut-off member cannot commit while it is cut off; it may hold them
    # as uncommitted entries, which its stale reads must never serve. One that times out may
    # still take effect after the heal; one refused definitely must never.
    held: list[str] = []
    refused_writes: dict[str, DefiniteError] = {}
    for number in range(MINORITY_WRITES):
        value = f"minority-{number}"
        try:
            client_of[cut_off.name].put("k", value, timeout=ISOLATED_READ_TIMEOUT)
        except DefiniteError as error:
            refused_writes[value] = error
            continue
        except ConsensusError:
            continue
        held.append(value)

    stale: str | None | ConsensusError = None
    served = 0
    for _ in range(STALE_READS_WHILE_CUT_OFF):
        try:
            stale = client_of[cut_off.name].get("k", level=ReadLevel.STALE, timeout=timeout)
            served += 1
        except Timeout as unanswered:
            # A member that lets one read time out lets the next ones too (NATS: 5 s each).
            stale = unanswered
            break
        except ConsensusError as refused:  # a member that knows it has no leader may refuse
            stale = refused
    strong_answer: str | None = None
    try:
        strong_answer = client_of[cut_off.name].get(
            "k", level=ReadLevel.STRONG, timeout=ISOLATED_READ_TIMEOUT
        )
        answered = True
    except ConsensusError:
        answered = False
    consensus_nemesis.heal(fault)

    def settled() -> tuple[str | None] | None:
        """The committed value (a strong read anywhere), once the healed member's stale
        read shows it too."""
        committed_now = strong_read_anywhere(consensus_clients, "k", timeout)
        if committed_now is None:
            return None
        local = client_of[cut_off.name].get("k", level=ReadLevel.STALE, timeout=timeout)
        return committed_now if local == committed_now[0] else None

    final: str | None
    try:
        wait_for(settled, timeout=CONVERGENCE_TIMEOUT, what="convergence", ignore=(ConsensusError,))
        # Writes the member held while cut off may still be proposed after the heal; what
        # is committed once things are quiet is the final state.
        time.sleep(QUIET_AFTER_HEAL)
        (final,) = wait_for(
            settled, timeout=CONVERGENCE_TIMEOUT, what="convergence", ignore=(ConsensusError,)
        )
        converged = True
    except WaitTimeout:
        final, converged = overwritten, False

    committed = committed_values(consensus_history.events, {"k": final} if converged else None)
    result = check_stale_reads(consensus_history.events, committed=committed)
    summary = result.summary()
    strong = "answered the strong read" if answered else "refused the strong read"
    request.node.user_properties.append(
        (
            "exposure",
            f"{cut_off.name} ({which}), cut off from the majority, served {served} of "
            f"{STALE_READS_WHILE_CUT_OFF} stale read(s) and {strong}",
        )
    )
    if served:
        request.node.user_properties.append(("stale_reads", summary))
    problems = []
    if held:
        problems.append(
            f"{cut_off.name} ({which}), cut off from the majority, acknowledged writes it could "
            f"not commit: {', '.join(held)}"
        )
    if answered and strong_answer != overwritten:
        problems.append(
            f"{cut_off.name} ({which}), cut off from the majority, answered a strong read of k "
            f"with {strong_answer!r} although the majority had overwritten it with "
            f"{overwritten!r}"
        )
    if converged and final in refused_writes:
        problems.append(
            f"the write of {final!r} to {cut_off.name} while it was cut off was refused "
            f"definitely ({refused_writes[final]}), yet took effect after the heal: k reads "
            f"{final!r}"
        )
    problems += result.invented[:LISTED]
    if len(result.invented) > LISTED:
        problems.append(f"and {len(result.invented) - LISTED} more invented reads")
    if not converged:
        problems.append(
            f"stale reads on {cut_off.name} did not converge to the committed value of k "
            f"(a strong read's) within {CONVERGENCE_TIMEOUT}s of the heal"
        )
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    if not served and not answered:
        pytest.skip(
            f"n/a: {cut_off.name} ({which}), cut off from the majority, served none of "
            f"{STALE_READS_WHILE_CUT_OFF} stale reads and refused the strong read, so whether "
            "its reads lag without inventing values (or serve overwritten ones) could not show"
        )
    shown = f"refused ({stale})" if isinstance(stale, ConsensusError) else repr(stale)
    print(
        f"stale read on the cut-off {which}: {shown} "
        f"({summary['versions_behind']['max']:.0f} versions behind at most)"
    )


LINEARIZABILITY_KINDS = (
    "isolate-leader",
    "random-halves",
    "kill-one",
    "pause-one",
    "majority-ring",
    "bridge",
    "lost-replies",
    "slow-link",
    "one-way-slow",
    "flapping-link",
)
KEYS = 3
WORKERS = 4


@pytest.mark.consensus_requires(
    "strong", "cas", "leader", "kill", "restart", "pause", "network", "links"
)
def test_strong_reads_are_linearizable_under_faults(
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_schedule: ScheduleFactory,
    consensus_settings: Settings,
    consensus_rng: random.Random,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Puts, cas and strong reads on a few keys during partitions, kills, pauses and slow or
    flapping links form a linearizable history (checked per key against a cas register)."""
    schedule = consensus_schedule(LINEARIZABILITY_KINDS)
    timeout = 1.0
    workers = [consensus_clients[i % len(consensus_clients)] for i in range(WORKERS)]
    workers = [RecordingClient(c.inner, consensus_history) for c in workers]

    def operate(client: RecordingClient, rng: random.Random, number: int) -> None:
        key = f"r{rng.randrange(KEYS)}"
        choice = rng.random()
        if choice < 0.4:
            client.get(key, level=ReadLevel.STRONG, timeout=timeout)
        elif choice < 0.75:
            client.put(key, f"{client.process}-{number}", timeout=timeout)
        else:
            client.cas(
                key, f"{client.process}-{number - 1}", f"{client.process}-{number}", timeout=timeout
            )

    result = run_through_schedule(
        consensus_nemesis, schedule, workers, operate, seed=consensus_rng.randrange(2**32)
    )
    consensus_nemesis.check()
    assert not result.crashes, "workers crashed:\n" + "\n".join(result.crashes)
    assert result.completed > 0, f"no operation succeeded: {result.errors}"
    model = CasRegisterModel()
    verdict = check_history(consensus_history.events, model, budget=120.0)
    if verdict.linearizable is False:
        example = verdict.counterexample
        page = write_counterexample(
            tmp_path, consensus_history.events, model, verdict, request.node.name
        )
        request.node.user_properties.append((COUNTEREXAMPLE_PROPERTY, str(page)))
        pytest.fail(example.describe(model) if example else "not linearizable", pytrace=False)
    if verdict.linearizable is None:
        pytest.fail(
            f"the checker's budget ran out on keys {verdict.unknown_keys}; no verdict",
            pytrace=False,
        )


#: Rounds of "acknowledged write, then the leader goes away at once" per fault.
FAILOVER_ROUNDS = 1
#: Each strong read in the tight loop may take this long; other nodes are asked meanwhile.
FAILOVER_READ_TIMEOUT = 0.5
FAILOVER_TIMEOUT = 30.0


@pytest.mark.consensus_requires("strong", "leader")
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("kill", marks=pytest.mark.consensus_requires("kill", "restart")),
        pytest.param("pause", marks=pytest.mark.consensus_requires("pause")),
        pytest.param("isolate", marks=pytest.mark.consensus_requires("network")),
    ],
)
def test_the_first_strong_read_after_a_leader_change_sees_the_last_acknowledged_write(
    fault: str,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
) -> None:
    """A write is acknowledged, then the leader is crashed, paused or cut off at once, and
    every other node is asked for strong reads in a tight loop (one thread per node) until
    one answers: that answer must be the acknowledged value. Catches a new leader that
    answers before it has applied the entries of the previous term (a read that checks
    leadership and then reads local state, without waiting for its term's first entry)."""
    timeout = consensus_settings.operation_timeout
    client_of = {client.node: client for client in consensus_clients}
    problems = []
    for number in range(FAILOVER_ROUNDS):
        leader, status = wait_for_leader(consensus_cluster)
        key, previous, value = f"failover-{number}", f"old-{number}", f"new-{number}"
        client_of[leader.name].put(key, previous, timeout=timeout)
        client_of[leader.name].put(key, value, timeout=timeout)
        others = [client_of[n.name] for n in consensus_cluster.nodes if n is not leader]
        names = [client.node for client in others]
        applied = consensus_nemesis.apply(
            Fault("kill-one", 0, 0, ((leader.name,),))
            if fault == "kill"
            else Fault("pause-one", 0, 0, ((leader.name,),))
            if fault == "pause"
            else Fault("isolate-leader", 0, 0, cut([leader.name], names))
        )
        try:
            node, answer = first_strong_answer(others, key)
        finally:
            consensus_nemesis.heal(applied)
        if answer != value:
            problems.append(
                f"round {number + 1}: {key}={value!r} was acknowledged by {leader.name} (leader of "
                f"term {status.term}), which was then {FAULT_WORDS[fault]}; the first strong read "
                f"answered, by {node}, gave {answer!r}"
            )
    if problems:
        pytest.fail(
            "; ".join(problems) + ". A new leader must not answer strong reads before it has "
            "applied every entry committed in earlier terms (commit an entry of its own term "
            "first, as Raft's read protocol requires)",
            pytrace=False,
        )


FAULT_WORDS = {"kill": "killed", "pause": "paused", "isolate": "cut off from the others"}


def first_strong_answer(clients: list[RecordingClient], key: str) -> tuple[str, str | None]:
    """Strong reads of ``key`` on every given node at once, each node in a tight loop, until
    one answers; returns (node, value) of the earliest answer."""
    answers: list[tuple[float, str, str | None]] = []
    found = threading.Event()

    def poll(client: RecordingClient) -> None:
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        while not found.is_set() and time.monotonic() < deadline and not stopping.stopping():
            try:
                value = client.get(key, level=ReadLevel.STRONG, timeout=FAILOVER_READ_TIMEOUT)
            except ConsensusError:
                continue
            answers.append((time.monotonic(), client.node, value))
            found.set()

    threads = [threading.Thread(target=poll, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not answers:
        raise WaitTimeout(f"no node answered a strong read of {key} within {FAILOVER_TIMEOUT}s")
    _, node, value = min(answers)
    return node, value


#: How long to keep asking the resumed old leader for a strong read.
RESUMED_READ_SECONDS = 2.0


@pytest.mark.consensus_requires("strong", "leader", "pause")
@pytest.mark.parametrize(
    "resumed",
    [
        pytest.param("with-the-others"),
        pytest.param("cut-off", marks=pytest.mark.consensus_requires("network")),
    ],
)
def test_a_paused_leader_that_resumes_serves_no_overwritten_strong_read(
    request: pytest.FixtureRequest,
    resumed: str,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
) -> None:
    """The leader is paused (SIGSTOP) until the others elect a new leader and overwrite a key,
    then resumed (with the others in reach, or cut off from them, so that nothing tells it it
    was deposed) and asked for strong reads of that key in a tight loop: each answer must be
    the new value (a refusal is fine). Catches a leader whose read lease outlives a pause:
    a lease counted on a clock that stops with the process still looks valid after SIGCONT.

    The exposure is the old leader's answers: a round in which it answered none (each read
    refused or timed out) judged nothing, so another round runs (a new pause), up to the
    profile's ``exposure_rounds``; if none had answers, the test is n/a, never a pass. The
    client asks the old leader once right before the pause, so its connection (or session)
    is open through the pause where the store's client keeps one."""
    timeout = consensus_settings.operation_timeout
    client_of = {client.node: client for client in consensus_clients}
    problems = []
    answered = rounds = 0
    for number in range(consensus_settings.profile.exposure_rounds):
        rounds += 1
        key, first, second = f"paused-{number}", f"before-pause-{number}", f"after-{number}"
        # A later round starts right after the last one healed: the store may still be
        # electing or catching up, so the first write is retried until a leader takes it.
        old_leader, status = put_through_the_leader(
            consensus_cluster, client_of, key, first, timeout
        )
        others = [n for n in consensus_cluster.nodes if n is not old_leader]
        pause = consensus_nemesis.apply(Fault("pause-one", 0, 0, ((old_leader.name,),)))
        # Cut off at once, before the new leader's messages can queue up in its sockets.
        cut_off = (
            consensus_nemesis.apply(
                Fault("isolate-leader", 0, 0, cut([old_leader.name], [n.name for n in others]))
            )
            if resumed == "cut-off"
            else None
        )
        try:
            new_leader, _ = put_through_the_leader(
                consensus_cluster, client_of, key, second, timeout, among=others
            )
        finally:
            consensus_nemesis.heal(pause)
        try:
            answers = strong_reads_for(client_of[old_leader.name], key, RESUMED_READ_SECONDS)
        finally:
            if cut_off is not None:
                consensus_nemesis.heal(cut_off)
        answered += len(answers)
        stale = [answer for answer in answers if answer != second]
        if stale:
            problems.append(
                f"round {number + 1}: {old_leader.name}, leader of term {status.term}, was paused "
                f"while {new_leader.name} led and overwrote {key} with {second!r}; resumed "
                f"({resumed.replace('-', ' ')}), "
                f"{old_leader.name} answered {len(stale)} of {len(answers)} strong reads with "
                f"{stale[0]!r}"
            )
        if answers:
            break
    request.node.user_properties.append(
        (
            "exposure",
            f"the resumed old leader ({resumed.replace('-', ' ')}) answered {answered} strong "
            f"read(s) in {rounds} round(s)",
        )
    )
    if problems:
        pytest.fail(
            "; ".join(problems) + ". A leader must confirm it still leads (or hold a lease on a "
            "clock that keeps running while it is paused) before answering a strong read",
            pytrace=False,
        )
    if answered == 0:
        pytest.skip(
            f"n/a: in {rounds} rounds the resumed old leader ({resumed.replace('-', ' ')}) "
            f"answered no strong read in the {RESUMED_READ_SECONDS:.0f} s after it resumed "
            "(every one refused or timed out), so whether it serves overwritten values could "
            "not show"
        )


#: How late the followers' messages reach the leader in the late-acknowledgement test: past
#: any election timeout, so the followers elect a new leader and overwrite the key while the
#: old one is still receiving acknowledgements of its last heartbeats.
LATE_ACKNOWLEDGEMENTS = 3.0


@pytest.mark.consensus_requires("strong", "leader", "network", "links")
def test_a_leader_whose_acknowledgements_arrive_late_serves_no_overwritten_strong_read(
    request: pytest.FixtureRequest,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_history: History,
    consensus_allocation: Allocation,
    consensus_settings: Settings,
) -> None:
    """Everything the followers send the leader arrives LATE_ACKNOWLEDGEMENTS seconds late
    (link proxies, the delay raised step by step); then the followers stop hearing the
    leader (its links to them blackholed) while their late acknowledgements keep reaching
    it. The followers elect a new leader and overwrite a key; the old leader is asked for
    strong reads of it until the last late acknowledgement has arrived, and each answer must
    be the new value (a refusal is fine). Catches a read lease, or a check that the leader
    still leads (ZooKeeper's), timed from when acknowledgements arrive instead of when the
    heartbeats they answer were sent: the followers' election timers started at the
    heartbeat, so such a lease or check runs past the point from which another leader may
    exist.

    The exposure is the old leader's answers after the overwrite: none (each refused or
    timed out, as a leader that confirms its leadership through the followers must) makes
    the test n/a, never a pass."""
    links = consensus_allocation.links
    assert links is not None, "the test requires 'links': its cluster has proxies"
    timeout = consensus_settings.operation_timeout
    client_of = {client.node: client for client in consensus_clients}
    key, first, second = "late-acks", "before-the-cut", "after-the-cut"
    old_leader, status = put_through_the_leader(consensus_cluster, client_of, key, first, timeout)
    others = [n.name for n in consensus_cluster.nodes if n is not old_leader]
    consensus_history.nemesis("start-late-acknowledgements", [[o, old_leader.name] for o in others])
    late = slow_down_gradually(links, [(other, old_leader.name) for other in others])
    time.sleep(1.0)
    leader_now, _ = wait_for_leader(consensus_cluster)
    if leader_now is not old_leader:
        links.heal()
        pytest.skip(
            f"n/a: {old_leader.name} stopped leading while its followers' acknowledgements "
            f"were slowed step by step (now {leader_now.name} leads), so the late "
            "acknowledgements could not be tested"
        )
    cut_off = {(old_leader.name, other): Link(mode="blackhole") for other in others}
    links.set({**late, **cut_off})
    consensus_history.nemesis("start-leader-unheard", [[old_leader.name, o] for o in others])
    cut_at = time.monotonic()
    try:
        majority_side = [n for n in consensus_cluster.nodes if n is not old_leader]
        new_leader, _ = put_through_the_leader(
            consensus_cluster, client_of, key, second, timeout, among=majority_side
        )
        overwritten_after = time.monotonic() - cut_at
        # Until the last late acknowledgement has arrived, and a little past it.
        remaining = max(0.5, LATE_ACKNOWLEDGEMENTS + 1.0 - overwritten_after)
        answers = strong_reads_for(client_of[old_leader.name], key, remaining)
    finally:
        links.heal()
        consensus_history.nemesis("heal-late-acknowledgements", [])
    stale = [answer for answer in answers if answer != second]
    request.node.user_properties.append(
        (
            "exposure",
            f"the old leader answered {len(answers)} strong read(s) after the overwrite "
            f"({overwritten_after:.1f} s after its followers stopped hearing it)",
        )
    )
    if stale:
        pytest.fail(
            f"{old_leader.name}, leader of term {status.term}, received its followers' "
            f"acknowledgements {LATE_ACKNOWLEDGEMENTS:.0f} s late; once they stopped hearing "
            f"it, {new_leader.name} was elected and overwrote {key} with {second!r} "
            f"{overwritten_after:.1f} s later, yet {old_leader.name} answered {len(stale)} of "
            f"{len(answers)} strong reads with {stale[0]!r} after that. Whatever lets a leader "
            "answer strong reads (a read lease, a check that it still leads) must count an "
            "acknowledgement from when the message it answers was sent, not from when it arrived",
            pytrace=False,
        )
    if not answers:
        pytest.skip(
            f"n/a: the old leader answered no strong read in the {remaining:.1f} s after the "
            "new leader's overwrite (every one refused or timed out), so whether a late "
            "acknowledgement keeps it answering could not show"
        )


#: The late-acknowledgement test slows links by this much at a time, so that no gap between
#: two acknowledgements is longer than a step (a leader that hears nothing for a while steps
#: down, and the test needs it leading).
SLOWING_STEP = 0.25


def slow_down_gradually(links: LinkProxies, slowed: list[tuple[str, str]]) -> LinkTable:
    """Raise the delay of ``slowed`` links to LATE_ACKNOWLEDGEMENTS a step at a time; the
    table set at the end."""
    delay = 0.0
    table: LinkTable = {}
    while delay < LATE_ACKNOWLEDGEMENTS:
        delay = min(LATE_ACKNOWLEDGEMENTS, delay + SLOWING_STEP)
        table = {link: Link(delay=delay) for link in slowed}
        links.set(table)
        time.sleep(SLOWING_STEP)
    return table


#: How long a round's set-up write may take to be acknowledged, tries included.
SETUP_WRITE_SECONDS = 30.0


def put_through_the_leader(
    cluster: Cluster,
    client_of: dict[str, RecordingClient],
    key: str,
    value: str,
    timeout: float,
    among: list[Node] | None = None,
) -> tuple[Node, NodeStatus]:
    """Put ``value`` through whichever node leads (of ``among``), again until one write is
    acknowledged; the leader that took it. Every attempt writes the same value, so one that
    timed out and applies later changes nothing."""

    def attempt() -> tuple[Node, NodeStatus]:
        leader, status = wait_for_leader(cluster, among=among)
        client_of[leader.name].put(key, value, timeout=timeout)
        return leader, status

    return wait_for(
        attempt,
        timeout=SETUP_WRITE_SECONDS,
        what=f"a leader to acknowledge {key}={value!r}",
        ignore=(ConsensusError, WaitTimeout),
    )


def strong_reads_for(client: RecordingClient, key: str, seconds: float) -> list[str | None]:
    """Every answer ``client``'s node gives to strong reads of ``key`` asked back to back
    for ``seconds`` (refusals and timeouts are not answers)."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answers.append(client.get(key, level=ReadLevel.STRONG, timeout=FAILOVER_READ_TIMEOUT))
        except ConsensusError:
            continue
    return answers
