"""Set and append workloads: lost, duplicated and phantom writes.

A set workload adds unique elements (``f: "add"``) and ends with reads (``f: "read"``)
returning every element present. An append workload appends unique elements to keys
(``f: "append"``) and ends with reads (``f: "read"`` or ``"get"``) of each key's list. The
final read (the last successful one per key) is judged against what was attempted:

- lost: acknowledged (``ok``) but absent;
- duplicated: present more than once (a retry applied twice);
- phantom: present but never attempted;
- resurrected: present although its add failed definitely (it must not take effect).

Adds with unknown outcome may be present or absent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_consensus.checkers.operations import Operation, pair_operations
from pytest_consensus.clients.events import Event

READS = frozenset({"read", "get"})


@dataclass
class SetResult:
    """What one key's final read says about its writes."""

    key: Any
    attempted: int
    acknowledged: int
    unknown: int
    present: int
    lost: list[Any] = field(default_factory=list)
    duplicated: dict[Any, int] = field(default_factory=dict)
    phantom: list[Any] = field(default_factory=list)
    resurrected: list[Any] = field(default_factory=list)
    recovered: int = 0  # unknown-outcome writes that turned out to be present
    final_read_missing: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.phantom
            or self.resurrected
            or self.final_read_missing
        )

    def describe(self) -> str:
        key = "" if self.key is None else f"key {self.key!r}: "
        if self.final_read_missing:
            return f"{key}no successful final read, so nothing can be judged"
        parts = [
            f"{self.acknowledged} acknowledged, {self.unknown} unknown, {self.present} present"
        ]
        if self.lost:
            parts.append(f"{len(self.lost)} lost {_sample(self.lost)}")
        if self.duplicated:
            parts.append(f"{len(self.duplicated)} duplicated {_sample(list(self.duplicated))}")
        if self.phantom:
            parts.append(f"{len(self.phantom)} phantom {_sample(self.phantom)}")
        if self.resurrected:
            parts.append(
                f"{len(self.resurrected)} present despite a definite failure "
                f"{_sample(self.resurrected)}"
            )
        return key + "; ".join(parts)


def _sample(values: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def _elements(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise ValueError(f"a final read must return a list of elements, got {value!r}")


def check_sets(
    events: Sequence[Event],
    write: str = "add",
    elements: Callable[[Any], list[Any]] | None = None,
) -> list[SetResult]:
    """Judge every key's final read against the writes (``add`` or ``append``) to it.

    ``elements`` turns a read value into its elements (default: the value is a list); for
    appends to a string, split the string into the appended pieces."""
    operations = pair_operations(events)
    writes: dict[Any, list[Operation]] = {}
    final_reads: dict[Any, Operation] = {}
    for operation in operations:
        if operation.f == write:
            writes.setdefault(operation.key, []).append(operation)
        elif operation.f in READS and operation.status == "ok":
            latest = final_reads.get(operation.key)
            if latest is None or (operation.ret or 0) > (latest.ret or 0):
                final_reads[operation.key] = operation
    return [
        _judge(key, writes.get(key, []), final_reads.get(key), elements or _elements)
        for key in sorted(set(writes) | set(final_reads), key=repr)
    ]


def _judge(
    key: Any,
    writes: Iterable[Operation],
    final: Operation | None,
    elements: Callable[[Any], list[Any]],
) -> SetResult:
    writes = list(writes)
    by_status: dict[str, set[Any]] = {"ok": set(), "fail": set(), "info": set()}
    for operation in writes:
        by_status[operation.status].add(_hashable(operation.value))
    attempted = by_status["ok"] | by_status["fail"] | by_status["info"]
    result = SetResult(key, len(attempted), len(by_status["ok"]), len(by_status["info"]), 0)
    if final is None:
        result.final_read_missing = bool(writes)
        return result
    seen = Counter(_hashable(v) for v in elements(final.output))
    result.present = len(seen)
    result.lost = sorted((v for v in by_status["ok"] if v not in seen), key=repr)
    result.duplicated = {v: n for v, n in seen.items() if n > 1}
    result.phantom = sorted((v for v in seen if v not in attempted), key=repr)
    definite_failures = by_status["fail"] - by_status["ok"] - by_status["info"]
    result.resurrected = sorted((v for v in seen if v in definite_failures), key=repr)
    result.recovered = sum(1 for v in by_status["info"] if v in seen)
    return result


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
