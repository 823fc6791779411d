"""Recording operations into histories, and the JSON Lines format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_consensus.clients.history import History, RecordingClient, read_jsonl
from pytest_consensus.contract import Client, HostSpec, ReadLevel
from pytest_consensus.contract.errors import CapabilityMissing, NotLeader, Timeout, UnknownError

from fake_store import FakeAdapter


class ScriptedClient(Client):
    """Raises what it is told to on put; offers no delete (the contract's default)."""

    node = "n9"

    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        if self.outcome is not None:
            raise self.outcome

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        return None


def record_put(outcome: BaseException | None) -> tuple[History, RecordingClient]:
    history = History()
    client = RecordingClient(ScriptedClient(outcome), history)
    try:
        client.put("k", "v", timeout=1)
    except Exception:
        pass
    return history, client


def test_ok_write_is_an_invoke_then_ok_with_the_same_process() -> None:
    history, _ = record_put(None)
    invoke, ok = history.events
    assert (invoke.type, ok.type) == ("invoke", "ok")
    assert invoke.process == ok.process and ok.f == "put" and ok.key == "k" and ok.node == "n9"
    assert ok.time >= invoke.time


def test_definite_failure_is_recorded_as_fail() -> None:
    history, client = record_put(NotLeader("nope", leader_hint="n1"))
    assert history.events[-1].type == "fail"
    assert "not-leader" in (history.events[-1].error or "")
    assert client.process == history.events[0].process


def test_indefinite_failure_is_info_and_the_client_becomes_a_new_process() -> None:
    history, client = record_put(Timeout("slow"))
    assert history.events[-1].type == "info"
    assert client.process != history.events[0].process


def test_an_exception_outside_the_taxonomy_is_info_and_names_the_adapter_bug() -> None:
    history = History()
    client = RecordingClient(ScriptedClient(KeyError("boom")), history)
    with pytest.raises(UnknownError, match="adapter raised KeyError"):
        client.put("k", "v", timeout=1)
    assert history.events[-1].type == "info"


def test_cas_mismatch_is_a_fail_with_the_pair_as_value(tmp_path: Path) -> None:
    hosts = [HostSpec("n1", "127.0.0.1", tmp_path, tmp_path)]
    cluster = FakeAdapter().start_cluster(hosts)
    history = History()
    client = RecordingClient(cluster.client(cluster.nodes[0]), history)
    assert client.cas("k", None, "a", timeout=1) is True
    assert client.cas("k", "zzz", "b", timeout=1) is False
    ok, mismatch = history.events[1], history.events[3]
    assert (ok.type, ok.value) == ("ok", [None, "a"])
    assert (mismatch.type, mismatch.value, mismatch.error) == ("fail", ["zzz", "b"], "mismatch")


def test_an_operation_the_adapter_lacks_raises_capability_missing() -> None:
    history = History()
    client = RecordingClient(ScriptedClient(None), history)
    with pytest.raises(CapabilityMissing):
        client.delete("k", timeout=1)
    assert history.events[-1].type == "fail"


def test_jsonl_round_trip_and_nemesis_events(tmp_path: Path) -> None:
    history, _ = record_put(None)
    history.nemesis("kill", ["n2"])
    path = history.write_jsonl(tmp_path / "h.jsonl")
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"index", "time", "process", "type", "f", "key", "value", "node", "error"}
    events = read_jsonl(path)
    assert events == history.events
    assert events[-1].process == "nemesis" and events[-1].value == ["n2"]


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"index": 0, "time": 0, "process": 1, "type": "invoke", "f": "put"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_jsonl(path)
