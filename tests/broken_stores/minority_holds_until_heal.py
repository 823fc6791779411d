"""Breaks partition-retries subtly: a node that cannot commit a write keeps proposing it and
answers only once it commits, however long that takes, so a client whose request reached a
node cut off from the majority waits until the partition heals, and then hears "ok". While
partitions last less than the client's timeout the answer still comes in time; a partition
that outlasts the timeout (every generated schedule has one) shows the wait.
"""

from __future__ import annotations

import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main

#: How long a write is held at most (a bound; the partitions it waits out are shorter).
HOLD_AT_MOST = 60.0


class HoldsUntilHealNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") == "get":
            return super().execute(command, timeout)
        deadline = time.monotonic() + HOLD_AT_MOST  # ignores the client's timeout
        while True:
            try:
                return super().execute(command, min(timeout, 2.0))
            except OperationFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # proposed again: the request id keeps it applied once


class Adapter(PySyncObjAdapter):
    name = "broken-minority-holds-until-heal"
    node_module = "broken_stores.minority_holds_until_heal"


if __name__ == "__main__":
    main(node_class=HoldsUntilHealNode)
