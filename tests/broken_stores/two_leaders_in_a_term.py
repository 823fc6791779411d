"""Breaks consensus-safety: a follower that hears no heartbeat for 0.3 s declares itself
leader of the term it is in, without standing for election in a new term, and serves
writes from its own state while it believes it leads. Whenever a leader is lost (killed,
paused or cut off), its followers claim the term it led: two or more leaders in one term.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from pysyncobj.monotonic import monotonic

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import LEADER_STATE, KVNode, main

#: Seconds of silence from the leader after which the node promotes itself.
SILENCE = 0.3
#: The shortest election timeout the node is configured with (see RAFT_SETTINGS).
MIN_ELECTION_TIMEOUT = 0.6
FOLLOWER_STATE = 0


class SelfPromotingNode(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.promoted_term: int | None = None
        threading.Thread(target=self.watch_heartbeats, daemon=True).start()

    def watch_heartbeats(self) -> None:
        """Each heartbeat pushes PySyncObj's election deadline at least 0.6 s ahead, so
        less than 0.3 s left means at least 0.3 s without one."""
        while True:
            time.sleep(0.02)
            raft = self.raft
            left = raft._SyncObj__raftElectionDeadline - monotonic()
            term = raft.raftCurrentTerm
            silent = left < MIN_ELECTION_TIMEOUT - SILENCE
            if raft._SyncObj__raftState == FOLLOWER_STATE and silent and term not in self.led_terms:
                self.promoted_term = term
                self.led_terms.append(term)
                with open(self.leadership_file, "a") as handle:
                    handle.write(json.dumps({"term": term}) + "\n")

    def promoted(self) -> bool:
        raw = self.raft.getStatus()
        return raw["state"] != LEADER_STATE and self.promoted_term == raw["raft_term"]

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.promoted() and command.get("f") != "get":
            with self.consumer.lock:
                return self.consumer.fsm.apply(json.dumps(command, sort_keys=True).encode())
        return super().execute(command, timeout)

    def status(self) -> dict[str, Any]:
        status = super().status()
        if self.promoted():
            status["role"], status["leader"] = "leader", self.name
        return status


class Adapter(PySyncObjAdapter):
    name = "broken-two-leaders-in-a-term"
    node_module = "broken_stores.two_leaders_in_a_term"


if __name__ == "__main__":
    main(node_class=SelfPromotingNode)
