"""Breaks partition-retries: a node that cannot get an outcome keeps the client waiting for a
minute instead of answering within the request's timeout, so a deposed leader hangs clients."""

from __future__ import annotations

from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main


class HangingNode(KVNode):
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        return super().execute(command, 60.0)  # ignores the client's timeout


class Adapter(PySyncObjAdapter):
    name = "broken-minority-hangs"
    node_module = "broken_stores.minority_hangs"


if __name__ == "__main__":
    main(node_class=HangingNode)
