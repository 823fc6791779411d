"""Breaks partition-retries only across a leader change: each node remembers the request ids
it has answered in its own memory (not in the replicated state), so a retry sent to the node
that took the first attempt is answered from memory, but a retry sent to a new leader after
a failover applies the write a second time."""

from __future__ import annotations

import threading
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import WRITE_OPERATIONS


class RemembersRequestIdsLocally(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered: dict[str, dict[str, Any]] = {}
        self.answered_lock = threading.Lock()

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        request_id = command.pop("request_id", None)
        if request_id is None or command.get("f") not in WRITE_OPERATIONS:
            return super().execute(command, timeout)
        with self.answered_lock:
            if request_id in self.answered:
                return self.answered[request_id]
        result = super().execute(command, timeout)
        with self.answered_lock:
            self.answered[request_id] = result
        return result


class Adapter(PySyncObjAdapter):
    name = "broken-dedup-lost-on-leader-change"
    node_module = "broken_stores.dedup_lost_on_leader_change"


if __name__ == "__main__":
    main(node_class=RemembersRequestIdsLocally)
