"""Set / append checkers and the stale-read checker, on small hand-written histories."""

from __future__ import annotations

from typing import Any

from pytest_consensus.checkers.sets import check_sets
from pytest_consensus.checkers.stale import check_stale_reads, committed_values
from pytest_consensus.clients.history import Event


class Script:
    """Builds histories: each call records an invoke/complete pair at the next times."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def op(
        self,
        process: int,
        f: str,
        value: Any = None,
        *,
        result: Any = None,
        status: str = "ok",
        key: Any = None,
    ) -> None:
        time = float(len(self.events))
        self.events.append(Event(len(self.events), time, process, "invoke", f, key, value))
        if status == "never":
            return
        shown = result if f in ("read", "get", "stale-get") else value
        self.events.append(
            Event(
                len(self.events),
                time + 1,
                process,
                status,
                f,
                key,  # type: ignore[arg-type]
                shown,
            )
        )


def test_a_clean_set_history_passes() -> None:
    s = Script()
    for n in range(5):
        s.op(n, "add", n)
    s.op(9, "read", result=[0, 1, 2, 3, 4])
    (result,) = check_sets(s.events)
    assert result.ok and result.present == 5 and result.acknowledged == 5


def test_lost_duplicated_phantom_and_resurrected_are_counted_with_values() -> None:
    s = Script()
    s.op(0, "add", "a")
    s.op(1, "add", "b")
    s.op(2, "add", "c", status="fail")
    s.op(3, "add", "d", status="info")
    s.op(4, "add", "e", status="never")
    s.op(9, "read", result=["a", "a", "c", "z", "e"])
    (result,) = check_sets(s.events)
    assert not result.ok
    assert result.lost == ["b"]
    assert result.duplicated == {"a": 2}
    assert result.phantom == ["z"]
    assert result.resurrected == ["c"]
    assert result.recovered == 1  # "e", outcome unknown, turned out applied
    description = result.describe()
    assert "1 lost ['b']" in description and "1 phantom ['z']" in description


def test_append_workloads_are_judged_per_key() -> None:
    s = Script()
    s.op(0, "append", 1, key="x")
    s.op(1, "append", 2, key="x")
    s.op(2, "append", 3, key="y")
    s.op(9, "read", key="x", result=[1, 2])
    s.op(9, "read", key="y", result=[])
    x, y = check_sets(s.events, write="append")
    assert x.ok and not y.ok and y.lost == [3]


def test_a_set_without_a_final_read_cannot_pass() -> None:
    s = Script()
    s.op(0, "add", 1)
    (result,) = check_sets(s.events)
    assert result.final_read_missing and not result.ok


def test_stale_reads_may_lag_and_the_lag_is_measured() -> None:
    s = Script()
    s.op(0, "put", "v1", key="k")
    s.op(0, "put", "v2", key="k")
    s.op(0, "put", "v3", key="k")
    s.op(1, "stale-get", key="k", result="v1")  # two versions behind
    s.op(1, "stale-get", key="k", result="v3")
    result = check_stale_reads(s.events)
    assert result.ok(monotonic=True)
    assert result.versions_behind == [2, 0]
    assert result.seconds_behind[0] == 3.0  # superseded when v2 completed (t=3), read at t=6
    assert result.summary()["versions_behind"]["max"] == 2.0


def test_a_stale_read_never_invents_a_value() -> None:
    s = Script()
    s.op(0, "put", "v1", key="k")
    s.op(1, "stale-get", key="k", result="never-written")
    result = check_stale_reads(s.events)
    assert not result.ok() and "never-written" in result.invented[0]


def test_a_read_of_a_write_invoked_after_it_completed_is_invented() -> None:
    s = Script()
    s.op(1, "stale-get", key="k", result="future")
    s.op(0, "put", "future", key="k")
    assert check_stale_reads(s.events).invented


def test_reads_going_backwards_break_monotonic_reads_only() -> None:
    s = Script()
    s.op(0, "put", "old", key="k")
    s.op(0, "put", "new", key="k")
    s.op(1, "stale-get", key="k", result="new")
    s.op(1, "stale-get", key="k", result="old")
    result = check_stale_reads(s.events)
    assert result.backwards and result.ok(monotonic=False) and not result.ok(monotonic=True)


def test_overlapping_writes_are_never_counted_as_staleness() -> None:
    events = [
        Event(0, 0.0, 0, "invoke", "put", "k", "a"),
        Event(1, 0.1, 1, "invoke", "put", "k", "b"),
        Event(2, 1.0, 0, "ok", "put", "k", "a"),
        Event(3, 1.1, 1, "ok", "put", "k", "b"),
        Event(4, 2.0, 2, "invoke", "stale-get", "k"),
        Event(5, 2.1, 2, "ok", "stale-get", "k", "a"),
    ]
    result = check_stale_reads(events)
    assert result.ok(monotonic=True) and result.versions_behind == [0]


def test_a_stale_read_of_a_value_that_never_committed_is_invented() -> None:
    """A put that timed out on a cut-off member and never committed: reading its value at the
    stale level is invented once the caller says what committed; without that, allowed."""
    script = Script()
    script.op(0, "put", "v1", key="k")
    script.op(1, "put", "minority", key="k", status="info")
    script.op(1, "stale-get", key="k", result="minority")
    script.op(2, "get", key="k", result="v1")
    committed = committed_values(script.events, final={"k": "v1"})
    assert committed == {"k": {"v1"}}
    result = check_stale_reads(script.events, committed=committed)
    assert len(result.invented) == 1
    assert "'minority'" in result.invented[0] and "never committed" in result.invented[0]
    assert check_stale_reads(script.events).invented == []


def test_committed_values_are_acknowledged_read_strongly_or_final() -> None:
    script = Script()
    script.op(0, "put", "acked", key="k")
    script.op(1, "put", "seen", key="k", status="info")
    script.op(2, "get", key="k", result="seen")
    script.op(1, "put", "refused", key="k", status="fail")
    script.op(3, "put", "late", key="k", status="info")
    assert committed_values(script.events, final={"k": "late"}) == {"k": {"acked", "seen", "late"}}


def test_a_stale_read_of_a_definitely_refused_write_says_so() -> None:
    script = Script()
    script.op(1, "put", "refused", key="k", status="fail")
    script.op(1, "stale-get", key="k", result="refused")
    (invented,) = check_stale_reads(script.events).invented
    assert "the only writes of it failed definitely" in invented
