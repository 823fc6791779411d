"""Figures from recorded histories: latency, throughput, availability during partitions and
recovery after heals. They describe how a store behaved under the suite's faults; they are
reported, never judged (the rules judge correctness).

Definitions (also in docs/certificate.md):

- latency: completion time minus invocation time of each acknowledged (``ok``) operation;
- throughput: acknowledged operations per second of the time the histories span with client
  operations in flight;
- availability during partitions: of the operations invoked while a partition was active,
  the share acknowledged;
- recovery after heal: from each heal to the first acknowledged operation invoked after it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pytest_consensus.clients.history import NEMESIS, Event
from pytest_consensus.nemesis.faults import PARTITION_SHAPES


@dataclass(frozen=True)
class TimedOperation:
    """One client operation with its times (seconds from the history's start)."""

    f: str
    invoked: float
    completed: float | None
    outcome: str  # ok, fail or info (unknown)

    @property
    def latency(self) -> float | None:
        return None if self.completed is None else self.completed - self.invoked


@dataclass(frozen=True)
class FaultWindow:
    kind: str
    start: float
    end: float | None  # None: never healed within the history
    targets: str = ""

    def covers(self, moment: float) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


@dataclass
class HistoryFigures:
    """What one history says about the store's behaviour."""

    operations: list[TimedOperation] = field(default_factory=list)
    windows: list[FaultWindow] = field(default_factory=list)
    heals: list[float] = field(default_factory=list)

    @property
    def span(self) -> float:
        """Seconds from the first invocation to the last completion."""
        if not self.operations:
            return 0.0
        ends = [op.completed for op in self.operations if op.completed is not None]
        first = min(op.invoked for op in self.operations)
        return max([*ends, first]) - first


def figures_of(events: Iterable[Event]) -> HistoryFigures:
    """Pair invocations with completions (one pending operation per process at a time) and
    collect fault windows from the nemesis events."""
    figures = HistoryFigures()
    pending: dict[object, Event] = {}
    opened: dict[str, tuple[float, str]] = {}
    for event in events:
        if event.process == NEMESIS:
            _nemesis_event(event, figures, opened)
        elif event.type == "invoke":
            pending[event.process] = event
        elif event.process in pending:
            invoke = pending.pop(event.process)
            figures.operations.append(TimedOperation(invoke.f, invoke.time, event.time, event.type))
    for invoke in pending.values():  # never completed: the outcome is unknown
        figures.operations.append(TimedOperation(invoke.f, invoke.time, None, "info"))
    for kind, (start, targets) in opened.items():
        figures.windows.append(FaultWindow(kind, start, None, targets))
    figures.windows.sort(key=lambda w: w.start)
    return figures


def _nemesis_event(
    event: Event, figures: HistoryFigures, opened: dict[str, tuple[float, str]]
) -> None:
    name = event.f
    targets = _describe(event.value)
    if name.startswith("start-") or name == "kill":
        opened[name.removeprefix("start-")] = (event.time, targets)
    elif name.startswith("heal-") or name == "restart":
        kind = "kill" if name == "restart" else name.removeprefix("heal-")
        figures.heals.append(event.time)
        if kind in opened:
            start, started_targets = opened.pop(kind)
            figures.windows.append(FaultWindow(kind, start, event.time, started_targets))


def _describe(value: object) -> str:
    if not isinstance(value, list):
        return ""
    return " ".join(
        "->".join(map(str, item)) if isinstance(item, list) else str(item) for item in value
    )


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    """An adapter's figures over all its histories."""

    operations: int
    acknowledged: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    throughput_per_second: float | None
    #: Share of operations invoked during partitions that were acknowledged (None: there
    #: were no partitions, or no operation ran during one).
    availability_during_partitions: float | None
    operations_during_partitions: int
    recovery_median_seconds: float | None
    recovery_max_seconds: float | None
    heals: int

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def summarize(histories: Iterable[HistoryFigures]) -> Summary:
    latencies: list[float] = []
    operations = acknowledged = 0
    span = 0.0
    during = during_ok = 0
    recoveries: list[float] = []
    heals = 0
    for figures in histories:
        operations += len(figures.operations)
        span += figures.span
        partitions = [w for w in figures.windows if w.kind in PARTITION_SHAPES]
        for op in figures.operations:
            if op.outcome == "ok":
                acknowledged += 1
                latencies.append(op.latency or 0.0)
            if any(w.covers(op.invoked) for w in partitions):
                during += 1
                during_ok += op.outcome == "ok"
        for heal in figures.heals:
            heals += 1
            after = [
                op.completed
                for op in figures.operations
                if op.outcome == "ok" and op.invoked >= heal and op.completed is not None
            ]
            if after:
                recoveries.append(min(after) - heal)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return Summary(
        operations=operations,
        acknowledged=acknowledged,
        latency_p50_ms=ms(percentile(latencies, 0.50)),
        latency_p99_ms=ms(percentile(latencies, 0.99)),
        latency_max_ms=ms(max(latencies)) if latencies else None,
        throughput_per_second=round(acknowledged / span, 2) if span > 0 else None,
        availability_during_partitions=round(during_ok / during, 4) if during else None,
        operations_during_partitions=during,
        recovery_median_seconds=(round(statistics.median(recoveries), 3) if recoveries else None),
        recovery_max_seconds=round(max(recoveries), 3) if recoveries else None,
        heals=heals,
    )
