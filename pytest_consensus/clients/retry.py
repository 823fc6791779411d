"""The client retry policy: the general form of "set with retry" for a Raft-backed store.

A logical operation gets one overall deadline and one request id. Attempts go to the node
believed to lead; a not-leader refusal with a hint moves to the hinted node at once, other
definite refusals and unknown outcomes move on to the next node after an exponential
backoff with full jitter. A rejected request is not retried. If any attempt's outcome was
unknown and none succeeded, the logical operation's outcome is unknown too: reporting it as
failed could hide a write that happened.

The history records the *logical* operation (from its first attempt to its result), which
is what the checkers must judge: with request ids, a retry returns the first attempt's
result, so judging attempts one by one would misplace it in time. Each attempt is kept in
``attempts`` for diagnosis and for measuring how fast each node answered.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytest_consensus.clients.history import EventType, History
from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.contract.errors import (
    ConsensusError,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff ``base_delay * multiplier**n`` capped at ``max_delay``, with full jitter (a
    uniform draw up to that bound); ``deadline`` bounds the whole logical operation and
    ``attempt_timeout`` each attempt."""

    deadline: float = 15.0
    attempt_timeout: float = 2.0
    base_delay: float = 0.05
    max_delay: float = 1.0
    multiplier: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        bound = min(self.max_delay, self.base_delay * self.multiplier**attempt)
        return rng.uniform(0.0, bound)


@dataclass(frozen=True)
class Attempt:
    operation: str
    key: str
    node: str
    request_id: str | None
    started: float
    finished: float
    outcome: str  # "ok", or the error kind
    #: The error was not definite (no answer came): a write may have taken effect unseen.
    unanswered: bool = False

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class RetryingClient:
    """One logical client over every node of a cluster, applying a RetryPolicy."""

    clients: Mapping[str, Client]
    history: History
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    attempts: list[Attempt] = field(default_factory=list)
    #: The node to try first (default: the home, else a random one); moved on from on failures.
    first_node: str | None = None
    #: Where every logical operation starts (None: where the last one ended). A client with
    #: a home keeps sending to its node through faults, so a node cut off from the majority
    #: keeps being asked, instead of losing its clients to the first failure for good.
    home: str | None = None

    def __post_init__(self) -> None:
        self.node = "any"
        self.process = self.history.new_process()
        self._nodes = sorted(self.clients)
        self._target = self.home or self.first_node or self.rng.choice(self._nodes)

    # -- the operations ------------------------------------------------------------------
    def put(self, key: str, value: str, *, request_id: str | None = None) -> None:
        rid = request_id or self._request_id()
        self._logical(
            "put", key, value, lambda c, t: c.put(key, value, timeout=t, request_id=rid), rid
        )

    def append(self, key: str, value: str, *, request_id: str | None = None) -> None:
        rid = request_id or self._request_id()
        self._logical(
            "append", key, value, lambda c, t: c.append(key, value, timeout=t, request_id=rid), rid
        )

    def delete(self, key: str, *, request_id: str | None = None) -> None:
        rid = request_id or self._request_id()
        self._logical(
            "delete", key, None, lambda c, t: c.delete(key, timeout=t, request_id=rid), rid
        )

    def cas(
        self, key: str, expected: str | None, new: str, *, request_id: str | None = None
    ) -> bool:
        rid = request_id or self._request_id()
        return bool(
            self._logical(
                "cas",
                key,
                [expected, new],
                lambda c, t: c.cas(key, expected, new, timeout=t, request_id=rid),
                rid,
            )
        )

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG) -> str | None:
        f = "get" if ReadLevel(level) is ReadLevel.STRONG else "stale-get"
        result: str | None = self._logical(
            f, key, None, lambda c, t: c.get(key, level=level, timeout=t), None
        )
        return result

    # -- machinery -----------------------------------------------------------------------
    def _request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _logical(
        self,
        f: str,
        key: str,
        value: Any,
        call: Callable[[Client, float], T],
        request_id: str | None,
    ) -> T:
        process = self.process
        self.history.record(process, "invoke", f, key=key, value=value)
        try:
            result = self._with_retries(f, key, call, request_id)
        except ConsensusError as error:
            outcome: EventType = "fail" if error.definite else "info"
            self.history.record(
                process, outcome, f, key=key, value=value, error=f"{error.kind}: {error}"
            )
            if not error.definite:
                self.process = self.history.new_process()
            raise
        if f == "cas" and not result:
            self.history.record(process, "fail", f, key=key, value=value, error="mismatch")
        else:
            shown = result if f in ("get", "stale-get") else value
            self.history.record(process, "ok", f, key=key, value=shown)
        return result

    def _with_retries(
        self, f: str, key: str, call: Callable[[Client, float], T], request_id: str | None
    ) -> T:
        deadline = self.clock() + self.policy.deadline
        if self.home is not None:
            self._target = self.home
        unknown: ConsensusError | None = None
        last: ConsensusError | None = None
        attempt = 0
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                tried = f"{attempt} attempts in {self.policy.deadline:.1f}s"
                if unknown is not None:
                    raise Timeout(
                        f"gave up after {tried}; an attempt's outcome is unknown "
                        f"({unknown.kind}: {unknown}), so this write may have happened"
                    )
                raise Unavailable(f"gave up after {tried}; last: {last}")
            node = self._target
            started = self.clock()
            try:
                result = call(self.clients[node], min(self.policy.attempt_timeout, remaining))
            except Rejected as error:
                self._attempt(f, key, node, request_id, started, error)
                raise
            except NotLeader as error:
                self._attempt(f, key, node, request_id, started, error)
                last = error
                hint = error.leader_hint
                if hint is not None and hint in self.clients and hint != node:
                    self._target = hint
                    attempt += 1
                    continue  # a hint is worth following at once
                self._next_node()
            except ConsensusError as error:
                self._attempt(f, key, node, request_id, started, error)
                last = error
                if not error.definite:
                    unknown = error
                self._next_node()
            else:
                self._attempt(f, key, node, request_id, started, None)
                return result
            pause = min(self.policy.delay(attempt, self.rng), max(0.0, deadline - self.clock()))
            self.sleep(pause)
            attempt += 1

    def _next_node(self) -> None:
        position = self._nodes.index(self._target)
        self._target = self._nodes[(position + 1) % len(self._nodes)]

    def _attempt(
        self,
        f: str,
        key: str,
        node: str,
        request_id: str | None,
        started: float,
        error: ConsensusError | None,
    ) -> None:
        outcome = "ok" if error is None else error.kind
        unanswered = error is not None and not error.definite
        finished = self.clock()
        self.attempts.append(
            Attempt(f, key, node, request_id, started, finished, outcome, unanswered)
        )


def spread_clients(
    clients: Mapping[str, Client],
    history: History,
    policy: RetryPolicy,
    count: int,
    rng: random.Random,
) -> list[RetryingClient]:
    """``count`` retrying clients homed on different nodes: each logical operation starts on
    the client's home node, so every node, whatever it becomes during a fault schedule (a
    minority, a deposed leader), keeps seeing traffic and its answers are judged."""
    names = sorted(clients)
    return [
        RetryingClient(
            clients,
            history,
            policy,
            random.Random(rng.random()),
            home=names[index % len(names)],
        )
        for index in range(count)
    ]


def retried_after_unanswered(
    clients: Sequence[RetryingClient], operation: str, windows: Sequence[tuple[float, float]]
) -> int:
    """Logical ``operation`` writes (by request id) retried after an attempt that got no
    answer and overlapped one of ``windows`` (monotonic seconds): where replies were lost,
    these are the writes a store that ignores request ids applies twice."""
    retried = 0
    for client in clients:
        unanswered: set[str] = set()
        counted: set[str] = set()
        for attempt in client.attempts:
            rid = attempt.request_id
            if attempt.operation != operation or rid is None:
                continue
            if rid in unanswered and rid not in counted:
                counted.add(rid)
                retried += 1
            overlaps = any(s <= attempt.finished and attempt.started <= e for s, e in windows)
            if overlaps and attempt.unanswered:
                unanswered.add(rid)
    return retried
