"""What a store author needs, in one import: the adapter contract, the error taxonomy, and the
helpers for stores whose nodes are local processes.

    from pytest_consensus.contract import Adapter, Capability, Cluster, NotLeader, ProcessCluster

Everything an adapter may use is listed in ``__all__`` (and in docs/writing-an-adapter.md);
the rest of the package is the harness's own, and may change between versions. This is the
lowest layer: it imports nothing else from the package.
"""

from __future__ import annotations

from pytest_consensus.contract.errors import (
    AdapterLoadError,
    AdapterNotFound,
    CapabilityMissing,
    ClusterSetupError,
    ConnectionLost,
    ConsensusError,
    DefiniteError,
    HarnessError,
    IndefiniteError,
    NoAnswer,
    NodeStartError,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
    Unsupported,
)
from pytest_consensus.contract.event_loop import EventLoopThread
from pytest_consensus.contract.http_protocol import HttpStoreClient
from pytest_consensus.contract.interface import (
    SNAPSHOT_ENTRIES,
    Adapter,
    AdapterInfo,
    Capability,
    Client,
    Cluster,
    HostSpec,
    Node,
    NodeStatus,
    PointDigest,
    ReadLevel,
    Role,
    StateMachine,
)
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import (
    STARTUP_TIMEOUT,
    ProcessCluster,
    ProcessNode,
    wait_until_serving,
)
from pytest_consensus.contract.waiting import WaitTimeout, wait_for

__all__ = [
    # the contract (docs/writing-an-adapter.md)
    "Adapter",
    "AdapterInfo",
    "Capability",
    "Client",
    "Cluster",
    "HostSpec",
    "Node",
    "NodeStatus",
    "PointDigest",
    "ReadLevel",
    "Role",
    "StateMachine",
    "SNAPSHOT_ENTRIES",
    # the error taxonomy: definite, indefinite, and the harness's own
    "ConsensusError",
    "DefiniteError",
    "NotLeader",
    "Unavailable",
    "Rejected",
    "Unsupported",
    "IndefiniteError",
    "Timeout",
    "NoAnswer",
    "ConnectionLost",
    "UnknownError",
    "CapabilityMissing",
    "HarnessError",
    "ClusterSetupError",
    "NodeStartError",
    "AdapterNotFound",
    "AdapterLoadError",
    # stores whose nodes are local processes (and those that serve the HTTP protocol)
    "NodeProcess",
    "ProcessCluster",
    "ProcessNode",
    "wait_until_serving",
    "STARTUP_TIMEOUT",
    "HttpStoreClient",
    # an asyncio client library behind the synchronous contract
    "EventLoopThread",
    # polling with a deadline instead of sleeping
    "wait_for",
    "WaitTimeout",
]
