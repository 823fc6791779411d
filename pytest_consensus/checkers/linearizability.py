"""Linearizability checking by Wing & Gong / Lowe search, as Porcupine does it.

Operations are partitioned by key (each key is checked on its own, smallest first, and the
first illegal key stops the check). Within a key, calls and returns form a linked list in
history order; the search linearizes a call whenever the model allows it, lifting it out of
the list, and backtracks when it meets the return of an operation it could not place. A set
of visited (linearized operations, state) pairs prunes repeated work; linearized sets are
int bitsets. Operations with unknown outcome have no return: they may be placed anywhere
after their call, or left out. A time budget turns a search that runs too long into
``unknown``, never into a wrong verdict.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_consensus.checkers.models import ILLEGAL, Model
from pytest_consensus.checkers.operations import Operation, pair_operations
from pytest_consensus.history import Event

#: How many search steps run between looks at the clock.
CLOCK_CHECK_INTERVAL = 2048


class _OutOfTime(Exception):
    pass


@dataclass
class Counterexample:
    """Why a key is not linearizable.

    ``operations``: a minimal subset of the key's operations that is already not
    linearizable (removing any one makes it linearizable, when shrinking finished in time).
    ``longest_prefix``: the longest linearization the search found, as (operation, state
    after it); ``blocked``: the operation whose return came before it could be placed.
    """

    key: Any
    operations: list[Operation]
    longest_prefix: list[tuple[Operation, Any]]
    blocked: Operation | None
    minimal: bool

    def describe(self, model: Model) -> str:
        lines = [f"key {self.key!r} is not linearizable"]
        if self.blocked is not None:
            lines.append(f"  cannot place: {self.blocked.describe()}")
        lines.append(f"  longest linearizable prefix ({len(self.longest_prefix)} operations):")
        for operation, state in self.longest_prefix[-10:]:
            lines.append(f"    {operation.describe()}  -> {model.describe(state)}")
        label = "minimal" if self.minimal else "shrunk (budget ran out)"
        lines.append(f"  {label} non-linearizable subset ({len(self.operations)} operations):")
        for operation in self.operations:
            lines.append(f"    {operation.describe()}")
        return "\n".join(lines)


@dataclass
class LinearizabilityResult:
    linearizable: bool | None  # None: the time budget ran out first
    operations: int
    keys: int
    seconds: float
    counterexample: Counterexample | None = None
    unknown_keys: list[Any] = field(default_factory=list)


@dataclass
class _Search:
    ok: bool
    longest: list[int]
    longest_states: list[Any]
    blocked: int | None


def _search(ops: Sequence[Operation], model: Model, deadline: float | None) -> _Search:
    """Lowe's just-in-time linearization over one key's operations."""
    n = len(ops)
    infinity = float("inf")
    # Entries 0..2n-1: a call and a return per operation, in history order.
    timed = []
    for index, operation in enumerate(ops):
        timed.append((operation.call, 0, index))
        ret = operation.ret
        timed.append((infinity if ret is None else ret, 1, index))
    timed.sort()
    head = 2 * n
    end = -1
    nxt = [end] * (2 * n + 1)
    prv = [head] * (2 * n + 1)
    entry_op = [0] * (2 * n)
    is_call = [False] * (2 * n)
    partner = [0] * (2 * n)
    call_entry = [0] * n
    return_entry = [0] * n
    previous = head
    for position, (_, kind, index) in enumerate(timed):
        entry_op[position] = index
        is_call[position] = kind == 0
        if kind == 0:
            call_entry[index] = position
        else:
            return_entry[index] = position
        nxt[previous] = position
        prv[position] = previous
        previous = position
    for index in range(n):
        partner[call_entry[index]] = return_entry[index]
    completed = sum(1 for operation in ops if operation.ret is not None)

    step = model.step
    state: Any = model.init()
    linearized = 0
    remaining = completed
    stack: list[tuple[int, Any]] = []  # (call entry, state before it)
    cache: set[tuple[int, Hashable]] = set()
    longest: list[int] = []
    longest_states: list[Any] = []
    blocked: int | None = None
    steps = 0
    entry = nxt[head]
    while remaining:
        steps += 1
        if deadline is not None and steps % CLOCK_CHECK_INTERVAL == 0:
            if time.monotonic() > deadline:
                raise _OutOfTime
        if is_call[entry]:
            index = entry_op[entry]
            operation = ops[index]
            new_state = step(state, operation)
            if new_state is not ILLEGAL:
                new_linearized = linearized | (1 << index)
                marker = (new_linearized, new_state)
                if marker not in cache:
                    cache.add(marker)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    if operation.ret is not None:
                        remaining -= 1
                    # lift the call and its return out of the list
                    following = nxt[entry]
                    nxt[prv[entry]] = following
                    if following != end:
                        prv[following] = prv[entry]
                    match = partner[entry]
                    following = nxt[match]
                    nxt[prv[match]] = following
                    if following != end:
                        prv[following] = prv[match]
                    if len(stack) > len(longest):
                        longest = [entry_op[e] for e, _ in stack]
                        longest_states = []
                        blocked = None
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            if len(stack) == len(longest) and blocked is None:
                blocked = entry_op[entry]
            if not stack:
                return _Search(False, longest, _replay_states(ops, longest, model), blocked)
            entry, state = stack.pop()
            index = entry_op[entry]
            linearized &= ~(1 << index)
            if ops[index].ret is not None:
                remaining += 1
            # unlift: the return first, then the call (reverse order of removal)
            match = partner[entry]
            nxt[prv[match]] = match
            if nxt[match] != end:
                prv[nxt[match]] = match
            nxt[prv[entry]] = entry
            if nxt[entry] != end:
                prv[nxt[entry]] = entry
            entry = nxt[entry]
    return _Search(True, [entry_op[e] for e, _ in stack], longest_states, None)


def _replay_states(ops: Sequence[Operation], order: list[int], model: Model) -> list[Any]:
    states = []
    state = model.init()
    for index in order:
        state = model.step(state, ops[index])
        states.append(state)
    return states


def partition_operations(
    operations: Sequence[Operation], model: Model
) -> dict[Hashable, list[Operation]]:
    partitions: dict[Hashable, list[Operation]] = defaultdict(list)
    for operation in operations:
        if model.include(operation):
            partitions[model.partition(operation)].append(operation)
    return partitions


def _shrink(
    ops: list[Operation], model: Model, deadline: float
) -> tuple[list[Operation], bool]:
    """Drop operations one at a time while the rest stays non-linearizable."""
    kept = list(ops)
    for candidate in sorted(ops, key=lambda o: -o.call):
        if time.monotonic() > deadline:
            return kept, False
        trial = [o for o in kept if o is not candidate]
        try:
            if not _search(trial, model, deadline).ok:
                kept = trial
        except _OutOfTime:
            return kept, False
    return kept, True


def check_operations(
    operations: Sequence[Operation],
    model: Model,
    *,
    budget: float | None = None,
    counterexample: bool = True,
    shrink_budget: float = 5.0,
) -> LinearizabilityResult:
    """Check paired operations against ``model`` within ``budget`` seconds (None: no limit)."""
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    partitions = partition_operations(operations, model)
    total = sum(len(ops) for ops in partitions.values())
    unknown: list[Any] = []
    for key, ops in sorted(partitions.items(), key=lambda item: len(item[1])):
        try:
            search = _search(ops, model, deadline)
        except _OutOfTime:
            unknown.append(key)
            break
        if search.ok:
            continue
        example = None
        if counterexample:
            shrunk, minimal = _shrink(ops, model, time.monotonic() + shrink_budget)
            prefix = [(ops[i], s) for i, s in zip(search.longest, search.longest_states)]
            blocked = None if search.blocked is None else ops[search.blocked]
            example = Counterexample(key, sorted(shrunk, key=lambda o: o.call), prefix,
                                     blocked, minimal)
        return LinearizabilityResult(False, total, len(partitions),
                                     time.monotonic() - started, example)
    if unknown:
        return LinearizabilityResult(None, total, len(partitions), time.monotonic() - started,
                                     unknown_keys=unknown)
    return LinearizabilityResult(True, total, len(partitions), time.monotonic() - started)


def check_history(
    events: Sequence[Event], model: Model, **options: Any
) -> LinearizabilityResult:
    """Pair a history's events into operations and check them."""
    return check_operations(pair_operations(events), model, **options)
