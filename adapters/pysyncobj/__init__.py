"""The PySyncObj backend: each node a separate process running a PySyncObj replica.

Nodes serve the HTTP store protocol (docs/http-protocol.md). Strong reads go through the
Raft log, since PySyncObj has no read-index; stale reads answer from the local replica.
Settings and their reasons: docs/adapters/pysyncobj.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import ClassVar

from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine
from pytest_consensus.contract import (
    SNAPSHOT_ENTRIES,
    Adapter,
    Capability,
    Cluster,
    HostSpec,
    StateMachine,
)
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.container_process import node_process
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode

#: Node i (from 0) uses RAFT_PORT + 2i and API_PORT + 2i. Ports differ per node even
#: though addresses do too: PySyncObj 0.3.17 elects no leader when every node has the
#: same port on different addresses (seen on loopback; see docs/adapters/pysyncobj.md).
RAFT_PORT = 7401
API_PORT = 7402
MAX_NODES = 25


def node_ports(index: int) -> tuple[int, int]:
    """The (raft, api) ports of node ``index``."""
    return RAFT_PORT + 2 * index, API_PORT + 2 * index


class PySyncObjAdapter(Adapter):
    """Certifies PySyncObj with a key-value state machine and request-id deduplication."""

    name = "pysyncobj"
    capabilities = frozenset(
        {
            Capability.STRONG_READ,
            Capability.STALE_READ,
            Capability.CAS,
            Capability.APPEND,
            Capability.DELETE,
            Capability.KILL,
            Capability.PAUSE,
            Capability.RESTART,
            Capability.LEADER,
            Capability.REQUEST_IDS,
            Capability.DIGEST,
            Capability.FSM,
            Capability.SCAN,
        }
    )
    snapshot_entries: ClassVar[int | None] = SNAPSHOT_ENTRIES
    data_files: ClassVar[tuple[str, ...]] = ("raft.journal", "raft.journal.meta", "raft.dump")
    ports: ClassVar[tuple[int, ...]] = tuple(range(RAFT_PORT, RAFT_PORT + 2 * MAX_NODES))
    #: The module each node runs; the project's broken stores point this elsewhere.
    node_module: ClassVar[str] = "pytest_consensus.adapters.pysyncobj.node"

    def version(self) -> str:
        return f"pysyncobj {metadata.version('pysyncobj')}"

    def node_command(self, hosts: Sequence[HostSpec], index: int) -> list[str]:
        host = hosts[index]
        raft_port, api_port = node_ports(index)
        command = [
            *host.command_prefix,
            sys.executable,
            "-m",
            self.node_module,
            "--name",
            host.name,
            "--raft",
            f"{host.address}:{raft_port}",
            "--api",
            f"{host.address}:{api_port}",
            "--data-dir",
            str(host.data_dir),
        ]
        if host.machine is None:  # a node on another machine cannot see this process
            command += ["--parent-pid", str(os.getpid())]
        for peer_index, peer in enumerate(hosts):
            if peer_index != index:
                peer_raft_port = node_ports(peer_index)[0]
                command += ["--peer", f"{peer.name}={peer.address}:{peer_raft_port}"]
        return command

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        env = python_environment()
        nodes = []
        if len(hosts) > MAX_NODES:
            raise HarnessError(f"the pysyncobj adapter supports up to {MAX_NODES} nodes")
        for index, host in enumerate(hosts):
            argv = self.node_command(hosts, index)
            process = node_process(host, argv, host.log_dir / "node.log", env, host.log_dir)
            nodes.append(ProcessNode(host, process, node_ports(index)[1]))
        return ProcessCluster(nodes).start()

    def fsm_factory(self) -> Callable[[], StateMachine]:
        return KVStateMachine
