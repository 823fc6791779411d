"""Breaks consensus-safety and fsm-determinism after a crash: a node records the Raft index of
each entry it applies (as a store that keeps an "applied index" beside its state does), and
on its restart takes the recorded index for one already in its state, so replaying its
journal skips that entry. It is etcd-io/etcd#13766 in small: the member comes back without
the last write it applied before the kill, at the same applied index as its peers, for good.
Only a kill while writes stream shows it, and only reading that member finds the key gone.
It compacts its log rarely (as etcd does by default, every 10000 entries), so a restarted
member catches up from log entries; a snapshot from the leader would replace the state and
with it the hole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine

log = logging.getLogger(__name__)


class SkipsLastAppliedStateMachine(KVStateMachine):
    """Writes the index of every entry it applies to ``marker``; after a restart, the entry
    at the index found there is taken as applied already and skipped, and stays skipped at
    every later restart (``skipped`` lists them), as a hole in a state kept on disk would."""

    def __init__(self, marker: Path, skipped: Path, applying: Callable[[], int]) -> None:
        super().__init__()
        self.marker = marker
        self.applying = applying
        self.skipped_file = skipped
        self.skip = set(map(int, skipped.read_text().split())) if skipped.exists() else set()
        if marker.exists() and marker.read_text().strip():
            last = int(marker.read_text())
            self.skip.add(last)
            skipped.write_text(" ".join(map(str, sorted(self.skip))))

    def apply(self, entry: bytes) -> dict[str, Any]:
        index = self.applying()
        if index in self.skip:
            log.warning("entry %d taken as applied before a restart: skipped", index)
            return {"ok": True}
        self.marker.write_text(str(index))
        return super().apply(entry)


#: Entries between two log compactions: more than a crash loop writes.
RARE_SNAPSHOTS = 1_000_000


class SkipsLastAppliedNode(KVNode):
    def __init__(
        self, name: str, raft: str, peers: dict[str, str], data_dir: Path, *_: Any
    ) -> None:
        self.marker = data_dir / "applied-index"
        self.skipped = data_dir / "skipped-indexes"
        super().__init__(name, raft, peers, data_dir, RARE_SNAPSHOTS)

    def make_state_machine(self) -> KVStateMachine:
        # The entry being applied is the one after PySyncObj's last applied index.
        return SkipsLastAppliedStateMachine(
            self.marker, self.skipped, lambda: int(self.consumer._syncObj.raftLastApplied) + 1
        )


class Adapter(PySyncObjAdapter):
    name = "broken-skips-last-applied-entry"
    node_module = "broken_stores.skips_last_applied_entry"
    snapshot_entries = RARE_SNAPSHOTS


if __name__ == "__main__":
    main(node_class=SkipsLastAppliedNode)
