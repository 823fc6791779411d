"""Breaks read-levels after a pause: the leader serves strong reads from its local state
while it holds a read lease, and counts the lease in ticks of its own loop (renewed every
tick while it leads, running out 10 ticks after it stops leading). While the process is
stopped no tick passes, so after SIGCONT the lease still looks valid, and the deposed leader
answers with values the new leader has overwritten."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main

TICK = 0.05
LEASE_TICKS = 10


class LeaseReadNode(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lease_ticks = 0
        threading.Thread(target=self.tick, daemon=True).start()

    def tick(self) -> None:
        while True:
            time.sleep(TICK)
            if self.raft._isLeader():
                self.lease_ticks = LEASE_TICKS
            elif self.lease_ticks > 0:
                self.lease_ticks -= 1

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        strong_get = command.get("f") == "get" and command.get("level", "strong") == "strong"
        if strong_get and self.lease_ticks > 0:
            return self.read_local(command["key"])
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-read-lease-survives-a-pause"
    node_module = "broken_stores.read_lease_survives_a_pause"


if __name__ == "__main__":
    main(node_class=LeaseReadNode)
