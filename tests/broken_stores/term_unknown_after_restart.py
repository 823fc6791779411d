"""Not broken: a PySyncObj store whose node, once restarted, reports no term in its status
until it knows a leader, as NATS does (it loads its Raft state only once it reaches a peer).
The test of a node restarted while cut off cannot see whether it kept its term, and must say
so (n/a) soon, rather than wait out its whole climb timeout or call it a pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main


class TermUnknownAfterRestartNode(KVNode):
    def __init__(self, name: str, raft: str, peers: dict[str, str], data_dir: Path, *rest: Any):
        self.restarted = any(data_dir.glob("raft.journal*"))  # PySyncObj's, from a first start
        super().__init__(name, raft, peers, data_dir, *rest)

    def status(self) -> dict[str, Any]:
        status = super().status()
        if self.restarted and status["leader"] is None:
            status["term"] = None
        return status


class Adapter(PySyncObjAdapter):
    name = "term-unknown-after-restart"
    node_module = "broken_stores.term_unknown_after_restart"


if __name__ == "__main__":
    main(node_class=TermUnknownAfterRestartNode)
