"""Writers that push a store as hard as its clients can, with every acknowledgement recorded.

The gentle workload (paced workers) is where latency and stale reads are measured; faults
that must catch a store busy (a power cut, a member killed while it applies) need writes
streaming with no pause. Each worker writes unique keys (``w<worker>-<number>``) through
the retry policy over connections of its own to every member, so workers do not queue
behind one another's connection, and stops at its bound on writes or when told to.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pytest_consensus.clients import stopping
from pytest_consensus.clients.history import History
from pytest_consensus.clients.member_reads import Acknowledged
from pytest_consensus.clients.retry import RetryingClient, RetryPolicy
from pytest_consensus.contract import Client, Cluster
from pytest_consensus.contract.errors import ConsensusError

#: Writes each worker makes at most: a bound on the loop whatever the clock does.
MAX_WRITES_PER_WORKER = 100_000

#: Every key the load writes starts with this (its keys are ``w<worker>-<number>``), so a
#: member holding them can be read by one scan of the prefix.
KEY_PREFIX = "w"


@dataclass(frozen=True)
class LoadFigures:
    """What the load reached: acknowledged writes over the seconds it ran."""

    workers: int
    acknowledged: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"{self.acknowledged} writes acknowledged in {self.seconds:.1f} s by "
            f"{self.workers} unpaced writers ({self.rate:.0f}/s)"
        )


class WriteLoad:
    """``workers`` threads putting unique keys without pause while :meth:`running`."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        *,
        workers: int,
        seed: int,
        policy: RetryPolicy,
        max_writes_per_worker: int = MAX_WRITES_PER_WORKER,
        shared_connections: bool = False,
    ) -> None:
        self.history = history
        self.seed = seed
        self.policy = policy
        self.max_writes = max_writes_per_worker
        rng = random.Random(seed)

        # Each worker its own connections by default: a shared client serialises workers on
        # one channel for some client libraries, and the point is to keep every member busy.
        # ``shared_connections`` gives all workers one client per member, a lighter load.
        def connect() -> dict[str, Client]:
            return {node.name: cluster.client(node) for node in cluster.nodes}

        shared = connect() if shared_connections else None
        self._connections: list[dict[str, Client]] = [
            shared if shared is not None else connect() for _ in range(workers)
        ]
        names = sorted(node.name for node in cluster.nodes)
        self.writers: list[RetryingClient] = [
            RetryingClient(
                connections,
                history,
                policy,
                random.Random(rng.random()),
                first_node=names[index % len(names)],  # every member sees traffic
            )
            for index, connections in enumerate(self._connections)
        ]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(i, w), daemon=True, name=f"load-{i}")
            for i, w in enumerate(self.writers)
        ]
        self._began: float | None = None
        self._ended: float | None = None

    def _write(self, index: int, writer: RetryingClient) -> None:
        for number in range(self.max_writes):
            if self._stop.is_set() or stopping.stopping():
                return
            try:
                writer.put(f"{KEY_PREFIX}{index}-{number}", f"v{index}-{number}-{self.seed}")
            except ConsensusError:
                continue

    @contextmanager
    def running(self) -> Iterator[WriteLoad]:
        """Writers run inside the block; leaving it stops them (each finishes the write it
        is in, within the policy's deadline) and closes their connections."""
        self._began = time.monotonic()
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(self.policy.deadline + 5.0)
            self._ended = time.monotonic()
            clients = {id(c): c for connections in self._connections for c in connections.values()}
            for client in clients.values():  # a shared client is closed once
                client.close()

    def acknowledged(self) -> dict[str, Acknowledged]:
        """Every write whose success a writer saw, by key, with its value and time."""
        return {
            str(e.key): Acknowledged(str(e.value), e.time)
            for e in self.history.events
            if e.type == "ok" and e.f == "put"
        }

    def figures(self) -> LoadFigures:
        began = self._began if self._began is not None else time.monotonic()
        ended = self._ended if self._ended is not None else time.monotonic()
        return LoadFigures(len(self.writers), len(self.acknowledged()), ended - began)
