"""partition-retries: clients time out and retry through partitions.

Writes go through the library's retry policy (backoff with jitter, leader hints, one
deadline, one request id per logical write) while a generated schedule partitions, kills
and pauses nodes: one schedule carries both workloads, a set workload of puts of unique keys
(any store) and appends to a few keys (capabilities ``append`` and ``request-ids``; a retry
applied twice shows as a duplicate). Afterwards no
acknowledged write is lost, none took effect twice or despite a definite failure, and no
attempt hung past its timeout. The time from the last heal to the first success is
reported.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_consensus.checkers.linearizability import check_history
from pytest_consensus.checkers.models import RegisterModel
from pytest_consensus.checkers.sets import check_sets
from pytest_consensus.clients.cluster_ops import strong_read_anywhere, wait_for_leader
from pytest_consensus.clients.history import NEMESIS, Event, History, RecordingClient
from pytest_consensus.clients.retry import (
    RetryingClient,
    RetryPolicy,
    retried_after_unanswered,
    spread_clients,
)
from pytest_consensus.contract import Adapter, Capability, Cluster, ReadLevel
from pytest_consensus.contract.errors import ConsensusError, HarnessError, IndefiniteError
from pytest_consensus.contract.http_protocol import TRANSPORT_GRACE
from pytest_consensus.contract.waiting import WaitTimeout, wait_for
from pytest_consensus.nemesis.faults import MINORITY_SHAPES, Fault, Nemesis, Schedule, cut
from pytest_consensus.nemesis.link_faults import SLOW_LEADER
from pytest_consensus.nemesis.workload import run_through_schedule
from pytest_consensus.plugin.fixtures import ScheduleFactory
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import write_counterexample
from pytest_consensus.report.records import COUNTEREXAMPLE_PROPERTY

pytestmark = pytest.mark.consensus_rule("partition-retries")

KINDS: tuple[str, ...] = (
    "isolate-leader",
    "random-halves",
    "majority-ring",
    "bridge",
    "kill-one",
    "pause-one",
)
#: Workers of each retry workload (appends, unique puts).
WORKERS = 4
#: Seconds between one worker's appends, so that traffic meets every fault of the schedule.
PACE = 0.05
MAX_APPENDS_PER_WORKER = 1000
KEYS = 3
POLICY = RetryPolicy(deadline=15.0, attempt_timeout=2.0)
#: An attempt may take its timeout, the transport's grace, and this much scheduling slack.
HANG_SLACK = 1.0
KINDS = (*KINDS, "client-from-node", "lost-replies", "slow-node", "one-way-blackhole")
#: In every schedule, whatever else is drawn: replies lost (so retries must be de-duplicated),
#: the leader cut off (so some node is without a majority and the leader changes), and the
#: leader's links slowed, the client's included (every write crosses them: attempts time
#: out and retry on a network that is slow, not cut, and must still answer in time).
REQUIRED_KINDS = ("lost-replies", "isolate-leader", "slow-leader")
#: The shortest a partition that leaves a node without a majority lasts: past an attempt's
#: timeout, the transport's grace and the slack (the longest an attempt may take) by 2 s, so
#: a request held in the minority until the heal must show as an attempt that took too long.
OUTLAST_TIMEOUT = POLICY.attempt_timeout + TRANSPORT_GRACE + HANG_SLACK + 2.0
#: The shortest the lost replies last: an attempt's timeout and 1 s more. A dropped TCP reply
#: is sent again after the heal (retransmissions 0.2, 0.6, 1.4, 3.0 s after the first), so in
#: a shorter window a reply can still arrive within the attempt's timeout and nothing is
#: retried: a 1.8 s window left a store that ignores request ids without a duplicate. Now
#: every append sent in the window's first second times out and is retried.
LOST_REPLIES_AT_LEAST = POLICY.attempt_timeout + 1.0


def tokens(value: str | None) -> list[str]:
    return re.findall(r"[^,]+,", value or "")


class FaultedWorkload:
    """Writes from WORKERS retrying clients, spread over the nodes, during a generated
    schedule of partitions, kills and pauses; everything lands in the test's history."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        nemesis: Nemesis,
        schedule: ScheduleFactory,
        rng: random.Random,
    ) -> None:
        self.cluster, self.history, self.nemesis, self.rng = cluster, history, nemesis, rng
        # A write whose answer is lost must not apply twice when retried, and the leader
        # must lose its majority inside the retry window: every schedule has both faults.
        self.schedule = schedule(
            KINDS,
            # One drawn fault besides the required ones, whatever the profile's count.
            faults=max(schedule.settings.profile.faults, len(REQUIRED_KINDS) + 1),
            required=REQUIRED_KINDS,
            # The slowed leader too: a client whose retries back off without a cap answers
            # far past its timeout only when the slow network outlasts a few of them.
            at_least={
                **{kind: OUTLAST_TIMEOUT for kind in (*MINORITY_SHAPES, SLOW_LEADER)},
                "lost-replies": LOST_REPLIES_AT_LEAST,
            },
        )
        self.clients = {node.name: cluster.client(node) for node in cluster.nodes}
        # WORKERS for each of the two workloads, homed on the nodes in turn.
        self.retrying = spread_clients(self.clients, history, POLICY, 2 * WORKERS, rng)
        #: Lost-reply faults run after the schedule (see :meth:`lose_replies_again`).
        self.rounds = 0

    def run(
        self,
        write: Callable[[RetryingClient, random.Random, int], None],
        schedule: Schedule | None = None,
    ) -> None:
        result = run_through_schedule(
            self.nemesis,
            schedule or self.schedule,
            self.retrying,
            write,
            seed=self.rng.randrange(2**32),
            operations_per_client=MAX_APPENDS_PER_WORKER,
            pace=PACE,
        )
        self.nemesis.check()
        assert not result.crashes, "workers crashed:\n" + "\n".join(result.crashes)
        wait_for_leader(self.cluster)

    def lose_replies_again(
        self, write: Callable[[RetryingClient, random.Random, int], None]
    ) -> None:
        """One more lost-reply fault alone, on a settled cluster, for when the schedule's met
        no write (on ZooKeeper every session can still be reconnecting after a cut-off
        leader, and no session connects while replies are lost). Numbers continue past the
        schedule's, so keys and values stay unique."""
        names = [node.name for node in self.cluster.nodes]
        fault = Fault("lost-replies", 1.0, LOST_REPLIES_AT_LEAST, (tuple(names),))
        self.rounds += 1
        offset = self.rounds * MAX_APPENDS_PER_WORKER
        self.run(
            lambda client, rng, number: write(client, rng, offset + number),
            Schedule(self.schedule.seed, names, [fault]),
        )

    def reader(self) -> RetryingClient:
        return RetryingClient(
            self.clients, self.history, RetryPolicy(deadline=30.0), random.Random(0)
        )

    def timing_problems(self) -> list[str]:
        """Attempts slower than their timeout allows, or unanswered by a reachable node."""
        return [
            f"{a.operation} {a.key} on {a.node} took {a.seconds:.1f}s ({a.outcome})"
            for client in self.retrying
            for a in client.attempts
            if a.seconds > POLICY.attempt_timeout + TRANSPORT_GRACE + HANG_SLACK
        ] + _hung_attempts(self.retrying, self.history)


@pytest.fixture
def faulted_workload(
    consensus_cluster: Cluster,
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_schedule: ScheduleFactory,
    consensus_rng: random.Random,
) -> FaultedWorkload:
    return FaultedWorkload(
        consensus_cluster, consensus_history, consensus_nemesis, consensus_schedule, consensus_rng
    )


@pytest.mark.consensus_requires("strong", "leader", "kill", "restart", "pause", "network", "links")
def test_writes_through_the_retry_policy_survive_a_fault_schedule(
    request: pytest.FixtureRequest,
    faulted_workload: FaultedWorkload,
    consensus_history: History,
    consensus_adapter: Adapter,
    consensus_settings: Settings,
) -> None:
    """Two workloads through one schedule: puts of unique keys (a set: any store) and, where
    the store has ``append`` and ``request-ids``, appends to a few keys (a retry applied twice
    shows as a duplicate). Retried through partitions, kills, pauses, lost replies and a slowed
    leader, no acknowledged write is lost, none took effect twice or despite a definite
    failure, and every attempt answered within its timeout.

    One schedule serves both workloads, each with its own WORKERS workers (the appends'
    exactly as when they had a schedule of their own): the schedule's required faults last at
    least 6 s each, and a second schedule would double that for no fault the first lacks
    (docs/decisions.md, "The default profile's budget"). Without appends, every worker puts."""
    retrying = faulted_workload.retrying
    appends = consensus_adapter.has(Capability.APPEND) and consensus_adapter.has(
        Capability.REQUEST_IDS
    )

    def write(client: RetryingClient, rng: random.Random, number: int) -> None:
        worker = retrying.index(client)
        if appends and worker < WORKERS:
            client.append(f"list-{rng.randrange(KEYS)}", f"w{worker}-{number},")
        else:
            client.put(f"set-w{worker}-{number}", "member")

    def retried_appends() -> int:
        return retried_after_unanswered(retrying, "append", lost_reply_windows(consensus_history))

    faulted_workload.run(write)
    for _ in range(1, consensus_settings.profile.exposure_rounds):
        if not appends or retried_appends():
            break
        faulted_workload.lose_replies_again(write)
    reader = faulted_workload.reader()
    problems: list[str] = []
    if appends:
        for number in range(KEYS):
            reader.get(f"list-{number}")
        listed = [e for e in consensus_history.events if str(e.key).startswith("list-")]
        results = check_sets(listed, "append", tokens)
        problems += [f"appends: {r.describe()}" for r in results if not r.ok]
        if any(r.duplicated for r in results):
            problems.append(
                "appends took effect more than once: a retry carries the request id of its "
                "first attempt, and the store must apply each request id once"
            )
    attempted = sorted(
        {
            str(e.key)
            for e in consensus_history.events
            if e.f == "put" and e.type == "invoke" and str(e.key).startswith("set-")
        }
    )
    present = [key for key in attempted if reader.get(key) is not None]
    results = check_sets(as_set_events(consensus_history.events, present), "add")
    problems += [f"unique puts: {r.describe()}" for r in results if not r.ok]
    problems += faulted_workload.timing_problems()
    retried = retried_appends()
    request.node.user_properties.append(
        ("exposure", _exposure(consensus_history, appends, retried, faulted_workload.rounds))
    )
    request.node.user_properties.append(
        ("recovery_seconds", _recovery_seconds(consensus_history, ("put", "append")))
    )
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    if appends and not retried:
        pytest.skip(
            "n/a: no lost or duplicated write, but no append was retried after an attempt "
            f"whose reply was lost (neither in the schedule nor in {faulted_workload.rounds} "
            "lost-reply fault(s) after it), so a retry applied twice could not show"
        )


def lost_reply_windows(history: History) -> list[tuple[float, float]]:
    """When replies were lost, in monotonic seconds (the clock of the clients' attempts);
    a fault that covers several nodes is one window."""
    return sorted(
        {
            (history.origin + start, history.origin + end)
            for spans in _windows_of(history, ("lost-replies",)).values()
            for start, end in spans
        }
    )


def _exposure(history: History, appends: bool, retried: int, rounds: int) -> str:
    """What the schedule put at stake: acknowledged writes of each workload, and the appends
    retried after an unanswered attempt (where a duplicate could show)."""
    acknowledged = [e for e in history.events if e.type == "ok" and e.process != NEMESIS]
    puts = sum(1 for e in acknowledged if e.f == "put")
    added = sum(1 for e in acknowledged if e.f == "append")
    if not appends:
        lacking = "the store lacks append or request-ids"
        return f"{puts} unique puts acknowledged (no appends: {lacking})"
    again = f", with {rounds} lost-reply fault(s) after the schedule" if rounds else ""
    return (
        f"{puts} unique puts and {added} appends acknowledged; {retried} appends retried "
        f"after an attempt whose reply was lost{again}"
    )


def as_set_events(events: list[Event], present: list[str]) -> list[Event]:
    """The puts of unique keys as adds of those keys to one set, then a final read of the set
    (the keys found present), which is the shape the set checker judges."""
    adds = [
        replace(e, f="add", key="set", value=e.key)
        for e in events
        if e.process != NEMESIS and e.f == "put" and str(e.key).startswith("set-")
    ]
    end = events[-1].time if events else 0.0
    final = [
        Event(0, end, "final-read", "invoke", "read", key="set"),
        Event(0, end, "final-read", "ok", "read", key="set", value=present),
    ]
    return [replace(e, index=n) for n, e in enumerate(adds + final)]


def _hung_attempts(clients: list[RetryingClient], history: History) -> list[str]:
    """Attempts that got no answer from a node that was up and reachable at the time."""
    mute = _windows_unable_to_answer(history)
    hung = []
    for client in clients:
        for attempt in client.attempts:
            if attempt.outcome != "no-answer":
                continue
            start = attempt.started - history.origin
            end = attempt.finished - history.origin
            if not any(s <= end and start <= e for s, e in mute.get(attempt.node, [])):
                hung.append(
                    f"{attempt.operation} {attempt.key} on {attempt.node} got no answer for "
                    f"{attempt.seconds:.1f}s from {start:.1f}s although the node was up and "
                    "reachable: a node must answer (an error will do) within the timeout"
                )
    return hung


def _windows_unable_to_answer(history: History) -> dict[str, list[tuple[float, float]]]:
    """When each node could not answer the client: paused, or cut off from it."""
    return _windows_of(history, ("pause-one", "lost-replies", "client-from-node"))


def _windows_of(history: History, kinds: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    """When each node was under a fault of one of ``kinds``, in the history's seconds."""
    windows: dict[str, list[tuple[float, float]]] = {}
    opened: dict[str, float] = {}
    for event in history.events:
        if event.process != NEMESIS:
            continue
        kind = event.f.split("-", 1)[1]
        if kind not in kinds:
            continue
        if kind == "pause-one":
            nodes = [event.value[0][0]]
        elif kind == "lost-replies":
            nodes = list(event.value[0])
        elif kind == "client-from-node":
            nodes = [b for a, b in event.value if a == "client"]
        else:
            continue
        for node in nodes:
            if event.f.startswith("start-"):
                opened[node] = event.time
            elif node in opened:
                windows.setdefault(node, []).append((opened.pop(node), event.time))
    for node, start in opened.items():
        windows.setdefault(node, []).append((start, float("inf")))
    return windows


def _recovery_seconds(history: History, writes: tuple[str, ...]) -> float | None:
    """From the last heal to the first successful write after it."""
    events = history.events
    heals = [e.time for e in events if e.process == NEMESIS and e.f.startswith("heal-")]
    if not heals:
        return None
    after = [e.time for e in events if e.type == "ok" and e.f in writes and e.time > heals[-1]]
    return round(after[0] - heals[-1], 3) if after else None


#: Rounds of the lost-reply retry scenario: the retry goes to the same leader, then (after the
#: leader is cut off) to a new one, so de-duplication must survive a leader change.
RETRY_ROUNDS = ("same-leader", "new-leader")
RETRY_ATTEMPT_TIMEOUT = 2.0
SEEN_TIMEOUT = 10.0


@pytest.mark.consensus_requires("request-ids", "strong", "leader", "network")
def test_a_retried_write_whose_reply_was_lost_takes_effect_once(
    request: pytest.FixtureRequest,
    consensus_cluster: Cluster,
    consensus_clients: list[RecordingClient],
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_settings: Settings,
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """For certain, not by chance: a put reaches the leader and applies but its reply is lost;
    another client overwrites the key and reads the new value; then the first put is retried
    with its request id (on the same leader, or on a new one after the old is cut off). The
    retry must not apply again: the key keeps the other client's value. Checked directly and
    as a linearizable register history (one logical put from first attempt to answer)."""
    timeout = consensus_settings.operation_timeout
    scenario = LostReplyRetry(
        consensus_cluster, consensus_clients, consensus_history, consensus_nemesis, timeout
    )
    problems = []
    observed = 0
    for number, variant in enumerate(RETRY_ROUNDS):
        request_id = f"lost-reply-{consensus_rng.getrandbits(64):016x}"
        outcome = scenario.run(f"retried-{number}", request_id, variant)
        if outcome is None:
            continue
        observed += 1
        if outcome:
            problems.append(outcome)
    if observed == 0:
        pytest.skip(
            "n/a: in no round did a write whose reply was lost take effect, so a retry "
            "could not be judged"
        )
    verdict = check_history(consensus_history.events, RegisterModel(), budget=60.0)
    if verdict.linearizable is False:
        page = write_counterexample(
            tmp_path, consensus_history.events, RegisterModel(), verdict, request.node.name
        )
        request.node.user_properties.append((COUNTEREXAMPLE_PROPERTY, str(page)))
        if not problems and verdict.counterexample is not None:
            problems.append(verdict.counterexample.describe(RegisterModel()))
    if problems:
        pytest.fail(
            "; ".join(problems) + ". A retry carries its first attempt's request id, and the "
            "store must apply each request id once (also after a leader change)",
            pytrace=False,
        )


class LostReplyRetry:
    """One round of: lose the leader's replies, put (applied, answer lost), overwrite from
    another client, [cut off the old leader,] retry the put with its request id, read."""

    def __init__(
        self,
        cluster: Cluster,
        clients: list[RecordingClient],
        history: History,
        nemesis: Nemesis,
        timeout: float,
    ) -> None:
        self.cluster, self.clients, self.history = cluster, clients, history
        self.nemesis, self.timeout = nemesis, timeout
        # The same adapter clients, unrecorded: this scenario records its logical put itself.
        self.raw = {client.node: client.inner for client in clients}

    def run(self, key: str, request_id: str, variant: str) -> str | None:
        """None when the first attempt never took effect (nothing to judge); "" when the
        retry was applied once; else what went wrong."""
        leader, _ = wait_for_leader(self.cluster)
        others = [c for c in self.clients if c.node != leader.name]
        # Reads and the overwrite ask the followers first, then the leader (once its replies
        # flow again): a store whose followers refuse strong reads and writes with
        # not-leader (hashicorp/raft without forwarding) is judged too, not left n/a.
        everyone = [*others, *(c for c in self.clients if c.node == leader.name)]
        first, second = f"{key}-first", f"{key}-second"
        # The attempt must go over a connection that is already open: opening one needs the
        # node's replies (a gRPC channel waits for the server's preface), which are lost.
        self.raw[leader.name].get(key, level=ReadLevel.STRONG, timeout=self.timeout)
        lost = self.nemesis.apply(Fault("lost-replies", 0, 0, ((leader.name,),)))
        process = self.history.new_process()
        self.history.record(process, "invoke", "put", key=key, value=first, node=leader.name)
        try:
            self.raw[leader.name].put(
                key, first, timeout=RETRY_ATTEMPT_TIMEOUT, request_id=request_id
            )
        except IndefiniteError:
            pass  # the reply was lost, as intended
        except ConsensusError:
            self.nemesis.heal(lost)
            self.history.record(process, "fail", "put", key=key, value=first, node=leader.name)
            return None  # refused definitely (the leader changed meanwhile): no retry to judge
        else:
            self.nemesis.heal(lost)
            raise HarnessError(
                f"{leader.name} answered a put although its replies to the client were "
                "dropped: the lost-replies fault did not take effect"
            )
        # The reply is lost for good (the client gave up on it): the leader may answer again.
        self.nemesis.heal(lost)
        if not self._reads_eventually(everyone, key, first):
            self._retry(process, key, first, request_id, [c.node for c in self.clients])
            return None
        overwritten = self._put_somewhere(everyone, key, second)
        if not overwritten or not self._reads_eventually(everyone, key, second):
            self._retry(process, key, first, request_id, [c.node for c in self.clients])
            return None
        targets = [leader.name, *(c.node for c in others)]
        cut_off = None
        if variant == "new-leader":
            links = cut([leader.name], [c.node for c in others])
            cut_off = self.nemesis.apply(Fault("isolate-leader", 0, 0, links))
            wait_for_leader(self.cluster, among=[n for n in self.cluster.nodes if n is not leader])
            targets = [c.node for c in others]
        self._retry(process, key, first, request_id, targets)
        read = wait_for(
            lambda: strong_read_anywhere(everyone, key, self.timeout),
            timeout=SEEN_TIMEOUT * 3,
            what=f"a strong read of {key} after the retry",
        )[0]
        if cut_off is not None:
            self.nemesis.heal(cut_off)
        if read == second:
            return ""
        where = "a new leader" if variant == "new-leader" else f"the same leader {leader.name}"
        return (
            f"{key}: put {first!r} (request id {request_id}) applied on {leader.name} with its "
            f"reply lost, then overwritten with {second!r} by another client; its retry on "
            f"{where} took effect again: {key} reads {read!r}"
        )

    def _reads_eventually(self, clients: list[RecordingClient], key: str, value: str) -> bool:
        try:
            wait_for(
                lambda: strong_read_anywhere(clients, key, self.timeout) == (value,),
                timeout=SEEN_TIMEOUT,
                what=f"{key} = {value!r}",
            )
        except WaitTimeout:
            return False
        return True

    def _put_somewhere(self, clients: list[RecordingClient], key: str, value: str) -> bool:
        for client in clients:
            try:
                client.put(key, value, timeout=self.timeout)
                return True
            except ConsensusError:
                continue
        return False

    def _retry(self, process: int, key: str, value: str, request_id: str, nodes: list[str]) -> None:
        """Retry the logical put with its request id until a node acknowledges it, and
        record its end: ok, or unknown (info) if none did within the deadline."""
        deadline = time.monotonic() + POLICY.deadline * 2
        while time.monotonic() < deadline:
            for node in nodes:
                try:
                    self.raw[node].put(
                        key, value, timeout=RETRY_ATTEMPT_TIMEOUT, request_id=request_id
                    )
                except ConsensusError:
                    continue
                self.history.record(process, "ok", "put", key=key, value=value, node=node)
                return
            time.sleep(0.2)
        self.history.record(process, "info", "put", key=key, value=value, error="no retry ack")
