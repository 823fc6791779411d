"""Breaks partition-retries on a slow link: the store is PySyncObj as shipped, but its client
library retries on its own, with a fixed per-try deadline of its own (0.25 s), a backoff
that doubles without a cap and without jitter, and no regard for the caller's timeout. On a
fast network every try succeeds at once. Once a link is slow (each try needs longer than
its 0.25 s), one call becomes eight tries and six seconds of backoff: it answers far past
the timeout the caller gave it, and every client that hits the slow node does the same, in
step (no jitter)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.contract import Cluster, HostSpec
from pytest_consensus.contract.errors import ConsensusError
from pytest_consensus.contract.http_protocol import HttpStoreClient
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode

TRY_DEADLINE = 0.25
FIRST_BACKOFF = 0.05
TRIES = 8


class RetryStormClient(HttpStoreClient):
    def operation(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        backoff = FIRST_BACKOFF
        for attempt in range(TRIES):
            try:
                return super().operation(command, TRY_DEADLINE)  # the caller's timeout unused
            except ConsensusError:
                if attempt == TRIES - 1:
                    raise
                time.sleep(backoff)
                backoff *= 2
        raise AssertionError("unreachable")


class Adapter(PySyncObjAdapter):
    name = "broken-retry-storm-client"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        cluster = super().start_cluster(hosts)
        assert isinstance(cluster, ProcessCluster)

        def storming(node: ProcessNode) -> RetryStormClient:
            return RetryStormClient(node.name, node.host.address, node.api_port)

        cluster._make_client = storming
        return cluster
