"""Breaks leader-gating rarely: a follower applies 1 write in 100 to its own replica (and
acknowledges it) and forwards the rest, as a store with a racy leadership check might. The
suite sends enough writes to every follower to catch it on every run."""

from __future__ import annotations

import itertools
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import WRITE_OPERATIONS

from broken_stores.follower_applies_locally import FollowerAppliesLocallyNode

EVERY = 100


class FollowerAppliesOneInAHundredNode(FollowerAppliesLocallyNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = itertools.count(1)

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if command.get("f") in WRITE_OPERATIONS and next(self.writes) % EVERY == 0:
            return super().execute(command, timeout)  # applied locally on a follower
        return KVNode.execute(self, command, timeout)


class Adapter(PySyncObjAdapter):
    name = "broken-follower-applies-one-in-a-hundred"
    node_module = "broken_stores.follower_applies_one_in_a_hundred"


if __name__ == "__main__":
    main(node_class=FollowerAppliesOneInAHundredNode)
