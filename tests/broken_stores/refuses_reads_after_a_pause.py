"""Not broken, cautious: a node that notices it was stopped (its loop's clock jumped) refuses
strong reads for the next 5 s, so a deposed leader that resumes answers none in the window
the paused-leader test watches. That test then saw nothing to judge, and must say n/a, not
pass (tests/test_broken_stores.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, OperationFailed, main

TICK = 0.05
#: A gap between ticks this long means the process was stopped.
STOPPED = 0.5
REFUSE_SECONDS = 5.0


class CautiousReadNode(KVNode):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refuse_until = 0.0
        self.last_tick = time.monotonic()
        threading.Thread(target=self.tick, daemon=True).start()

    def tick(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            if now - self.last_tick > STOPPED:
                self.refuse_until = now + REFUSE_SECONDS
            self.last_tick = now

    def stopped_lately(self) -> bool:
        """Within 5 s of a stop, or stopped and not yet noticed by the tick (a request
        served the instant the process resumes)."""
        now = time.monotonic()
        return now < self.refuse_until or now - self.last_tick > STOPPED

    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        strong_get = command.get("f") == "get" and command.get("level", "strong") == "strong"
        if strong_get and self.stopped_lately():
            raise OperationFailed("unavailable", "stopped a moment ago: not answering reads yet")
        return super().execute(command, timeout)


class Adapter(PySyncObjAdapter):
    name = "cautious-refuses-reads-after-a-pause"
    node_module = "broken_stores.refuses_reads_after_a_pause"


if __name__ == "__main__":
    main(node_class=CautiousReadNode)
