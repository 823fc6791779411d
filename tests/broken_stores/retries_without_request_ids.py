"""Breaks partition-retries: the state machine ignores request ids, so a retried write whose
first attempt was applied (but whose answer was lost) is applied a second time.

The answer is lost on purpose: every third append is committed and applied, then answered
with a timeout, which is what a partition that cuts the reply off looks like to the client.
That makes the ambiguity certain in every run instead of waiting for a schedule to cut at
the right moment. :class:`ControlAdapter` loses the same answers but keeps the request ids:
it must pass, so the rule fails for the missing deduplication and not for the lost answers.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine

#: Every this many appends a node answers with a timeout after the append was applied.
LOSE_EVERY = 3


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


class LosesAnswers(KVNode):
    """Answers every third successful append with a timeout, as a cut-off reply would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appends = 0
        self.appends_lock = threading.Lock()

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        result = super().execute(command, timeout)
        if command.get("f") == "append":
            with self.appends_lock:
                self.appends += 1
                lose = self.appends % LOSE_EVERY == 0
            if lose:
                raise OperationFailed("timeout", "the answer was lost after the append applied")
        return result


class ForgetsRequestIds(LosesAnswers):
    def make_state_machine(self) -> KVStateMachine:
        return IgnoresRequestIds()


class Adapter(PySyncObjAdapter):
    name = "broken-retries-without-request-ids"
    node_module = "broken_stores.retries_without_request_ids"


class ControlAdapter(PySyncObjAdapter):
    name = "control-loses-answers-keeps-request-ids"
    node_module = "broken_stores.retries_without_request_ids_control"


if __name__ == "__main__":
    main(node_class=ForgetsRequestIds)
