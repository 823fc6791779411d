"""partition-retries: clients time out and retry through partitions.

Appends go through the library's retry policy (backoff with jitter, leader hints, one
deadline, one request id per logical write) while a generated schedule partitions, kills
and pauses nodes. Afterwards no acknowledged append is lost, none took effect twice, and
no attempt hung past its timeout. The time from the last heal to the first success is
reported.
"""

from __future__ import annotations

import random
import re

import pytest

from pytest_consensus.adapters.http_protocol import TRANSPORT_GRACE
from pytest_consensus.checkers.sets import check_sets
from pytest_consensus.cluster_ops import wait_for_leader
from pytest_consensus.contract import Cluster
from pytest_consensus.faults import Nemesis
from pytest_consensus.fixtures import ScheduleFactory
from pytest_consensus.history import NEMESIS, History
from pytest_consensus.retry import RetryingClient, RetryPolicy, spread_clients
from pytest_consensus.settings import Settings
from pytest_consensus.workload import run_workload

pytestmark = pytest.mark.consensus_rule("partition-retries")

KINDS = ("isolate-leader", "random-halves", "majority-ring", "bridge", "kill-one", "pause-one")
WORKERS = 4
#: Seconds between one worker's appends, so that traffic meets every fault of the schedule.
PACE = 0.05
MAX_APPENDS_PER_WORKER = 1000
KEYS = 3
POLICY = RetryPolicy(deadline=15.0, attempt_timeout=2.0)
#: An attempt may take its timeout, the transport's grace, and this much scheduling slack.
HANG_SLACK = 1.0
KINDS = (*KINDS, "client-from-node")


def tokens(value: str | None) -> list[str]:
    return re.findall(r"[^,]+,", value or "")


@pytest.mark.consensus_requires("append", "strong", "leader", "kill", "restart", "pause", "network")
def test_appends_through_the_retry_policy_survive_a_fault_schedule(
    request: pytest.FixtureRequest,
    consensus_cluster: Cluster,
    consensus_history: History,
    consensus_nemesis: Nemesis,
    consensus_schedule: ScheduleFactory,
    consensus_settings: Settings,
    consensus_rng: random.Random,
) -> None:
    """Appends retried through partitions, kills and pauses are never lost or doubled, and
    every attempt answers within its timeout."""
    schedule = consensus_schedule(KINDS)
    clients = {node.name: consensus_cluster.client(node) for node in consensus_cluster.nodes}
    retrying = spread_clients(clients, consensus_history, POLICY, WORKERS, consensus_rng)

    def append(client: RetryingClient, rng: random.Random, number: int) -> None:
        key = f"list-{rng.randrange(KEYS)}"
        client.append(key, f"w{retrying.index(client)}-{number},")

    consensus_nemesis.start(schedule)
    result = run_workload(
        retrying,
        append,
        seed=consensus_rng.randrange(2**32),
        operations_per_client=MAX_APPENDS_PER_WORKER,
        time_limit=schedule.duration + 1.0,
        pace=PACE,
    )
    consensus_nemesis.wait(schedule.duration + 120.0)
    assert not consensus_nemesis.errors, f"faults failed: {consensus_nemesis.errors}"
    assert not result.crashes, "workers crashed:\n" + "\n".join(result.crashes)

    wait_for_leader(consensus_cluster)
    reader = RetryingClient(
        clients, consensus_history, RetryPolicy(deadline=30.0), random.Random(0)
    )
    for number in range(KEYS):
        reader.get(f"list-{number}")

    results = check_sets(consensus_history.events, "append", tokens)
    problems = [r.describe() for r in results if not r.ok]
    if any(r.duplicated for r in results):
        problems.append(
            "appends took effect more than once: a retry carries the request id of its first "
            "attempt, and the store must apply each request id once"
        )
    slow = [
        f"{a.operation} {a.key} on {a.node} took {a.seconds:.1f}s ({a.outcome})"
        for client in retrying
        for a in client.attempts
        if a.seconds > POLICY.attempt_timeout + TRANSPORT_GRACE + HANG_SLACK
    ] + _hung_attempts(retrying, consensus_history)
    recovery = _recovery_seconds(consensus_history)
    request.node.user_properties.append(("recovery_seconds", recovery))
    if problems or slow:
        pytest.fail("; ".join(problems + slow), pytrace=False)


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
    windows: dict[str, list[tuple[float, float]]] = {}
    opened: dict[str, float] = {}
    for event in history.events:
        if event.process != NEMESIS:
            continue
        kind = event.f.split("-", 1)[1]
        if kind == "pause-one":
            nodes = [event.value[0][0]]
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


def _recovery_seconds(history: History) -> float | None:
    """From the last heal to the first successful append after it."""
    events = history.events
    heals = [e.time for e in events if e.process == NEMESIS and e.f.startswith("heal-")]
    if not heals:
        return None
    after = [e.time for e in events if e.type == "ok" and e.f == "append" and e.time > heals[-1]]
    return round(after[0] - heals[-1], 3) if after else None
