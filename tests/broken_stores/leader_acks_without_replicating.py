"""Breaks consensus-safety: the leader applies writes to its memory and acknowledges them
without putting them in the Raft log, so they vanish with the leader."""

from __future__ import annotations

import json
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main
from pytest_consensus.adapters.pysyncobj.statemachine import WRITE_OPERATIONS


class UnreplicatedLeaderNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") in WRITE_OPERATIONS:
            if not self.raft._isLeader():
                raise OperationFailed("not-leader", "not the leader", self.leader_name())
            with self.consumer.lock:
                return self.consumer.fsm.apply(json.dumps(command).encode())
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-leader-acks-without-replicating"
    node_module = "broken_stores.leader_acks_without_replicating"


if __name__ == "__main__":
    main(node_class=UnreplicatedLeaderNode)
