"""Breaks fsm-determinism: the state machine stamps each write with the local clock."""

from __future__ import annotations

import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine


class ClockStateMachine(KVStateMachine):
    def _apply_operation(self, operation: str, key: str, command: dict[str, Any]) -> dict[str, Any]:
        result = super()._apply_operation(operation, key, command)
        if operation == "put":
            self.data[f"{key}.written-at"] = repr(time.time())  # differs on every replica
        return result


class ClockNode(KVNode):
    def make_state_machine(self) -> KVStateMachine:
        return ClockStateMachine()


class Adapter(PySyncObjAdapter):
    name = "broken-clock-in-state-machine"
    node_module = "broken_stores.clock_in_state_machine"


if __name__ == "__main__":
    main(node_class=ClockNode)
