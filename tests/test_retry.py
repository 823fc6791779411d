"""The retry policy, against scripted clients and a fake clock (harness logic only)."""

from __future__ import annotations

import random

import pytest

from pytest_consensus.clients.history import History
from pytest_consensus.clients.retry import RetryingClient, RetryPolicy, retried_after_unanswered
from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted(Client):
    """Each put pops the next outcome: an exception to raise, or None for success."""

    def __init__(self, node: str, outcomes: list[BaseException | None], fake: FakeTime) -> None:
        self.node = node
        self.outcomes = outcomes
        self.fake = fake
        self.request_ids: list[str | None] = []

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        self.request_ids.append(request_id)
        self.fake.now += 0.1
        outcome = self.outcomes.pop(0) if self.outcomes else Unavailable("down")
        if outcome is not None:
            raise outcome

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        return "v"


def make(
    scripts: dict[str, list[BaseException | None]],
    policy: RetryPolicy | None = None,
) -> tuple[RetryingClient, dict[str, Scripted], FakeTime, History]:
    fake = FakeTime()
    clients = {name: Scripted(name, outcomes, fake) for name, outcomes in scripts.items()}
    history = History()
    retrying = RetryingClient(
        clients, history, policy or RetryPolicy(), random.Random(1), fake.sleep, fake.clock
    )
    retrying._target = "n1"
    return retrying, clients, fake, history


def test_follows_the_leader_hint_at_once_and_reuses_the_request_id() -> None:
    retrying, clients, fake, history = make(
        {"n1": [NotLeader("no", leader_hint="n3")], "n2": [], "n3": [None]}
    )
    retrying.put("k", "v")
    assert [a.node for a in retrying.attempts] == ["n1", "n3"]
    assert fake.sleeps == []  # a hint is followed without backing off
    assert clients["n1"].request_ids == clients["n3"].request_ids
    assert [e.type for e in history.events] == ["invoke", "ok"]  # one logical operation


def test_backs_off_exponentially_with_full_jitter_across_nodes() -> None:
    policy = RetryPolicy(deadline=100, base_delay=0.1, max_delay=0.5, multiplier=2)
    retrying, _, fake, _ = make(
        {
            "n1": [Unavailable("x"), Unavailable("x")],
            "n2": [Unavailable("x"), None],
            "n3": [Unavailable("x")],
        },
        policy,
    )
    retrying.put("k", "v")
    assert [a.node for a in retrying.attempts] == ["n1", "n2", "n3", "n1", "n2"]
    bounds = [0.1, 0.2, 0.4, 0.5]
    assert len(fake.sleeps) == 4
    assert all(0 <= pause <= bound for pause, bound in zip(fake.sleeps, bounds, strict=True))
    assert len(set(fake.sleeps)) == 4  # jittered, not fixed


def test_one_overall_deadline_then_a_definite_failure() -> None:
    retrying, _, fake, history = make(
        {"n1": [], "n2": [], "n3": []}, RetryPolicy(deadline=3.0, max_delay=0.2)
    )
    with pytest.raises(Unavailable, match="gave up after"):
        retrying.put("k", "v")
    assert fake.now <= 3.0 + 0.1 + 1e-9
    assert history.events[-1].type == "fail"


def test_an_unknown_attempt_makes_the_whole_operation_unknown() -> None:
    retrying, _, _, history = make(
        {"n1": [Timeout("slow")], "n2": [], "n3": []}, RetryPolicy(deadline=2.0)
    )
    with pytest.raises(Timeout, match="may have happened"):
        retrying.put("k", "v")
    assert history.events[-1].type == "info"
    assert retrying.process != history.events[0].process


def test_an_error_that_is_not_definite_counts_as_unknown_like_an_indefinite_one() -> None:
    """An adapter may raise the base ConsensusError (the contract's default is indefinite);
    a later definite refusal must not turn that operation into a failure the checkers trust."""
    retrying, _, _, history = make(
        {"n1": [ConsensusError("odd")], "n2": [], "n3": []}, RetryPolicy(deadline=2.0)
    )
    with pytest.raises(Timeout, match="may have happened"):
        retrying.put("k", "v")
    assert history.events[-1].type == "info"
    assert retrying.attempts[0].unanswered
    assert not any(a.unanswered for a in retrying.attempts[1:])  # n2, n3: unavailable


def test_a_rejected_request_is_not_retried() -> None:
    retrying, _, _, _ = make({"n1": [Rejected("bad")], "n2": [None], "n3": []})
    with pytest.raises(Rejected):
        retrying.put("k", "v")
    assert len(retrying.attempts) == 1


def test_a_lost_connection_moves_on_and_succeeds() -> None:
    retrying, _, _, history = make({"n1": [ConnectionLost("reset")], "n2": [None], "n3": []})
    retrying.put("k", "v")
    assert [a.outcome for a in retrying.attempts] == ["connection-lost", "ok"]
    assert history.events[-1].type == "ok"


def test_request_ids_differ_between_logical_operations() -> None:
    retrying, clients, _, _ = make({"n1": [None, None], "n2": [], "n3": []})
    retrying.put("a", "1")
    retrying.put("b", "2")
    first, second = clients["n1"].request_ids
    assert first and second and first != second


def test_a_client_with_a_home_starts_every_operation_there_again() -> None:
    retrying, _, _, _ = make({"n1": [Unavailable("cut off"), None], "n2": [None, None], "n3": []})
    retrying.home = "n1"
    retrying.put("a", "1")  # n1 refuses: moves on to n2
    retrying.put("b", "2")  # back home first: n1 answers now
    assert [a.node for a in retrying.attempts] == ["n1", "n2", "n1"]


def test_a_client_without_a_home_stays_where_it_last_succeeded() -> None:
    retrying, _, _, _ = make({"n1": [Unavailable("cut off")], "n2": [None, None], "n3": []})
    retrying.put("a", "1")
    retrying.put("b", "2")
    assert [a.node for a in retrying.attempts] == ["n1", "n2", "n2"]


def test_counts_writes_retried_after_an_attempt_whose_reply_was_lost() -> None:
    """Only a retry after an unanswered attempt inside a lost-reply window counts, once per
    logical write: those are the writes a store that ignores request ids applies twice."""
    retrying, _, fake, _ = make({"n1": [Timeout("lost"), None, None, Timeout("cut off"), None]})
    retrying.put("lost-then-retried", "v")  # attempts from 0.0 to 0.1, then again
    retrying.put("answered", "v")
    fake.now = 10.0
    retrying.put("unanswered-outside-the-window", "v")
    lost_replies = [(0.0, 0.05)]
    assert [a.outcome for a in retrying.attempts] == ["timeout", "ok", "ok", "timeout", "ok"]
    assert retried_after_unanswered([retrying], "put", lost_replies) == 1
    assert retried_after_unanswered([retrying], "put", []) == 0
    assert retried_after_unanswered([retrying], "put", [(0.0, 20.0)]) == 2
    assert retried_after_unanswered([retrying], "append", [(0.0, 20.0)]) == 0
