"""An in-process fake store for unit tests of the harness's own logic (never certified).

It implements the adapter contract with a dict shared by "nodes" that are plain objects, so
plugin tests run in milliseconds. Real certification always uses real processes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from pytest_consensus.contract import (
    Adapter,
    Capability,
    Client,
    Cluster,
    HostSpec,
    Node,
    NodeStatus,
    ReadLevel,
    Role,
)
from pytest_consensus.contract.errors import NotLeader, Unavailable


class FakeNode(Node):
    def __init__(self, host: HostSpec, store: FakeCluster) -> None:
        self.name = host.name
        self.host = host
        self.store = store
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def kill(self) -> None:
        self.running = False

    def is_running(self) -> bool:
        return self.running

    def status(self, timeout: float) -> NodeStatus:
        if not self.running:
            raise Unavailable(f"{self.name} is down")
        leader = self.store.nodes[0].name
        role = Role.LEADER if self.name == leader else Role.FOLLOWER
        return NodeStatus(self.name, role, 1, leader, 1, 1, "digest")


class FakeClient(Client):
    def __init__(self, node: FakeNode) -> None:
        self.node = node.name
        self._node = node

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        if not self._node.running:
            raise Unavailable("down")
        if key == "refuse":
            raise NotLeader("not leader", leader_hint="n1")
        with self._node.store.lock:
            self._node.store.data[key] = value

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        if key == "explode":
            raise RuntimeError("adapter bug")
        with self._node.store.lock:
            return self._node.store.data.get(key)

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        with self._node.store.lock:
            if self._node.store.data.get(key) != expected:
                return False
            self._node.store.data[key] = new
            return True


class FakeCluster(Cluster):
    def __init__(self, hosts: Sequence[HostSpec]) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, str] = {}
        self.nodes = [FakeNode(host, self) for host in hosts]
        for node in self.nodes:
            node.start()

    def client(self, node: Node) -> Client:
        found = self.node(node.name)
        assert isinstance(found, FakeNode)
        return FakeClient(found)

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


class FakeAdapter(Adapter):
    """Declares no kill or pause, so tests needing them must be reported n/a."""

    name = "fake"
    capabilities = frozenset({Capability.STRONG_READ, Capability.LEADER})

    def version(self) -> str:
        return "fake 1.0" + (f" ({self.options['flavour']})" if "flavour" in self.options else "")

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        return FakeCluster(hosts)


class ExplodingAdapter(FakeAdapter):
    """An adapter whose constructor fails, as a buggy third-party one might."""

    name = "exploding"

    def __init__(self, options: dict[str, str] | None = None) -> None:
        raise RuntimeError("cannot read my config file")


class SecondFakeAdapter(FakeAdapter):
    """A second backend, for runs that compare several."""

    name = "fake-two"
    capabilities = frozenset({*FakeAdapter.capabilities, Capability.PAUSE})


class DigestlessNode(FakeNode):
    """Reports no state digest, although its adapter declares the capability."""

    def status(self, timeout: float) -> NodeStatus:
        return replace(super().status(timeout), digest=None)


class DigestlessCluster(FakeCluster):
    def __init__(self, hosts: Sequence[HostSpec]) -> None:
        super().__init__(hosts)
        self.nodes = [DigestlessNode(host, self) for host in hosts]
        for node in self.nodes:
            node.start()


class DigestlessAdapter(FakeAdapter):
    """Declares ``digest`` but every node reports None: digests cannot be compared."""

    name = "fake-digestless"
    capabilities = frozenset({*FakeAdapter.capabilities, Capability.DIGEST})

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        return DigestlessCluster(hosts)
