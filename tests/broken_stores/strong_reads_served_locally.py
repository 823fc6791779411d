"""Breaks read-levels: strong reads are answered from the local replica, like stale ones, so
a member cut off from the majority serves values the majority has overwritten."""

from __future__ import annotations

from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main


class LocalStrongReadNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") == "get":
            return self.read_local(command["key"])
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-strong-reads-served-locally"
    node_module = "broken_stores.strong_reads_served_locally"


if __name__ == "__main__":
    main(node_class=LocalStrongReadNode)
