"""Hypothesis strategies for histories, and a brute-force linearizability oracle."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from pytest_consensus.checkers.models import ILLEGAL, CasRegisterModel, KVModel, Model
from pytest_consensus.checkers.operations import Operation
from pytest_consensus.clients.history import Event

VALUES = [None, 0, 1, 2]


def brute_force_linearizable(ops: Sequence[Operation], model: Model) -> bool:
    """Try every subset of unknown-outcome operations and every order that respects real
    time; only for a handful of operations."""
    included = [o for o in ops if model.include(o)]
    definite = [o for o in included if o.ret is not None]
    unknown = [o for o in included if o.ret is None]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            candidates = definite + list(chosen)
            for order in itertools.permutations(candidates):
                if _respects_real_time(order) and _legal(order, model):
                    return True
    return False


def search_linearizable(ops: Sequence[Operation], model: Model) -> bool:
    """Wing and Gong's search with no pruning but memory of (placed, state) pairs: any
    operation called before the earliest pending return may go next, and operations of
    unknown outcome may be left out. Obviously right, and fast enough for a dozen ops."""
    included = [o for o in ops if model.include(o)]

    @functools.cache
    def can_finish(placed: frozenset[int], state: Any) -> bool:
        pending = [o.ret for i, o in enumerate(included) if i not in placed and o.ret is not None]
        if not pending:
            return True
        deadline = min(pending)
        for index, operation in enumerate(included):
            if index in placed or operation.call > deadline:
                continue
            after = model.step(state, operation)
            if after is not ILLEGAL and can_finish(placed | {index}, after):
                return True
        return False

    return can_finish(frozenset(), model.init())


def _respects_real_time(order: Sequence[Operation]) -> bool:
    for position, earlier in enumerate(order):
        for later in order[position + 1 :]:
            if later.ret is not None and later.ret < earlier.call:
                return False
    return True


def _legal(order: Sequence[Operation], model: Model) -> bool:
    state: Any = model.init()
    for operation in order:
        state = model.step(state, operation)
        if state is ILLEGAL:
            return False
    return True


@st.composite
def random_register_histories(draw: st.DrawFn, max_ops: int = 6) -> list[Event]:
    """Arbitrary (mostly illegal) cas-register histories on one key, 1-3 processes."""
    count = draw(st.integers(1, max_ops))
    processes = draw(st.integers(1, 3))
    pending: dict[int, list[tuple[str, Any, str, Any]]] = {p: [] for p in range(processes)}
    for _ in range(count):
        f = draw(st.sampled_from(["read", "write", "cas"]))
        status = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        if f == "read":
            value, output = None, draw(st.sampled_from(VALUES))
        elif f == "write":
            value, output = draw(st.sampled_from(VALUES[1:])), None
        else:
            value = [draw(st.sampled_from(VALUES)), draw(st.sampled_from(VALUES[1:]))]
            output = None
        pending[draw(st.integers(0, processes - 1))].append((f, value, status, output))
    # Interleave: each process invokes its next operation, then completes it later.
    events: list[Event] = []
    open_ops: dict[int, tuple[str, Any, str, Any]] = {}
    while any(pending.values()) or open_ops:
        choices = [p for p in pending if pending[p] and p not in open_ops] + list(open_ops)
        process = draw(st.sampled_from(sorted(set(choices))))
        if process in open_ops:
            f, value, status, output = open_ops.pop(process)
            if status == "info" and draw(st.booleans()):
                # never completed: the process is gone, a new one takes over its queue
                pending[process + 100] = pending.pop(process)
                continue
            shown = output if f == "read" else value
            events.append(
                Event(
                    len(events),
                    len(events),
                    process,
                    status,
                    f,  # type: ignore[arg-type]
                    value=shown if status != "info" else None,
                )
            )
        else:
            f, value, status, output = pending[process].pop(0)
            open_ops[process] = (f, value, status, output)
            events.append(Event(len(events), len(events), process, "invoke", f, value=value))
    return events


@st.composite
def linearizable_kv_histories(draw: st.DrawFn, max_ops: int = 40) -> list[Event]:
    """Histories produced by running a sequential kv store and giving every operation a
    random interval around its linearization point: linearizable by construction.
    Some completions are dropped (unknown outcome), which keeps it linearizable."""
    count = draw(st.integers(1, max_ops))
    keys = draw(st.integers(1, 3))
    store: dict[str, str] = {}
    timed: list[tuple[float, int, Event]] = []
    point = 0.0
    for number in range(count):
        point += draw(st.floats(0.01, 1.0))
        key = f"k{draw(st.integers(0, keys - 1))}"
        f = draw(st.sampled_from(["get", "put", "append", "cas"]))
        current = store.get(key, "")
        status = "ok"
        if f == "get":
            value, shown = None, current
        elif f == "put":
            value = f"v{number}"
            store[key] = value
            shown = value
        elif f == "append":
            value = f"<{number}>"
            store[key] = current + value
            shown = value
        else:
            expected = draw(st.sampled_from([current, f"v{number - 1}", ""]))
            value = [expected, f"c{number}"]
            shown = value
            if current == expected:
                store[key] = f"c{number}"
            else:
                status = "fail"
        before = draw(st.floats(0.0, 2.0))
        after = draw(st.floats(0.0, 2.0))
        invoke = Event(0, point - before, number, "invoke", f, key=key, value=value)
        timed.append((point - before, 0, invoke))
        if f != "get" and status == "ok" and draw(st.integers(0, 9)) == 0:
            continue  # the client never heard back: unknown outcome, but it took effect
        done = Event(0, point + after, number, status, f, key=key, value=shown)  # type: ignore[arg-type]
        timed.append((point + after, 1, done))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [
        Event(i, t, e.process, e.type, e.f, key=e.key, value=e.value)
        for i, (t, _, e) in enumerate(timed)
    ]


KV_STRINGS = ["", "a", "b", "ab", "ba", "aa"]


@st.composite
def random_kv_histories(draw: st.DrawFn, max_ops: int = 6) -> list[Event]:
    """Arbitrary kv histories on one key (get / put / append / cas over tiny strings):
    the shape of random_register_histories, with kv operations and outputs."""
    shape = draw(random_register_histories(max_ops=max_ops))
    chosen: dict[Any, tuple[str, Any]] = {}
    events = []
    for event in shape:
        if event.type == "invoke":
            if event.f == "read":
                f, value = "get", None
            elif event.f == "write":
                f, value = draw(st.sampled_from(["put", "append"])), draw(st.sampled_from("ab"))
            else:
                f = "cas"
                value = [draw(st.sampled_from(KV_STRINGS)), draw(st.sampled_from("ab"))]
            chosen[event.process] = (f, value)
            events.append(
                Event(event.index, event.time, event.process, "invoke", f, key="k", value=value)
            )
        else:
            f, value = chosen[event.process]
            shown = draw(st.sampled_from(KV_STRINGS)) if f == "get" else value
            events.append(
                Event(
                    event.index,
                    event.time,
                    event.process,
                    event.type,
                    f,
                    key="k",
                    value=shown,
                    error=event.error,
                )
            )
    return events


@st.composite
def near_boundary_histories(draw: st.DrawFn, max_ops: int = 7) -> tuple[list[Operation], Model]:
    """A run of a sequential store (register with cas, or kv with append) whose operations
    overlap in time, many with unknown outcome (applied or not), some reads then disturbed:
    mostly linearizable, often only just, and small enough for the brute-force oracle."""
    kv = draw(st.booleans())
    model: Model = KVModel() if kv else CasRegisterModel()
    values: list[Any] = ["a", "b"] if kv else [0, 1, 2]
    kinds = ["get", "put", "append", "cas", "get"] if kv else ["read", "write", "cas", "cas"]
    state: Any = "" if kv else None
    ops = []
    for index in range(draw(st.integers(2, max_ops))):
        f = draw(st.sampled_from(kinds))
        status = draw(st.sampled_from(["ok", "ok", "info", "info", "fail"]))
        applies = status != "info" or draw(st.booleans())
        value = output = None
        if f in ("read", "get"):
            status, output = "ok", state
            if draw(st.integers(0, 3)) == 0:  # a disturbed read
                output = draw(st.sampled_from([*values, "" if kv else None]))
        elif f in ("write", "put", "append"):
            status = "ok" if status == "fail" else status
            value = draw(st.sampled_from(values))
            if applies:
                state = state + value if f == "append" else value
        else:
            expected = draw(st.sampled_from([state, *values]))
            value = [expected, draw(st.sampled_from(values))]
            if expected == state:
                status = "ok" if status == "fail" else status
                state = value[1] if applies else state
            elif status == "ok":
                status = "fail"
        ret = None if status == "info" else index + draw(st.integers(0, 4)) + 0.5
        call = index - (draw(st.integers(0, 3)) if ret is not None else 0)
        ops.append(Operation(index, index % 3, f, None, value, output, status, max(call, 0), ret))
    return ops, model
