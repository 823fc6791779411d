"""Clusters of node processes that speak the HTTP store protocol.

Shared by every backend whose nodes are local processes serving docs/http-protocol.md
(PySyncObj today, the generic HTTP store adapter next): start them, wait until each
answers, and on any failure halfway stop what was started and raise with the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pytest_consensus.contract.errors import (
    ClusterSetupError,
    ConsensusError,
    HarnessError,
    NodeStartError,
)
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
            node.quick_status(timeout=1.0)
            return
        except ConsensusError:
            pass
        if time.monotonic() > deadline:
            node.kill()
            reason = f"not serving on {node.host.address} after {timeout}s"
            raise NodeStartError(node.name, reason, node.log_tail())
        time.sleep(0.05)


#: How a node's status is read when the store does not serve the HTTP protocol.
StatusReader = Callable[["ProcessNode", float], NodeStatus]
#: How a client bound to a node is made, for a store with its own API.
ClientFactory = Callable[["ProcessNode"], Client]
#: A step after every node serves (creating a bucket, a table): given the cluster.
SetupStep = Callable[["ProcessCluster"], None]


class ProcessNode(Node):
    """A node that is one local process, reachable at ``api_address:api_port``.

    ``status`` reads the node's status; by default over the HTTP protocol. A store with its
    own API passes a function ``(node, timeout) -> NodeStatus`` instead of subclassing; it
    must raise a taxonomy error (``Unavailable``, ``Timeout``) while the node cannot answer,
    since readiness is "``status`` answered"."""

    def __init__(
        self,
        host: HostSpec,
        process: NodeProcess,
        api_port: int,
        status: StatusReader | None = None,
    ) -> None:
        self.name = host.name
        self.host = host
        self.process = process
        self.api_port = api_port
        self._read_status = status

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
        if self._read_status is not None:
            return self._read_status(self, timeout)
        return HttpStoreClient(self.name, self.host.address, self.api_port).status(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)


class ProcessCluster(Cluster):
    """Nodes started together; closing kills every process, also after a failed start.

    ``client`` makes the client bound to a node (by default an HTTP protocol client); the
    cluster keeps every client it made and closes them in :meth:`close`. ``setup`` runs
    once after every node serves; if it raises, the nodes are killed and the error becomes
    a :class:`ClusterSetupError` (a harness error, never a verdict on the store).
    """

    def __init__(
        self,
        nodes: Sequence[ProcessNode],
        client: ClientFactory | None = None,
        setup: SetupStep | None = None,
    ) -> None:
        self.nodes: Sequence[ProcessNode] = list(nodes)
        self._make_client = client
        self._setup = setup
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> ProcessCluster:
        try:
            for node in self.nodes:
                node.process.start()
            for node in self.nodes:
                node.wait_until_serving()
            if self._setup is not None:
                try:
                    self._setup(self)
                except HarnessError:
                    raise
                except Exception as error:  # noqa: BLE001 - named, with its cause
                    step = getattr(self._setup, "__name__", repr(self._setup))
                    raise ClusterSetupError(
                        f"the cluster's set-up step {step} failed: {error!r}"
                    ) from error
        except BaseException:
            self.close()
            raise
        return self

    def client(self, node: Node) -> Client:
        found = self.node(node.name)
        assert isinstance(found, ProcessNode)
        if self._make_client is None:
            return HttpStoreClient(found.name, found.host.address, found.api_port)
        made = self._make_client(found)
        with self._lock:
            self._clients.append(made)
        return made

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for made in clients:
            try:
                made.close()
            except Exception:  # noqa: BLE001, S110 - the nodes must still be killed
                pass
        for node in self.nodes:
            node.process.kill()
        self._closed = True
