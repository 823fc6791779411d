"""State machines broken in the ways the white-box fsm-determinism tests must catch. Each is
the project's PySyncObj adapter with one bug in its state machine (no cluster is needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine
from pytest_consensus.contract import StateMachine


class IteratesASet(KVStateMachine):
    """Its snapshot lists the keys from a set: the order follows the hash seed."""

    def snapshot(self) -> bytes:
        return json.dumps({"keys": list(set(self.data)), "data": self.data}).encode()

    def restore(self, data: bytes) -> None:
        self.data = dict(json.loads(data)["data"])


class RestoreMerges(KVStateMachine):
    """Restore adds the snapshot's keys to what it holds instead of replacing it."""

    def restore(self, data: bytes) -> None:
        kept = dict(self.data)
        super().restore(data)
        self.data = {**kept, **self.data}


class SnapshotSharesLiveState(KVStateMachine):
    """Its snapshot is a buffer that later applies overwrite in place."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def apply(self, entry: bytes) -> dict[str, Any]:
        result = super().apply(entry)
        self.buffer[:] = super().snapshot()
        return result

    def snapshot(self) -> bytes:
        self.buffer[:] = super().snapshot()
        return self.buffer  # type: ignore[return-value]


class CrashesOnMalformedEntries(KVStateMachine):
    """Lets a malformed entry raise, which would kill the replica applying it."""

    def apply(self, entry: bytes) -> dict[str, Any]:
        json.loads(entry)
        return super().apply(entry)


def adapter_for(machine: type[KVStateMachine]) -> type[PySyncObjAdapter]:
    class BrokenFsmAdapter(PySyncObjAdapter):
        def fsm_factory(self) -> Callable[[], StateMachine]:
            return machine

    BrokenFsmAdapter.__name__ = f"{machine.__name__}Adapter"
    return BrokenFsmAdapter


IteratesASetAdapter = adapter_for(IteratesASet)
RestoreMergesAdapter = adapter_for(RestoreMerges)
SnapshotSharesLiveStateAdapter = adapter_for(SnapshotSharesLiveState)
CrashesOnMalformedEntriesAdapter = adapter_for(CrashesOnMalformedEntries)
