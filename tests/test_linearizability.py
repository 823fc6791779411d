"""The linearizability checker: reference verdicts, an oracle, and generated histories."""

from __future__ import annotations

import dataclasses
import json
import os
import unittest.mock
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_consensus.checkers import linearizability
from pytest_consensus.checkers.formats import read_history
from pytest_consensus.checkers.linearizability import check_history, check_operations
from pytest_consensus.checkers.models import (
    CasRegisterModel,
    KVModel,
    Model,
    ModelError,
    model_named,
)
from pytest_consensus.checkers.operations import Operation, pair_operations
from pytest_consensus.clients.history import Event

from history_strategies import (
    brute_force_linearizable,
    linearizable_kv_histories,
    near_boundary_histories,
    random_kv_histories,
    random_register_histories,
    search_linearizable,
)

REFERENCE_DATA = Path(
    os.environ.get("CONSENSUS_REFERENCE_DATA", Path(__file__).parents[2] / "shared" / "data")
)


def reference_cases() -> list[object]:
    cases = []
    for folder, model in (("porcupine-etcd", "cas-register"), ("porcupine-kv", "kv"), ("hard", "")):
        expected_file = REFERENCE_DATA / folder / "expected.json"
        if not expected_file.exists():
            return [
                pytest.param(
                    None,
                    None,
                    None,
                    marks=pytest.mark.skip(
                        reason=f"reference histories not found at {REFERENCE_DATA}; "
                        "set CONSENSUS_REFERENCE_DATA"
                    ),
                )
            ]
        for name, expected in sorted(json.loads(expected_file.read_text()).items()):
            cases.append(
                pytest.param(
                    REFERENCE_DATA / folder / name,
                    model or expected["model"],  # hard/ names each file's model
                    expected["linearizable"],
                    id=f"{folder}/{name}",
                )
            )
    return cases


@pytest.mark.parametrize(("path", "model", "expected"), reference_cases())
def test_reference_history_gets_its_known_verdict(path: Path, model: str, expected: bool) -> None:
    # hard/ holds the shapes that make checkers slow; its verdicts alone are checked here
    # (its counterexamples are the benchmark's business: benchmarks/bench_checkers.py).
    counterexample = path.parent.name != "hard"
    result = check_history(
        read_history(path), model_named(model), budget=60, counterexample=counterexample
    )
    assert result.linearizable is expected


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_boundary_histories(max_ops=20))
def test_verdict_on_histories_near_the_boundary_agrees_with_a_plain_search(
    case: tuple[list[Operation], Model],
) -> None:
    """Histories a store could have produced, with many writes of unknown outcome and some
    reads disturbed: about one in eight is not linearizable. This is where pruning by
    dominance over unknown-outcome operations would show a wrong verdict first. The oracle
    is a search with no pruning at all (history_strategies.search_linearizable, itself
    checked against brute force)."""
    ops, model = case
    result = check_operations(ops, model, counterexample=False)
    assert result.linearizable is search_linearizable(ops, model)


@settings(max_examples=300, deadline=None)
@given(near_boundary_histories(max_ops=7))
def test_the_plain_search_oracle_agrees_with_brute_force(
    case: tuple[list[Operation], Model],
) -> None:
    ops, model = case
    assert search_linearizable(ops, model) is brute_force_linearizable(ops, model)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_register_histories())
def test_verdict_agrees_with_brute_force(events: list[Event]) -> None:
    ops = pair_operations(events)
    model = CasRegisterModel()
    result = check_operations(ops, model, counterexample=False)
    assert result.linearizable is brute_force_linearizable(ops, model)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_kv_histories())
def test_kv_verdict_agrees_with_brute_force(events: list[Event]) -> None:
    ops = pair_operations(events)
    result = check_operations(ops, KVModel(), counterexample=False)
    assert result.linearizable is brute_force_linearizable(ops, KVModel())


@settings(max_examples=150, deadline=None)
@given(linearizable_kv_histories())
def test_histories_from_a_sequential_store_are_linearizable(events: list[Event]) -> None:
    result = check_history(events, KVModel(), budget=30)
    assert result.linearizable is True


def sequential(*ops: tuple[str, object, object]) -> list[Event]:
    """Non-overlapping operations on one key: (f, value written or cas pair, value read)."""
    events = []
    for process, (f, value, read) in enumerate(ops):
        events.append(Event(len(events), len(events), process, "invoke", f, key="k", value=value))
        shown = read if f == "get" else value
        events.append(Event(len(events), len(events), process, "ok", f, key="k", value=shown))
    return events


@settings(max_examples=100, deadline=None)
@given(linearizable_kv_histories(max_ops=25), st.sampled_from(["phantom", "stale", "lost"]))
def test_each_injected_anomaly_is_caught(events: list[Event], anomaly: str) -> None:
    """Append, after everything, a short sequential tail that is illegal in any state."""
    tail = {
        # a read of a value no write ever produced
        "phantom": [("put", "a", None), ("get", None, "never-written")],
        # a read that misses a write completed before it began
        "stale": [("put", "old", None), ("put", "new", None), ("get", None, "old")],
        # an acknowledged append that a later read does not show
        "lost": [("put", "x", None), ("append", "y", None), ("get", None, "x")],
    }[anomaly]
    offset = len(events)
    base = max([e.process for e in events if isinstance(e.process, int)], default=0) + 1
    extra = [
        Event(
            offset + e.index,
            offset + e.index,
            base + int(e.process),
            e.type,
            e.f,
            key="k",
            value=e.value,
        )
        for e in sequential(*tail)
    ]
    # Close every open operation first, so the tail is after all of them in real time.
    result = check_history(events + extra, KVModel(), budget=30)
    assert result.linearizable is False
    assert result.counterexample is not None and result.counterexample.key == "k"


def test_counterexample_is_minimal_and_names_the_blocked_read() -> None:
    events = sequential(("put", "1", None), ("put", "2", None), ("get", None, "1"))
    result = check_history(events, KVModel())
    example = result.counterexample
    assert result.linearizable is False and example is not None
    # all three: without the first put the read would merely be of an unknown value
    assert [o.f for o in example.operations] == ["put", "put", "get"]
    assert example.blocked is not None and example.blocked.f == "get"
    assert [o.f for o, _ in example.longest_prefix] == ["put", "put"]
    assert example.minimal
    assert "cannot place: p2 get k '1'" in example.describe(KVModel())


def test_unknown_outcome_may_apply_late_or_never() -> None:
    events = [
        Event(0, 0, 0, "invoke", "write", value=1),
        Event(1, 1, 0, "info", "write", error="timed-out"),
        Event(2, 2, 1, "invoke", "read"),
        Event(3, 3, 1, "ok", "read", value=None),  # not yet applied
        Event(4, 4, 1, "invoke", "read"),
        Event(5, 5, 1, "ok", "read", value=1),  # applied now
    ]
    assert check_history(events, CasRegisterModel()).linearizable is True
    assert check_history(events[:4], CasRegisterModel()).linearizable is True  # or never


def test_definite_failures_never_took_effect() -> None:
    events = [
        Event(0, 0, 0, "invoke", "write", value=1),
        Event(1, 1, 0, "fail", "write", error="not-leader"),
        Event(2, 2, 1, "invoke", "read"),
        Event(3, 3, 1, "ok", "read", value=1),
    ]
    assert check_history(events, CasRegisterModel()).linearizable is False


def test_failed_cas_observes_a_mismatch() -> None:
    events = sequential(("put", "a", None)) + [
        Event(2, 2, 5, "invoke", "cas", key="k", value=["a", "b"]),
        Event(3, 3, 5, "fail", "cas", key="k", value=["a", "b"], error="mismatch"),
    ]
    assert check_history(events, CasRegisterModel()).linearizable is False


def test_a_budget_that_runs_out_gives_unknown_not_a_verdict() -> None:
    path = REFERENCE_DATA / "porcupine-etcd" / "etcd_057.log"
    if not path.exists():
        pytest.skip(f"reference histories not found at {REFERENCE_DATA}")
    result = check_history(read_history(path), CasRegisterModel(), budget=0.0)
    assert result.linearizable is None and result.unknown_keys


def test_a_model_rejects_operations_it_does_not_know() -> None:
    events = [Event(0, 0, 0, "invoke", "append", value="x"), Event(1, 1, 0, "ok", "append")]
    with pytest.raises(ModelError, match="does not know operation 'append'.*choose another"):
        check_history(events, CasRegisterModel())


@st.composite
def many_key_histories(draw: st.DrawFn) -> list[Event]:
    """Two to eight independent kv histories, each on a key of its own and with processes
    of its own, one after another: some keys linearizable, some not."""
    events: list[Event] = []
    for number in range(draw(st.integers(2, 8))):
        for event in draw(random_kv_histories(max_ops=5)):
            events.append(
                dataclasses.replace(
                    event, index=len(events), process=f"{number}-{event.process}", key=f"k{number}"
                )
            )
    return events


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many_key_histories(), st.integers(2, 4))
def test_keys_checked_in_forked_processes_give_the_verdict_of_one_process(
    events: list[Event], workers: int
) -> None:
    """Split over processes, the verdict is the same, and so is the key a counterexample
    names: the first failing key in the order one process checks them."""
    ops = pair_operations(events)
    alone = check_operations(ops, KVModel(), counterexample=True)
    with unittest.mock.patch.object(linearizability, "PARALLEL_MIN_OPERATIONS", 0):
        forked = check_operations(ops, KVModel(), counterexample=True, workers=workers)
    assert forked.linearizable is alone.linearizable
    if alone.counterexample is not None:
        assert forked.counterexample is not None
        assert forked.counterexample.key == alone.counterexample.key
        assert forked.counterexample.operations == alone.counterexample.operations
