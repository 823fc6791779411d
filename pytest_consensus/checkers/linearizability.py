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

import bisect
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_consensus.checkers.models import ILLEGAL, Model
from pytest_consensus.checkers.operations import Operation, pair_operations
from pytest_consensus.clients.events import Event

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
    seconds: float = 0.0

    def describe(self, model: Model) -> str:
        subject = "the history" if self.key is None else f"key {self.key!r}"
        lines = [f"{subject} is not linearizable"]
        if self.blocked is not None:
            lines.append(f"  cannot place: {self.blocked.describe()}")
        lines.append(f"  longest linearizable prefix ({len(self.longest_prefix)} operations):")
        for operation, state in self.longest_prefix[-10:]:
            lines.append(f"    {operation.describe()}  -> {model.describe(state)}")
        label = "minimal" if self.minimal else "partly shrunk (shrinking budget ran out)"
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
    longest_states: list[Any]  # filled only when the search failed
    blocked: int | None


def _search(ops: Sequence[Operation], model: Model, deadline: float | None) -> _Search:
    """Lowe's just-in-time linearization over one key's operations."""
    n = len(ops)
    # Entries: a call and a return per operation with a known outcome, in history order, in
    # a linked list the search lifts placed operations out of. Operations of unknown outcome
    # have no return to respect and are kept apart, by kind (below): in the list, the many
    # of them open to the end of a long history would be rescanned at every step.
    known = [index for index, operation in enumerate(ops) if operation.ret is not None]
    timed: list[tuple[float, int, int]] = sorted(
        [(float(ops[index].call), 0, index) for index in known]
        + [(ops[index].ret, 1, index) for index in known]  # type: ignore[misc]
    )
    size = len(timed)
    head = size
    end = -1
    # The list in history order: entry i's successor is i + 1, the head's is 0.
    nxt = [*range(1, size), end, 0] if size else [end]
    prv = [head, *range(size - 1), head] if size else [head]
    entry_op = [index for _, _, index in timed]
    is_call = [kind == 0 for _, kind, _ in timed]
    call_entry = [0] * n
    return_entry = [0] * n
    for position, (_, kind, index) in enumerate(timed):
        if kind:
            return_entry[index] = position
        else:
            call_entry[index] = position
    partner = [0] * size
    for index in known:
        partner[call_entry[index]] = return_entry[index]
    completed = size // 2

    # Operations with unknown outcome and the same effect are interchangeable once both
    # are called, so they are placed in call order within their kind: `unknown_kinds` holds
    # each kind's operations by call, and `placed_of_kind` how many of each are placed.
    step = model.step
    by_effect: dict[Hashable, list[int]] = {}
    for index in sorted(range(n), key=lambda i: ops[i].call):
        operation = ops[index]
        if operation.ret is None:
            by_effect.setdefault((operation.f, _hashable(operation.value)), []).append(index)
    unknown_kinds = list(by_effect.values())
    kind_of = [0] * n
    for kind_number, members in enumerate(unknown_kinds):
        for index in members:
            kind_of[index] = kind_number
    placed_of_kind = [0] * len(unknown_kinds)
    call_time = [float(operation.call) for operation in ops]
    first_call = [call_time[members[0]] for members in unknown_kinds]  # ascending
    # Candidates are tried earliest return first, those with unknown outcome last: the
    # operation whose return comes first must be placed before anything called after it,
    # and a linearizable history rarely needs an unknown write. (Measured on the reference
    # histories: call order explores up to twice as many states.)
    priority = [(operation.ret is None, operation.ret or 0, operation.call) for operation in ops]
    # An observation (a read, a cas that saw a mismatch) never changes the state. If one is
    # legal now, placing it now loses nothing: any linearization placing it later stays
    # valid with it moved here (its call is past, and everything that had to precede it is
    # already placed). So it is a forced move, not a choice to backtrack over.
    observation = [model.is_observation(operation) for operation in ops]
    monotone = [model.is_monotone(operation) for operation in ops]
    # For each observation, the operations that could still reset the state before it
    # must be placed (non-monotone, state-changing, called before its return). Once all of
    # them are placed and the model says monotone moves cannot make it legal, the branch
    # is dead however the remaining operations are ordered.
    resetters = [index for index in range(n) if not observation[index] and not monotone[index]]
    # After an operation of unknown outcome is placed, the next placement must depend on
    # the state: were it a blind write, the unknown one would be overwritten unseen and
    # could as well never have happened (which the search also explores). Nodes reached
    # this way are cached apart from the others, since they have fewer children.
    blind = [model.is_blind(operation) for operation in ops]
    uses_monotone = any(monotone)
    rescue_mask = [0] * n
    if uses_monotone:
        # The resetters called before each return, as one mask: the running union of the
        # resetters in call order, looked up by the return (linear, not resetters times
        # observations, which was half the time of a 6,000-operation kv history).
        by_call = sorted(resetters, key=lambda other: ops[other].call)
        resetter_calls = [ops[other].call for other in by_call]
        called_before = [0]
        for other in by_call:
            called_before.append(called_before[-1] | (1 << other))
        for index, operation in enumerate(ops):
            if observation[index] and operation.ret is not None:
                rescue_mask[index] = called_before[
                    bisect.bisect_left(resetter_calls, operation.ret)
                ]

    def candidates() -> list[int]:
        found = []
        entry = nxt[head]
        while entry != end and is_call[entry]:
            index = entry_op[entry]
            if observation[index]:
                operation = ops[index]
                if step(state, operation) is not ILLEGAL:
                    return [index]
                if (
                    uses_monotone
                    and not rescue_mask[index] & ~linearized
                    and not model.could_reach(state, operation)
                ):
                    return []  # this observation can never become legal on this branch
            elif not (after_unknown and blind[index]):
                found.append(index)
            entry = nxt[entry]
        # An operation of unknown outcome may go next once it is called before the first
        # pending return (a call at the same time as a return counts as before it).
        limit = timed[entry][0] if entry != end else float("inf")
        for kind_number, members in enumerate(unknown_kinds):
            if first_call[kind_number] > limit:
                break  # the kinds are in order of first call: none after this one is called
            placed = placed_of_kind[kind_number]
            if placed < len(members):
                index = members[placed]
                if call_time[index] <= limit and not (after_unknown and blind[index]):
                    found.append(index)
        found.sort(key=priority.__getitem__)
        return found

    def lift(entry: int) -> None:
        for removed in (entry, partner[entry]):
            following = nxt[removed]
            nxt[prv[removed]] = following
            if following != end:
                prv[following] = prv[removed]

    def unlift(entry: int) -> None:
        for restored in (partner[entry], entry):  # reverse order of removal
            nxt[prv[restored]] = restored
            if nxt[restored] != end:
                prv[nxt[restored]] = restored

    state: Any = model.init()
    linearized = 0
    remaining = completed
    after_unknown = False
    # (candidates, next position, state, op, after_unknown before it)
    frames: list[tuple[list[int], int, Any, int, bool]] = []
    # Visited nodes, by (placed operations with a known outcome, state): the sets of placed
    # operations of unknown outcome met with them, and whether placement was restricted.
    # A node is dominated by a visited one with the same key whose unknown set is a subset
    # of its own (and which was no more restricted): operations of unknown outcome have no
    # return to respect, so one still unplaced can be placed later or never, and whatever
    # the dominated node could still do the visited one could too. A visited node has
    # either failed or is an ancestor still being explored, which covers it; either way
    # the dominated node adds nothing. This is what keeps histories with hundreds of
    # writes of unknown outcome, open to the end, from exploring every subset of them.
    unknown_mask = 0
    for index, operation in enumerate(ops):
        if operation.ret is None:
            unknown_mask |= 1 << index
    known_mask = ((1 << n) - 1) & ~unknown_mask
    cache: dict[tuple[int, Hashable], list[tuple[int, bool]]] = {}
    visited: set[tuple[int, Hashable]] = set()
    # The deepest order reached, for a counterexample: its depth, and the order itself,
    # copied only when the search first backs out of that depth (copying at every new
    # depth made a long linearizable history quadratic).
    longest: list[int] = []
    longest_depth = 0
    blocked: int | None = None
    steps = 0
    options = candidates()
    position = 0
    while remaining:
        steps += 1
        if deadline is not None and steps % CLOCK_CHECK_INTERVAL == 0:
            if time.monotonic() > deadline:
                raise _OutOfTime
        if position < len(options):
            index = options[position]
            position += 1
            operation = ops[index]
            new_state = step(state, operation)
            if new_state is ILLEGAL:
                continue
            new_linearized = linearized | (1 << index)
            unknown_now = operation.ret is None
            if not unknown_mask:  # nothing to dominate with: a plain visited set
                marker = (new_linearized, new_state)
                if marker in visited:
                    continue
                visited.add(marker)
            else:
                unknown_placed = new_linearized & unknown_mask
                key = (new_linearized & known_mask, new_state)
                seen = cache.get(key)
                if seen is None:
                    cache[key] = [(unknown_placed, unknown_now)]
                else:
                    dominated = False
                    for placed, restricted in seen:  # a loop: a generator costs more here
                        if not placed & ~unknown_placed and (unknown_now or not restricted):
                            dominated = True
                            break
                    if dominated:
                        continue
                    seen.append((unknown_placed, unknown_now))
            frames.append((options, position, state, index, after_unknown))
            after_unknown = unknown_now
            if unknown_now:
                placed_of_kind[kind_of[index]] += 1
            else:
                lift(call_entry[index])
                remaining -= 1
            state = new_state
            linearized = new_linearized
            if len(frames) > longest_depth:
                longest_depth = len(frames)
                blocked = None
            options = candidates()
            position = 0
            continue
        if len(frames) == longest_depth and blocked is None:
            longest = [frame[3] for frame in frames]
            blocked = _first_return(nxt, is_call, entry_op, head, end)
            if blocked is None:
                blocked = -1  # nothing pending returned: remembered as captured
        if not frames:
            found = None if blocked is None or blocked < 0 else blocked
            return _Search(False, longest, _replay_states(ops, longest, model), found)
        options, position, state, index, after_unknown = frames.pop()
        linearized &= ~(1 << index)
        if ops[index].ret is not None:
            remaining += 1
            unlift(call_entry[index])
        else:
            placed_of_kind[kind_of[index]] -= 1
    order = [frame[3] for frame in frames]
    return _Search(True, order, [], None)  # states are only needed for counterexamples


def _first_return(
    nxt: list[int], is_call: list[bool], entry_op: list[int], head: int, end: int
) -> int | None:
    entry = nxt[head]
    while entry != end and is_call[entry]:
        entry = nxt[entry]
    return None if entry == end else entry_op[entry]


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


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
    if type(model).include is not Model.include or type(model).partition is not Model.partition:
        for operation in operations:
            if model.include(operation):
                partitions[model.partition(operation)].append(operation)
        return partitions
    # The base rules look at an operation's name, status and error (whether to include
    # it) and key (its partition) only: each distinct triple is decided once, not each of
    # 100,000 operations through two method calls.
    included: dict[tuple[str, str, str | None], bool] = {}
    for operation in operations:
        kind = (operation.f, operation.status, operation.error)
        take = included.get(kind)
        if take is None:
            take = included[kind] = model.include(operation)
        if take:
            partitions[operation.key].append(operation)
    return partitions


def _shrink(
    ops: list[Operation], model: Model, deadline: float, blocked: Operation | None
) -> tuple[list[Operation], bool]:
    """A small non-linearizable subset that still shows *why*.

    A subset qualifies when it is not linearizable but becomes linearizable if the blocked
    operation is freed from real time (allowed anywhere): so the failure is about order,
    not about, say, a lone read of a value no kept write produced. Tried: the shortest
    qualifying prefix in call order, then removing chunks and finally single operations.
    Every candidate is re-checked; ``minimal`` says the single-operation pass finished.
    """
    end = max((o.ret for o in ops if o.ret is not None), default=0) + 1

    explain_order = blocked is not None

    def qualifies(subset: list[Operation]) -> bool:
        if _search(subset, model, deadline).ok:
            return False
        if not explain_order:
            return True
        if blocked not in subset:
            return False
        freed = blocked._replace(call=-1, ret=end)
        return _search([freed if o is blocked else o for o in subset], model, deadline).ok

    kept = sorted(ops, key=lambda o: o.call)
    try:
        if explain_order and not qualifies(kept):
            explain_order = False  # freeing it is not enough: any failing subset will do
        low, high = 1, len(kept)
        while low < high:  # shortest qualifying prefix (a heuristic: checked below)
            middle = (low + high) // 2
            if qualifies(kept[:middle]):
                high = middle
            else:
                low = middle + 1
        if qualifies(kept[:high]):
            kept = kept[:high]
        chunk = len(kept) // 2
        while chunk >= 1:
            start = 0
            while start < len(kept):
                trial = kept[:start] + kept[start + chunk :]
                if trial and qualifies(trial):
                    kept = trial
                else:
                    start += chunk
            chunk //= 2
    except _OutOfTime:
        return kept, False
    return kept, True


#: Histories with fewer operations are checked in one process: forking costs more than
#: splitting a check of a few thousand operations saves.
PARALLEL_MIN_OPERATIONS = 20_000


def check_operations(
    operations: Sequence[Operation],
    model: Model,
    *,
    budget: float | None = None,
    counterexample: bool = True,
    shrink_budget: float = 2.0,
    workers: int = 1,
) -> LinearizabilityResult:
    """Check paired operations against ``model`` within ``budget`` seconds (None: no limit).

    Keys are checked smallest first and the first illegal one decides. With ``workers``
    above 1, a history of at least PARALLEL_MIN_OPERATIONS operations over several keys
    has its keys checked in that many forked processes at once (see checkers.forked: only
    where no other thread runs); the verdict and the key reported are the same as in one
    process, except that a key found illegal decides even when another ran out of time.
    """
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    partitions = partition_operations(operations, model)
    total = sum(len(ops) for ops in partitions.values())
    order = sorted(partitions.items(), key=lambda item: len(item[1]))
    if workers > 1 and len(order) > 1 and total >= PARALLEL_MIN_OPERATIONS:
        from pytest_consensus.checkers.forked import map_forked  # only for big histories

        groups = _balanced_groups([len(ops) for _, ops in order], workers)
        outcomes = map_forked(
            # A child sends only the verdict and the key's position: the search it did is
            # done again here for a counterexample.
            lambda group: _check_keys([order[at] for at in group], group, model, deadline)[:2],
            groups,
        )
        failed = [at for verdict, at, *_ in outcomes if verdict is False]
        failing: int | None = min(failed, default=None)
        unknown = (
            [] if failed else [order[at][0] for verdict, at, *_ in outcomes if verdict is None]
        )
        search = None
    else:
        verdict, at, search = _check_keys(order, range(len(order)), model, deadline)
        failing = at if verdict is False else None
        unknown = [order[at][0]] if verdict is None else []
    if failing is not None:
        key, ops = order[failing]
        verdict_seconds = time.monotonic() - started
        example = None
        if counterexample:
            shrink_started = time.monotonic()
            if search is None:
                search = _search(ops, model, None)
            blocked = None if search.blocked is None else ops[search.blocked]
            shrunk, minimal = _shrink(ops, model, time.monotonic() + shrink_budget, blocked)
            states = search.longest_states
            prefix = [(ops[i], s) for i, s in zip(search.longest, states, strict=True)]
            example = Counterexample(
                key,
                sorted(shrunk, key=lambda o: o.call),
                prefix,
                blocked,
                minimal,
                time.monotonic() - shrink_started,
            )
        return LinearizabilityResult(False, total, len(partitions), verdict_seconds, example)
    if unknown:
        return LinearizabilityResult(
            None, total, len(partitions), time.monotonic() - started, unknown_keys=unknown
        )
    return LinearizabilityResult(True, total, len(partitions), time.monotonic() - started)


def _check_keys(
    keys: Sequence[tuple[Hashable, list[Operation]]],
    positions: Sequence[int],
    model: Model,
    deadline: float | None,
) -> tuple[bool | None, int, _Search | None]:
    """Search the keys in order until one is illegal (False, its position and the search)
    or the time runs out (None and the position of the key it ran out on); True when all
    pass."""
    for (_, ops), at in zip(keys, positions, strict=True):
        if deadline is not None and time.monotonic() >= deadline:
            return None, at, None
        try:
            search = _search(ops, model, deadline)
        except _OutOfTime:
            return None, at, None
        if not search.ok:
            return False, at, search
    return True, -1, None


def _balanced_groups(sizes: list[int], groups: int) -> list[list[int]]:
    """Positions of ``sizes`` split into at most ``groups`` lists of about equal total
    size (largest first, each to the lightest list), each list in ascending position."""
    loads = [0] * groups
    members: list[list[int]] = [[] for _ in range(groups)]
    for at in sorted(range(len(sizes)), key=sizes.__getitem__, reverse=True):
        lightest = loads.index(min(loads))
        loads[lightest] += sizes[at]
        members[lightest].append(at)
    return [sorted(group) for group in members if group]


def check_history(events: Sequence[Event], model: Model, **options: Any) -> LinearizabilityResult:
    """Pair a history's events into operations and check them."""
    return check_operations(pair_operations(events), model, **options)
