"""Concurrent client workloads, bounded in operation count and in time.

Each worker owns one client and a random generator derived from the test's seed, so the
sequence of operations each worker *tries* is reproducible; interleavings are not.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_consensus.clients import stopping
from pytest_consensus.contract import Client
from pytest_consensus.contract.errors import ConsensusError

if TYPE_CHECKING:
    from pytest_consensus.nemesis.faults import Nemesis, Schedule

Operation = Callable[[Any, random.Random, int], None]


@dataclass
class WorkloadResult:
    """What the workers did: completed operations, errors by kind, and unexpected crashes."""

    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_workload(
    clients: Sequence[Client] | Sequence[Any],
    operation: Operation,
    *,
    seed: int,
    operations_per_client: int,
    time_limit: float,
    pace: float = 0.0,
) -> WorkloadResult:
    """Run ``operation`` from one thread per client until the count or the time runs out.

    ``pace`` seconds between a worker's operations spread them over the whole run (so a
    fault schedule meets traffic), instead of finishing before the first fault.

    Taxonomy errors are expected under faults and counted; anything else a worker raises
    is collected in ``crashes`` so the test can fail with it. Workers are daemon threads
    that return as soon as the run is stopping (Ctrl-C, SIGTERM), so exit never waits on
    them.
    """
    result = WorkloadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit
    started = time.monotonic()

    def worker(index: int, client: Client) -> None:
        rng = random.Random(f"{seed}-{index}")
        for number in range(operations_per_client):
            if time.monotonic() >= deadline or stopping.stopping():
                return
            if pace and number and stopping.wait(pace):
                return
            try:
                operation(client, rng, number)
                with lock:
                    result.completed += 1
            except ConsensusError as error:
                with lock:
                    result.errors[error.kind] = result.errors.get(error.kind, 0) + 1
            except Exception as error:  # a bug in the test or adapter: report, stop this worker
                with lock:
                    result.crashes.append(f"worker {index}: {type(error).__name__}: {error}")
                return

    threads = [
        threading.Thread(
            target=worker, args=(index, client), name=f"consensus-worker-{index}", daemon=True
        )
        for index, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 30.0)
    result.seconds = time.monotonic() - started
    return result


#: Seconds the nemesis may take, after the schedule's last fault ends, to heal everything.
HEAL_TIMEOUT = 120.0


def run_through_schedule(
    nemesis: Nemesis,
    schedule: Schedule,
    clients: Sequence[Client] | Sequence[Any],
    operation: Operation,
    *,
    seed: int,
    operations_per_client: int = 1000,
    pace: float = 0.05,
    after: float = 1.0,
) -> WorkloadResult:
    """Apply ``schedule`` while the workload runs (until ``after`` seconds past its last
    fault's end), then wait until every fault has healed. Fault errors are left in
    ``nemesis.errors``."""
    nemesis.start(schedule)
    result = run_workload(
        clients,
        operation,
        seed=seed,
        operations_per_client=operations_per_client,
        time_limit=schedule.duration + after,
        pace=pace,
    )
    nemesis.wait(schedule.duration + HEAL_TIMEOUT)
    return result
