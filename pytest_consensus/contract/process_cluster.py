"""Clusters of node processes that speak the HTTP store protocol.

Shared by every backend whose nodes are local processes serving docs/http-protocol.md
(PySyncObj today, the generic HTTP store adapter next): start them, wait until each
answers, and on any failure halfway stop what was started and raise with the log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pytest_consensus.contract.errors import ConsensusError, NodeStartError
from pytest_consensus.contract.http_protocol import HttpStoreClient
from pytest_consensus.contract.interface import Client, Cluster, HostSpec, Node, NodeStatus
from pytest_consensus.contract.process import NodeProcess

#: How long a node process may take to answer its first request.
STARTUP_TIMEOUT = 30.0


def wait_until_serving(node: Node, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll ``node.status`` until it answers; a node that dies or stays silent is killed and
    reported with its log. Shared by every node kind (process or container)."""
    deadline = time.monotonic() + timeout
    while True:
        if not node.is_running():
            raise NodeStartError(node.name, "it exited", node.log_tail())
        try:
            node.status(timeout=1.0)
            return
        except ConsensusError:
            pass
        if time.monotonic() > deadline:
            node.kill()
            reason = f"not serving on {node.host.address} after {timeout}s"
            raise NodeStartError(node.name, reason, node.log_tail())
        time.sleep(0.05)


class ProcessNode(Node):
    """A node that is one local process, reachable at ``api_address:api_port``."""

    def __init__(self, host: HostSpec, process: NodeProcess, api_port: int) -> None:
        self.name = host.name
        self.host = host
        self.process = process
        self.api_port = api_port

    def start(self) -> None:
        self.process.start()
        self.wait_until_serving()

    def wait_until_serving(self, timeout: float = STARTUP_TIMEOUT) -> None:
        wait_until_serving(self, timeout)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def is_running(self) -> bool:
        return self.process.is_running()

    def status(self, timeout: float) -> NodeStatus:
        return HttpStoreClient(self.name, self.host.address, self.api_port).status(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)


class ProcessCluster(Cluster):
    """Nodes started together; closing kills every process, also after a failed start."""

    def __init__(self, nodes: Sequence[ProcessNode]) -> None:
        self.nodes: Sequence[ProcessNode] = list(nodes)
        self._closed = False

    def start(self) -> ProcessCluster:
        try:
            for node in self.nodes:
                node.process.start()
            for node in self.nodes:
                node.wait_until_serving()
        except BaseException:
            self.close()
            raise
        return self

    def client(self, node: Node) -> Client:
        found = self.node(node.name)
        assert isinstance(found, ProcessNode)
        return HttpStoreClient(found.name, found.host.address, found.api_port)

    def close(self) -> None:
        for node in self.nodes:
            node.process.kill()
        self._closed = True
