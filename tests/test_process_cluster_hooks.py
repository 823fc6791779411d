"""ProcessNode and ProcessCluster hooks: a store with its own API gives a status reader, a
client factory and a set-up step instead of subclassing; real PySyncObj node processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_consensus.adapters.http import StoreConfig
from pytest_consensus.contract import (
    Client,
    ClusterSetupError,
    HostSpec,
    HttpStoreClient,
    NodeProcess,
    NodeStatus,
    ProcessCluster,
    ProcessNode,
    ReadLevel,
)
from pytest_consensus.contract.child_python import python_environment

PYSYNCOBJ_TOML = Path(__file__).resolve().parents[1] / "examples/pysyncobj-over-http/store.toml"


class CountingClient(Client):
    """The store's own client, as an adapter would write it (here over the protocol)."""

    def __init__(self, node: ProcessNode) -> None:
        self.inner = HttpStoreClient(node.name, node.host.address, node.api_port)
        self.closed = False

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        self.inner.put(key, value, timeout=timeout, request_id=request_id)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        return self.inner.get(key, level=level, timeout=timeout)

    def close(self) -> None:
        self.closed = True


def pysyncobj_nodes(tmp_path: Path, read_status: object = None) -> list[ProcessNode]:
    config = StoreConfig.load(PYSYNCOBJ_TOML)
    hosts = [
        HostSpec(
            f"n{i + 1}",
            f"127.0.91.{i + 1}",
            tmp_path / f"n{i + 1}" / "data",
            tmp_path / f"n{i + 1}",
        )
        for i in range(3)
    ]
    nodes = []
    for index, host in enumerate(hosts):
        host.data_dir.mkdir(parents=True)
        peers = [(i, other) for i, other in enumerate(hosts) if other is not host]
        argv = config.render(index, host, peers)
        process = NodeProcess(host.name, argv, host.log_dir / "node.log", python_environment())
        port = config.port("api", index)
        nodes.append(ProcessNode(host, process, port, status=read_status))  # type: ignore[arg-type]
    return nodes


def test_a_status_reader_and_a_client_factory_replace_subclasses(tmp_path: Path) -> None:
    reads: list[str] = []

    def read_status(node: ProcessNode, timeout: float) -> NodeStatus:
        reads.append(node.name)
        return HttpStoreClient(node.name, node.host.address, node.api_port).status(timeout)

    made: list[CountingClient] = []

    def client(node: ProcessNode) -> CountingClient:
        made.append(CountingClient(node))
        return made[-1]

    cluster = ProcessCluster(pysyncobj_nodes(tmp_path, read_status), client=client).start()
    try:
        assert {"n1", "n2", "n3"} <= set(reads)  # readiness went through the reader
        first = cluster.client(cluster.nodes[0])
        assert first is made[0] and isinstance(first, CountingClient)
        assert cluster.nodes[1].status(timeout=5).node == "n2"
    finally:
        cluster.close()
    assert made and all(c.closed for c in made)  # the cluster closed what it handed out
    assert not any(node.is_running() for node in cluster.nodes)


def test_a_failing_set_up_step_is_a_harness_error_and_kills_the_nodes(tmp_path: Path) -> None:
    def create_bucket(cluster: ProcessCluster) -> None:
        raise ValueError("bucket kv: permission denied")

    cluster = ProcessCluster(pysyncobj_nodes(tmp_path), setup=create_bucket)
    with pytest.raises(ClusterSetupError, match="set-up step create_bucket failed: .*permission"):
        cluster.start()
    assert not any(node.is_running() for node in cluster.nodes)
