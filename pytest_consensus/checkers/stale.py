"""Stale reads: they may lag, but never invent values, and their lag is measured.

For reads at the stale level (``f: "stale-get"``, or any read function given), per key:

- every value read was written by a write invoked before the read completed (or is the
  initial / deleted value None), and, where the caller says which values committed, by a
  write that committed: otherwise the read is *invented*;
- reads by one process never go backwards (when the store promises monotonic reads): a
  read of a value after reading one whose write definitely came later, in real time;
- staleness: how many writes definitely newer than the value read had completed before the
  read began, and for how long the value had been superseded (seconds).

"Definitely newer" means in real-time order: invoked after the older write completed.
Overlapping writes are never counted against a store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_consensus.checkers.operations import pair_operations
from pytest_consensus.clients.events import NEMESIS, Event

WRITES = frozenset({"put", "write", "cas", "delete"})
STALE_READS = frozenset({"stale-get", "stale-read"})


@dataclass(frozen=True)
class _Write:
    value: Any
    invoked: float
    completed: float  # inf when the outcome is unknown


@dataclass
class StaleReadResult:
    reads: int = 0
    invented: list[str] = field(default_factory=list)
    backwards: list[str] = field(default_factory=list)
    versions_behind: list[int] = field(default_factory=list)
    seconds_behind: list[float] = field(default_factory=list)

    def ok(self, monotonic: bool = False) -> bool:
        return not self.invented and not (monotonic and self.backwards)

    @property
    def stale_reads(self) -> int:
        return sum(1 for v in self.versions_behind if v > 0)

    def summary(self) -> dict[str, Any]:
        """Figures for reports: counts, and staleness as max / p50 / p99."""
        return {
            "reads": self.reads,
            "stale_reads": self.stale_reads,
            "invented": len(self.invented),
            "backwards": len(self.backwards),
            "versions_behind": _distribution([float(v) for v in self.versions_behind]),
            "seconds_behind": _distribution(self.seconds_behind),
        }


def _distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {"max": 0.0, "p50": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]

    return {"max": ordered[-1], "p50": at(0.5), "p99": at(0.99)}


def _written(invoke: Event) -> Any:
    if invoke.f == "cas":
        return invoke.value[1]
    return None if invoke.f == "delete" else invoke.value


STRONG_READS = frozenset({"get", "read"})


def committed_values(
    events: Sequence[Event], final: Mapping[Any, Any] | None = None
) -> dict[Any, set[Any]]:
    """Per key, the values known to have been committed: written by an acknowledged write,
    returned by a successful strong (linearizable) read, or in the converged ``final``
    state. A value only ever written by writes that failed or whose outcome stayed unknown,
    and never seen by a strong read, was not committed as far as the history shows."""
    committed: dict[Any, set[Any]] = {}
    for operation in pair_operations(events):
        if operation.status != "ok":
            continue
        if operation.f in WRITES:
            written = operation.value[1] if operation.f == "cas" else operation.value
            committed.setdefault(operation.key, set()).add(
                None if operation.f == "delete" else written
            )
        elif operation.f in STRONG_READS:
            committed.setdefault(operation.key, set()).add(operation.output)
    for key, value in (final or {}).items():
        committed.setdefault(key, set()).add(value)
    return committed


def check_stale_reads(
    events: Sequence[Event],
    read_functions: frozenset[str] = STALE_READS,
    committed: Mapping[Any, set[Any]] | None = None,
) -> StaleReadResult:
    """Check stale reads against the writes of the same history (see module docstring).
    With ``committed`` (see :func:`committed_values`), a read of a value that was written
    but never committed is invented too: a store must not serve uncommitted entries."""
    writes: dict[Any, list[_Write]] = {}
    refused: dict[Any, set[Any]] = {}  # values of writes that failed definitely
    invocations: dict[Any, Event] = {}
    reads: list[tuple[Event, Event]] = []
    for event in events:
        if event.process == NEMESIS:
            continue
        if event.type == "invoke":
            invocations[event.process] = event
            continue
        invoke = invocations.pop(event.process, None)
        if invoke is None:
            continue
        if invoke.f in WRITES and event.type == "fail":
            refused.setdefault(invoke.key, set()).add(_written(invoke))
        elif invoke.f in WRITES:
            value = _written(invoke)
            completed = event.time if event.type == "ok" else math.inf
            writes.setdefault(invoke.key, []).append(_Write(value, invoke.time, completed))
        elif invoke.f in read_functions and event.type == "ok":
            reads.append((invoke, event))
    for invoke in invocations.values():  # never completed: unknown outcome
        if invoke.f in WRITES:
            value = _written(invoke)
            writes.setdefault(invoke.key, []).append(_Write(value, invoke.time, math.inf))

    result = StaleReadResult()
    last_read: dict[tuple[Any, Any], tuple[_Write | None, Event]] = {}
    for invoke, completion in reads:
        result.reads += 1
        key, value = invoke.key, completion.value
        history = writes.get(key, [])
        sources = [w for w in history if w.value == value and w.invoked <= completion.time]
        if value is not None and not sources:
            why = (
                "the only writes of it failed definitely (and must never take effect)"
                if value in refused.get(key, ())
                else "no write of it had been invoked"
            )
            result.invented.append(
                f"process {invoke.process} read {value!r} from {key!r} at {completion.time:.3f}"
                f" but {why}"
            )
            continue
        if committed is not None and value is not None and value not in committed.get(key, ()):
            result.invented.append(
                f"process {invoke.process} read {value!r} from {key!r} at {completion.time:.3f}"
                " but the only writes of it never committed (not acknowledged, not seen by a "
                "strong read, not in the final state): a stale read served an uncommitted entry"
            )
            continue
        # The most favourable source: the latest-starting write of this value.
        source = max(sources, key=lambda w: w.invoked) if sources else None
        newer = [
            w
            for w in history
            if w.completed <= invoke.time and (source is None or w.invoked > source.completed)
        ]
        result.versions_behind.append(len(newer))
        result.seconds_behind.append(
            max(0.0, invoke.time - min(w.completed for w in newer)) if newer else 0.0
        )
        previous = last_read.get((invoke.process, key))
        if (
            previous is not None
            and previous[0] is not None
            and (source is None or source.completed < previous[0].invoked)
        ):
            result.backwards.append(
                f"process {invoke.process} read {value!r} from {key!r} at "
                f"{completion.time:.3f} after reading the newer {previous[1].value!r}"
            )
        last_read[(invoke.process, key)] = (source, completion)
    return result
