"""Breaks partition-retries: the state machine ignores request ids, so a retried write whose
first attempt was applied (but whose answer was lost) is applied a second time. The suite's
retry tests always include a fault that loses a node's replies, which makes that happen."""

from __future__ import annotations

import json
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine


class IgnoresRequestIds(KVStateMachine):
    def apply(self, entry: bytes) -> dict[str, Any]:
        try:
            command = json.loads(entry)
        except ValueError:
            return super().apply(entry)
        if isinstance(command, dict):
            command.pop("request_id", None)
            entry = json.dumps(command, sort_keys=True).encode()
        return super().apply(entry)


class ForgetsRequestIds(KVNode):
    def make_state_machine(self) -> KVStateMachine:
        return IgnoresRequestIds()


class Adapter(PySyncObjAdapter):
    name = "broken-retries-without-request-ids"
    node_module = "broken_stores.retries_without_request_ids"


if __name__ == "__main__":
    main(node_class=ForgetsRequestIds)
