"""Breaks read-levels (and the meaning of a definite error): a node that cannot commit a
write refuses it as unavailable, a definite failure that promises the write will never take
effect, but keeps it and proposes it again once it can, after the partition heals."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main

RETRY_PERIOD = 0.5


class HoldsWritesNode(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[dict[str, Any]] = []
        self.held_lock = threading.Lock()
        threading.Thread(target=self.propose_held, daemon=True).start()

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") != "put":
            return super().execute(command, timeout)
        try:
            return super().execute(command, timeout)
        except OperationFailed as failure:
            with self.held_lock:
                self.held.append(command)
            raise OperationFailed("unavailable", f"not committed: {failure}", None) from None

    def propose_held(self) -> None:
        while True:
            time.sleep(RETRY_PERIOD)
            with self.held_lock:
                waiting, self.held = self.held, []
            for command in waiting:
                try:
                    super().execute(command, 2.0)
                except OperationFailed:
                    with self.held_lock:
                        self.held.append(command)


class Adapter(PySyncObjAdapter):
    name = "broken-minority-holds-writes"
    node_module = "broken_stores.minority_holds_writes"


if __name__ == "__main__":
    main(node_class=HoldsWritesNode)
