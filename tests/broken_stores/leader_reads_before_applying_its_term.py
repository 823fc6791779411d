"""Breaks read-levels at every leader change: a strong read checks that the node leads and
then answers from its local state, as the Go store of consensus-rules.md does (VerifyLeader,
then a map read). As in hashicorp/raft, the state that reads see is updated by an applier
that runs behind the commit index (here: it catches up every 100 ms), the read does not
wait for it to reach the commit index, and followers learn that an entry committed only
with the leader's next message (PySyncObj's batched appends). A new leader then answers
before it has applied the entries committed in the previous term, so the first read after
a failover misses the last acknowledged write."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import RAFT_SETTINGS, KVNode, OperationFailed, main

APPLIER_PERIOD = 0.1


class LeaderReadsLocallyNode(KVNode):
    raft_settings = {**RAFT_SETTINGS, "appendEntriesUseBatch": True}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.visible: dict[str, str] = {}
        threading.Thread(target=self.apply_behind, daemon=True).start()

    def apply_behind(self) -> None:
        while True:
            time.sleep(APPLIER_PERIOD)
            with self.consumer.lock:
                self.visible = dict(self.consumer.fsm.data)

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") == "get" and command.get("level", "strong") == "strong":
            if not self.raft._isLeader():
                raise OperationFailed("not-leader", "strong reads only on the leader", None)
            return {"value": self.visible.get(command["key"])}
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-leader-reads-before-applying-its-term"
    node_module = "broken_stores.leader_reads_before_applying_its_term"


if __name__ == "__main__":
    main(node_class=LeaderReadsLocallyNode)
