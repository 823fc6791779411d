"""Breaks leader-gating: a follower applies writes to its own replica and acknowledges them."""

from __future__ import annotations

import json
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import WRITE_OPERATIONS


class FollowerAppliesLocallyNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") in WRITE_OPERATIONS and not self.raft._isLeader():
            with self.consumer.lock:
                return self.consumer.fsm.apply(json.dumps(command).encode())
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-follower-applies-locally"
    node_module = "broken_stores.follower_applies_locally"


if __name__ == "__main__":
    main(node_class=FollowerAppliesLocallyNode)
