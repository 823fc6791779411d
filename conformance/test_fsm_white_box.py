"""fsm-determinism, white box: the state machine itself (capability ``fsm``).

Generated command logs, malformed entries among them, are applied to fresh state machines:
the same log gives the same results and snapshot here and in another process with another
hash seed; snapshot, restore (into a fresh machine, or one holding other data) and replay
equal straight replay; a snapshot does not change when more is applied; a malformed entry
gets the same answer everywhere and crashes nothing.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from pytest_consensus.contract import Adapter, StateMachine
from pytest_consensus.contract.child_python import import_path, package_file, python_environment
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.plugin.profiles import active_profile, active_seed

pytestmark = [pytest.mark.consensus_rule("fsm-determinism"), pytest.mark.consensus_requires("fsm")]

#: A few keys that operations contend on, and many more, so that logic which changes above
#: a handful of keys (a container that resizes or reorders, a snapshot written in pages) is
#: exercised too.
FEW_KEYS = ["a", "b", "c", "k1", "k2", "key-with-a-longer-name"]
MANY_KEYS = [f"many-{number:03d}" for number in range(200)]
KEYS = FEW_KEYS + MANY_KEYS
VALUES = ["", "x", "y", "zz", "αβ", "0"]
#: As many logs as the run's profile asks for (read when the module is imported).
EXAMPLES = settings(
    max_examples=active_profile().fsm_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def operations() -> st.SearchStrategy[tuple[str, str, Any]]:
    key = st.one_of(st.sampled_from(FEW_KEYS), st.sampled_from(MANY_KEYS))
    value = st.sampled_from(VALUES)
    return st.one_of(
        st.tuples(st.just("put"), key, value),
        st.tuples(st.just("append"), key, value),
        st.tuples(st.just("delete"), key, st.none()),
        st.tuples(st.just("get"), key, st.none()),
        st.tuples(st.just("cas"), key, st.tuples(st.one_of(st.none(), value), value).map(list)),
        st.tuples(st.just("malformed"), st.binary(max_size=24), st.none()),
    )


def random_log(rng: random.Random, size: int = 400) -> list[tuple[str, Any, Any]]:
    """A log drawn with the test's seeded generator (for runs outside Hypothesis): up to
    ``size`` entries, half on the contended keys and half spread over many."""
    log: list[tuple[str, Any, Any]] = []
    for _ in range(rng.randrange(size)):
        f = rng.choice(["put", "append", "delete", "get", "cas", "malformed"])
        key = rng.choice(FEW_KEYS if rng.random() < 0.5 else MANY_KEYS)
        value = rng.choice(VALUES)
        if f == "malformed":
            log.append((f, rng.randbytes(rng.randrange(24)), None))
        elif f == "cas":
            log.append((f, key, [rng.choice([None, *VALUES]), value]))
        else:
            log.append((f, key, value if f in ("put", "append") else None))
    return log


def encode(adapter: Adapter, log: list[tuple[str, Any, Any]]) -> list[bytes]:
    return [
        entry if f == "malformed" else adapter.fsm_encode(f, entry, value)
        for f, entry, value in log
    ]


def apply_all(machine: StateMachine, entries: list[bytes]) -> list[str]:
    """Results as their repr, so any result type compares; a crash is a test failure."""
    results = []
    for number, entry in enumerate(entries):
        try:
            results.append(repr(machine.apply(entry)))
        except Exception as error:
            pytest.fail(
                f"entry {number} ({entry[:40]!r}) crashed the state machine with "
                f"{type(error).__name__}: {error}; a malformed entry must get an error "
                "result, the same on every replica",
                pytrace=False,
            )
    return results


@pytest.fixture
def fresh(consensus_adapter: Adapter) -> Callable[[], StateMachine]:
    return consensus_adapter.fsm_factory()


@EXAMPLES
@hypothesis_seed(active_seed())
@given(log=st.lists(operations(), max_size=120))
def test_the_same_log_gives_the_same_results_and_snapshot(
    consensus_adapter: Adapter, fresh: Callable[[], StateMachine], log: list[Any]
) -> None:
    """Two fresh state machines given the same log agree on every result and the snapshot."""
    entries = encode(consensus_adapter, log)
    first, second = fresh(), fresh()
    assert apply_all(first, entries) == apply_all(second, entries)
    assert first.snapshot() == second.snapshot()


@EXAMPLES
@hypothesis_seed(active_seed())
@given(
    log=st.lists(operations(), min_size=1, max_size=120),
    split=st.integers(0, 40),
    other=st.lists(operations(), max_size=10),
)
def test_snapshot_restore_and_replay_equal_straight_replay(
    consensus_adapter: Adapter,
    fresh: Callable[[], StateMachine],
    log: list[Any],
    split: int,
    other: list[Any],
) -> None:
    """Replaying after restoring a snapshot, even into a machine that held other data, gives
    the state and results of replaying everything: restore replaces, never merges."""
    entries = encode(consensus_adapter, log)
    split = min(split, len(entries))
    straight = fresh()
    straight_results = apply_all(straight, entries)
    source = fresh()
    apply_all(source, entries[:split])
    snapshot = source.snapshot()
    for target in (fresh(), fresh()):
        apply_all(target, encode(consensus_adapter, other))  # the second holds other data
        target.restore(snapshot)
        rest = apply_all(target, entries[split:])
        if target.snapshot() != straight.snapshot() or rest != straight_results[split:]:
            pytest.fail(
                f"restore at entry {split} then replay differs from straight replay "
                f"(after {len(other)} unrelated entries were applied first): restore must "
                "replace the whole state",
                pytrace=False,
            )
        other = []


@EXAMPLES
@hypothesis_seed(active_seed())
@given(
    log=st.lists(operations(), min_size=1, max_size=30),
    more=st.lists(operations(), min_size=1, max_size=10),
)
def test_a_snapshot_is_a_point_in_time_copy(
    consensus_adapter: Adapter,
    fresh: Callable[[], StateMachine],
    log: list[Any],
    more: list[Any],
) -> None:
    """A snapshot taken and then followed by more applies does not change."""
    machine = fresh()
    apply_all(machine, encode(consensus_adapter, log))
    snapshot = machine.snapshot()
    frozen = bytes(snapshot)
    apply_all(machine, encode(consensus_adapter, more))
    if bytes(snapshot) != frozen:
        pytest.fail(
            "a snapshot changed after later applies: it shares the live state", pytrace=False
        )
    restored = fresh()
    restored.restore(frozen)
    again = fresh()
    apply_all(again, encode(consensus_adapter, log))
    assert restored.snapshot() == again.snapshot()


#: A child exits with this when it cannot load the harness or the adapter: a harness
#: problem, never the state machine's.
HARNESS_EXIT = 3

CHILD = f"""
import base64, json, os, sys
try:
    import pytest_consensus
    from pytest_consensus.plugin.registry import load_adapter
    adapter = load_adapter(sys.argv[1])
    mine = os.path.realpath(pytest_consensus.__file__)
    if mine != sys.argv[2]:
        raise ImportError(f"imported pytest_consensus from {{mine}}, not {{sys.argv[2]}}")
except Exception as error:
    sys.stderr.write(f"{{type(error).__name__}}: {{error}}")
    sys.exit({HARNESS_EXIT})
out = []
for log in json.load(sys.stdin):
    machine = adapter.fsm_factory()()
    results = [repr(machine.apply(base64.b64decode(e))) for e in log]
    out.append([results, base64.b64encode(machine.snapshot()).decode()])
json.dump(out, sys.stdout)
"""


def run_in_child(spec: str, logs: list[list[bytes]], hash_seed: str, cwd: Path) -> Any:
    """Results and snapshots of ``logs`` from a child process with another hash seed, which
    imports the pytest_consensus and the adapter this process imported (a child that cannot
    is the harness's problem: HarnessError, not a verdict on the store)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, spec, package_file()],
        input=json.dumps([[base64.b64encode(e).decode() for e in log] for log in logs]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=python_environment(PYTHONHASHSEED=hash_seed),
    )
    if done.returncode == HARNESS_EXIT:
        raise HarnessError(
            "a child process could not load the harness and adapter pytest imported "
            f"({done.stderr.strip()[-1000:]}); its import path was {import_path()}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"the state machine failed in a child process: {done.stderr[-2000:]}", pytrace=False
        )
    return json.loads(done.stdout)


def test_another_process_with_another_hash_seed_agrees(
    request: pytest.FixtureRequest,
    consensus_adapter: Adapter,
    fresh: Callable[[], StateMachine],
    consensus_rng: random.Random,
    tmp_path: Path,
) -> None:
    """The same logs give the same results and snapshots in a child process whose
    PYTHONHASHSEED differs (set and dict-of-set iteration orders change with it)."""
    logs = [encode(consensus_adapter, random_log(consensus_rng)) for _ in range(25)]
    spec = request.node.callspec.params["consensus_adapter"]
    mine = []
    for entries in logs:
        machine = fresh()
        mine.append([apply_all(machine, entries), base64.b64encode(machine.snapshot()).decode()])
    for seed in ("1", "2"):
        theirs = run_in_child(spec, logs, seed, tmp_path)
        for number, (ours, other) in enumerate(zip(mine, theirs, strict=True)):
            if ours != other:
                what = "results" if ours[0] != other[0] else "snapshots"
                pytest.fail(
                    f"log {number} gives different {what} with PYTHONHASHSEED={seed}: the state "
                    "machine depends on hash order (iterating a set?) or on the process",
                    pytrace=False,
                )
