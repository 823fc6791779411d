"""Breaks leader-gating: the leader acknowledges a write as soon as it has appended it to its
log, before a majority has it, so a deposed leader cut off in a minority keeps acknowledging."""

from __future__ import annotations

import json
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main
from pytest_consensus.adapters.pysyncobj.statemachine import WRITE_OPERATIONS


class AcksBeforeCommitNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") in WRITE_OPERATIONS:
            if not self.raft._isLeader():
                raise OperationFailed("not-leader", "not the leader", self.leader_name())
            self.consumer.apply_entry(json.dumps(command, sort_keys=True).encode())
            return {"ok": True, "deleted": True, "swapped": True}
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-acks-before-commit"
    node_module = "broken_stores.acks_before_commit"


if __name__ == "__main__":
    main(node_class=AcksBeforeCommitNode)
