"""Breaks read-levels on a member cut off from the majority: a node answers stale reads from
its log's tail, uncommitted entries included. Writes it receives go into that tail before
they are proposed; one that does not commit stays there until the node hears from a leader
again (here: for 5 seconds), so its stale reads serve a value that never committed."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main

#: How long an entry that did not commit stays in the tail that reads see.
UNCOMMITTED_KEPT_SECONDS = 5.0


class ReadsUncommittedNode(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tail: dict[str, tuple[str, float]] = {}
        self.tail_lock = threading.Lock()

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        key = command.get("key")
        if command.get("f") == "get" and command.get("level", "strong") == "stale":
            with self.tail_lock:
                pending = self.tail.get(str(key))
            if pending is not None and time.monotonic() - pending[1] < UNCOMMITTED_KEPT_SECONDS:
                return {"value": pending[0]}
            return super().execute(command, timeout)
        if command.get("f") != "put":
            return super().execute(command, timeout)
        with self.tail_lock:
            self.tail[str(key)] = (str(command.get("value")), time.monotonic())
        try:
            result = super().execute(command, timeout)
        except OperationFailed:
            raise
        with self.tail_lock:
            self.tail.pop(str(key), None)
        return result


class Adapter(PySyncObjAdapter):
    name = "broken-stale-reads-serve-uncommitted-entries"
    node_module = "broken_stores.stale_reads_serve_uncommitted_entries"


if __name__ == "__main__":
    main(node_class=ReadsUncommittedNode)
