"""The PySyncObj backend's state machine: deterministic, idempotent, snapshot-correct."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine


def entry(**command: object) -> bytes:
    return json.dumps(command).encode()


LOG = [
    entry(f="put", key="a", value="1", request_id="r1"),
    entry(f="put", key="b", value="2"),
    entry(f="cas", key="a", expected="1", value="3"),
    entry(f="cas", key="a", expected="1", value="4"),
    entry(f="delete", key="b"),
    b"not json at all",
    entry(f="put", key="c"),
    entry(f="get", key="a"),
]


def apply_all(machine: KVStateMachine, log: list[bytes]) -> list[object]:
    return [machine.apply(item) for item in log]


def test_results_and_state_follow_the_log() -> None:
    machine = KVStateMachine()
    results = apply_all(machine, LOG)
    assert results[2] == {"swapped": True}
    assert results[3] == {"swapped": False, "value": "3"}
    assert results[4] == {"deleted": True}
    assert results[5]["error"] == "malformed"  # type: ignore[index]
    assert results[6]["error"] == "malformed"  # type: ignore[index]
    assert results[7] == {"value": "3"}
    assert machine.data == {"a": "3"}


def test_a_retried_write_with_the_same_request_id_applies_once() -> None:
    machine = KVStateMachine()
    machine.apply(entry(f="put", key="k", value="first", request_id="same"))
    machine.apply(entry(f="put", key="k", value="other"))
    retried = machine.apply(entry(f="put", key="k", value="first", request_id="same"))
    assert retried == {"ok": True}
    assert machine.data["k"] == "other"


def test_snapshot_restore_replay_equals_straight_replay() -> None:
    straight = KVStateMachine()
    apply_all(straight, LOG)
    first, rest = LOG[:3], LOG[3:]
    source = KVStateMachine()
    apply_all(source, first)
    snapshot = source.snapshot()
    apply_all(source, [entry(f="put", key="later", value="x")])
    assert source.snapshot() != snapshot, "a later apply must change a new snapshot"
    target = KVStateMachine()
    target.apply(entry(f="put", key="stale", value="must vanish"))
    target.restore(snapshot)
    apply_all(target, rest)
    assert target.data == straight.data
    assert target.digest() == straight.digest()


def test_same_log_gives_same_digest_under_another_hash_seed() -> None:
    machine = KVStateMachine()
    apply_all(machine, LOG)
    program = (
        "import json,sys\n"
        "from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine\n"
        "m = KVStateMachine()\n"
        "for line in json.load(sys.stdin): m.apply(line.encode('latin-1'))\n"
        "print(m.digest(), m.snapshot().decode())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps([item.decode("latin-1") for item in LOG]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split(" ", 1)
    assert out[0] == machine.digest()
    assert out[1].strip() == machine.snapshot().decode()
