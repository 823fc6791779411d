"""Breaks read-levels under slow links: the leader serves strong reads from its local state
while it holds a read lease, and times the lease from when its followers' acknowledgements
*arrive* (PySyncObj's own ``__lastResponseTime``), not from when the heartbeat they answer
was sent. A follower resets its election timer when the heartbeat reaches it; an
acknowledgement that spends D seconds on a slow link makes the lease run D seconds past the
point from which the followers may elect another leader. On a fast network the two times
are the same and the lease is safe (it is shorter than the election timeout); once the
followers stop hearing the leader while their late acknowledgements still reach it, the
deposed leader answers strong reads with values the new leader has overwritten."""

from __future__ import annotations

import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import RAFT_SETTINGS, KVNode, main

#: Shorter than the shortest election timeout, as a lease must be.
LEASE = 0.8 * RAFT_SETTINGS["raftMinTimeout"]


class AckArrivalLeaseNode(KVNode):
    def lease_valid(self) -> bool:
        raft = self.raft
        if not raft._isLeader():
            return False
        arrivals = sorted(raft._SyncObj__lastResponseTime.values(), reverse=True)
        needed = (len(arrivals) + 1) // 2  # the leader plus these make a majority
        return len(arrivals) >= needed and time.monotonic() - arrivals[needed - 1] < LEASE

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        strong_get = command.get("f") == "get" and command.get("level", "strong") == "strong"
        if strong_get and self.lease_valid():
            return self.read_local(command["key"])
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-lease-from-ack-arrival"
    node_module = "broken_stores.lease_from_ack_arrival"


if __name__ == "__main__":
    main(node_class=AckArrivalLeaseNode)
