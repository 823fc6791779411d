"""Figures from histories: latency, throughput, availability during partitions, recovery."""

from __future__ import annotations

import pytest

from pytest_consensus.clients.history import NEMESIS, Event
from pytest_consensus.report.measure import figures_of, percentile, summarize


def history(*rows: tuple[float, object, str, str]) -> list[Event]:
    return [
        Event(index=n, time=t, process=p, type=kind, f=f)  # type: ignore[arg-type]
        for n, (t, p, kind, f) in enumerate(rows)
    ]


EVENTS = history(
    (0.0, 0, "invoke", "put"),
    (0.010, 0, "ok", "put"),  # 10 ms, before any fault
    (1.0, NEMESIS, "info", "start-isolate-leader"),
    (1.1, 0, "invoke", "put"),
    (1.3, 0, "fail", "put"),  # during the partition, refused
    (1.4, 1, "invoke", "put"),
    (1.42, 1, "ok", "put"),  # during the partition, acknowledged in 20 ms
    (1.5, 2, "invoke", "put"),  # never completes: unknown
    (2.0, NEMESIS, "info", "heal-isolate-leader"),
    (2.2, 0, "invoke", "get"),
    (2.23, 0, "ok", "get"),  # first acknowledged after the heal: 0.23 s after it
)


def test_operations_and_fault_windows_are_paired_from_the_events() -> None:
    figures = figures_of(EVENTS)
    assert [(op.f, op.outcome) for op in figures.operations] == [
        ("put", "ok"),
        ("put", "fail"),
        ("put", "ok"),
        ("get", "ok"),
        ("put", "info"),
    ]
    assert [(w.kind, w.start, w.end) for w in figures.windows] == [("isolate-leader", 1.0, 2.0)]
    assert figures.heals == [2.0]
    assert figures.span == pytest.approx(2.23)


def test_summary_figures() -> None:
    summary = summarize([figures_of(EVENTS)])
    assert summary.operations == 5 and summary.acknowledged == 3
    assert summary.latency_p50_ms == pytest.approx(20.0)
    assert summary.latency_max_ms == pytest.approx(30.0)
    # 3 of the 3 operations invoked during the partition: 1 acknowledged.
    assert summary.operations_during_partitions == 3
    assert summary.availability_during_partitions == pytest.approx(1 / 3, abs=1e-3)
    assert summary.recovery_median_seconds == pytest.approx(0.23)
    assert summary.throughput_per_second == pytest.approx(3 / 2.23, abs=0.01)


def test_kills_count_as_fault_windows_but_not_as_partitions() -> None:
    events = history(
        (0.0, NEMESIS, "info", "kill"),
        (0.1, 0, "invoke", "put"),
        (0.2, 0, "fail", "put"),
        (0.5, NEMESIS, "info", "restart"),
    )
    summary = summarize([figures_of(events)])
    assert [w.kind for w in figures_of(events).windows] == ["kill"]
    assert summary.availability_during_partitions is None
    assert summary.recovery_median_seconds is None  # nothing acknowledged after the restart


def test_no_histories_give_no_figures_rather_than_zeros() -> None:
    summary = summarize([])
    assert summary.latency_p50_ms is None and summary.throughput_per_second is None


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.99) == 99.0
