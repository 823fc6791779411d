"""The ZooKeeper backend: one ZooKeeper server (Java, ``QuorumPeerMain``) per host, an
ensemble over the run's hosts, and keys as znodes read and written through ``kazoo``.

The servers are started by the harness from the installed jars (Debian's ``zookeeperd``
puts them in /usr/share/java), never the system service. Role, epoch, leader and last
processed zxid come from each server's AdminServer and its ``currentEpoch`` file; digests
from a read of the key space (``status``) and ZooKeeper's own tree digests (``hash``, for
comparisons while writes stream in). Settings and their reasons: docs/adapters/zookeeper.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pytest_consensus.adapters.zookeeper.client import ZooKeeperClient
from pytest_consensus.adapters.zookeeper.node import (
    ADMIN_PORT,
    CLIENT_PORT,
    ELECTION_PORT,
    QUORUM_PORT,
    ZooKeeperNode,
)
from pytest_consensus.contract import (
    SNAPSHOT_ENTRIES,
    Adapter,
    Capability,
    Cluster,
    HostSpec,
)
from pytest_consensus.contract.binaries import is_executable, named_binary
from pytest_consensus.contract.container_process import node_process
from pytest_consensus.contract.errors import ClusterSetupError, HarnessError
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode
from pytest_consensus.contract.remote_process import write_node_file

#: What a ``strong`` read is: the value read confirmed by a transaction on its version
#: (linearizable, the default), or ZooKeeper's documented ``sync`` then read.
STRONG_READS = ("verified", "sync")
#: Where Debian's zookeeper and libzookeeper-java packages put the jars the server needs:
#: ZooKeeper itself (its manifest lists its dependencies), a logger for slf4j (to stderr,
#: which is the node's log), and the servlet API its AdminServer needs.
DEBIAN_JARS = ("zookeeper.jar", "slf4j-simple.jar", "servlet-api.jar")
DEBIAN_JAVA_DIR = Path("/usr/share/java")
#: ZooKeeper's time unit in milliseconds; the limits below are counted in it.
TICK_MS = 100
#: How long setting up the key space may take (the ensemble must first elect a leader).
SETUP_TIMEOUT = 60.0
#: The JVM of each server: a small heap and the serial collector (three servers share two
#: cores with the test), no JIT past the first tier (starts faster, spends less CPU), and no
#: hsperfdata files left in /tmp.
JVM_OPTIONS = (
    "-Xms32m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS",
    # A follower more than this many transactions behind is sent a snapshot (SNAP), not
    # the missing transactions (DIFF): the harness's SNAPSHOT_ENTRIES, so restores happen.
    f"-Dzookeeper.commitLogCount={SNAPSHOT_ENTRIES}",
    # Connecting to an unreachable peer (a partition drops its packets) gives up after this
    # long, instead of ZooKeeper's 5 s, so elections in a partition take seconds, not tens.
    "-Dzookeeper.cnxTimeout=1000",
    # A server electing alone doubles the wait between its election notifications up to
    # this (ZooKeeper's default is 60 s): one cut off for 5 s rejoins within a second or
    # two of the heal, not 10-15 s later.
    "-Dzookeeper.fastleader.maxNotificationInterval=1000",
    "-Dzookeeper.admin.enableServer=true",
)


class ZooKeeperNotFound(HarnessError):
    """No Java, or no ZooKeeper jars, where we looked."""


def find_java(configured: str | None) -> tuple[Path, str]:
    """The ``java`` binary: the ``java`` option, $JAVA_HOME/bin/java, then PATH."""
    home = os.environ.get("JAVA_HOME")
    sources = (
        ("adapter option java", configured),
        ("JAVA_HOME", str(Path(home) / "bin" / "java") if home else None),
    )
    advice = "Point it at a java binary (17 or later), or unset it to use the one on PATH"
    named = named_binary(sources, advice, ZooKeeperNotFound)
    if named is not None:
        return named
    on_path = shutil.which("java")
    if on_path:
        return Path(on_path), "PATH"
    raise ZooKeeperNotFound(
        "java not found on PATH. Install ZooKeeper and Java with apt-get install zookeeperd "
        "(Debian, Ubuntu), or pass --consensus-adapter-option java=/path/to/java"
    )


def find_classpath(configured: str | None) -> tuple[str, str]:
    """The server's Java classpath: the ``classpath`` option (for an Apache tarball:
    ``/opt/zookeeper/lib/*``), then Debian's jars."""
    if configured:
        return configured, "adapter option classpath"
    jars = [DEBIAN_JAVA_DIR / name for name in DEBIAN_JARS]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise ZooKeeperNotFound(
            f"ZooKeeper's jars not found ({', '.join(missing)} missing). Install them with "
            "apt-get install zookeeperd (Debian, Ubuntu), or pass "
            "--consensus-adapter-option classpath='/path/to/zookeeper/lib/*' (with the "
            "zookeeper jar and its dependencies)"
        )
    return os.pathsep.join(str(jar) for jar in jars), "Debian's zookeeper packages"


def zookeeper_version(java: Path, classpath: str) -> str:
    """The version the jars report (``org.apache.zookeeper.version.VersionInfoMain``)."""
    done = subprocess.run(
        [str(java), "-cp", classpath, "org.apache.zookeeper.version.VersionInfoMain"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout.strip()
    if done.returncode != 0 or "version" not in output:
        raise ZooKeeperNotFound(
            f"{java} -cp {classpath} could not run ZooKeeper's VersionInfoMain: "
            f"{(done.stderr or output)[-400:]!r}"
        )
    # "Apache ZooKeeper, version 3.8.0 2024-12-29 17:54 UTC"
    return output.split("version", 1)[1].split()[0]


def server_config(host: HostSpec, hosts: Sequence[HostSpec]) -> str:
    """The server's zoo.cfg (docs/adapters/zookeeper.md says why each setting)."""
    servers = [
        f"server.{number}={h.address}:{QUORUM_PORT}:{ELECTION_PORT}"
        for number, h in enumerate(hosts, start=1)
    ]
    return "\n".join(
        [
            f"tickTime={TICK_MS}",
            "initLimit=100",  # 10 s for a follower to load a snapshot from the leader
            "syncLimit=10",  # 1 s without the leader's word and a follower drops it
            f"dataDir={host.data_dir}",
            f"clientPortAddress={host.address}",
            f"clientPort={CLIENT_PORT}",
            f"admin.serverAddress={host.address}",
            f"admin.serverPort={ADMIN_PORT}",
            "maxSessionTimeout=30000",
            # Snapshots every 50-100 transactions (ZooKeeper randomizes within snapCount).
            f"snapCount={SNAPSHOT_ENTRIES}",
            "preAllocSize=4096",  # KiB: the log is preallocated in 4 MiB, not 64 MiB
            "maxClientCnxns=0",
            "forceSync=yes",
            "standaloneEnabled=false",
            "reconfigEnabled=false",
            *servers,
            "",
        ]
    )


def write_node_files(host: HostSpec, number: int, hosts: Sequence[HostSpec]) -> str:
    """The server's ``myid`` (in its data directory, where ZooKeeper reads it; synced, since
    a power cut takes that disk back to what was synced and a server without it cannot
    start) and its configuration (beside the log), where the server runs; the
    configuration's path there."""
    write_node_file(host, host.data_dir / "myid", f"{number}\n", durable=True)
    return write_node_file(host, host.log_dir / "zoo.cfg", server_config(host, hosts))


class ZooKeeperCluster(ProcessCluster):
    """Servers and the key space's parent znodes."""

    def __init__(self, nodes: Sequence[ZooKeeperNode], strong_read: str) -> None:
        super().__init__(nodes, client=self._make_client, setup=create_key_space)
        self.strong_read = strong_read

    def _make_client(self, node: ProcessNode) -> ZooKeeperClient:
        assert isinstance(node, ZooKeeperNode)
        return ZooKeeperClient(node.name, node.client_address, strong_read=self.strong_read)

    def close(self) -> None:
        try:
            super().close()
        finally:
            for node in self.nodes:
                if isinstance(node, ZooKeeperNode):
                    node.close_reader()


def create_key_space(cluster: ProcessCluster) -> None:
    """Create the key space's parents once the ensemble has a leader."""
    from kazoo.client import KazooClient

    nodes = [node for node in cluster.nodes if isinstance(node, ZooKeeperNode)]
    deadline = time.monotonic() + SETUP_TIMEOUT
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        for node in nodes:
            kazoo = KazooClient(hosts=node.client_address, timeout=10.0)
            try:
                kazoo.start(timeout=2.0)
                kazoo.ensure_path("/consensus/kv")
                kazoo.ensure_path("/consensus/rids")
                return
            except Exception as error:  # noqa: BLE001 - retried, then reported
                last_error = error
            finally:
                kazoo.stop()
                kazoo.close()
        time.sleep(0.25)
    raise ClusterSetupError(
        f"could not create the key space's parents /consensus/kv and /consensus/rids within "
        f"{SETUP_TIMEOUT} s (the ensemble must first elect a leader): last error: "
        f"{last_error!r}; the servers' logs say why"
    )


class ZooKeeperAdapter(Adapter):
    """Certifies Apache ZooKeeper. Options: ``strong_read`` (``verified``, the default, or
    ``sync``), ``java`` (the java binary), ``classpath`` (the server's jars)."""

    name = "zookeeper"
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
            Capability.DIGEST,
            Capability.DIGEST_AT,
        }
    )
    ports: ClassVar[tuple[int, ...]] = (CLIENT_PORT, QUORUM_PORT, ELECTION_PORT, ADMIN_PORT)
    snapshot_entries: ClassVar[int | None] = SNAPSHOT_ENTRIES

    def __init__(self, options: dict[str, str] | None = None) -> None:
        super().__init__(options)
        self.strong_read = self.options.get("strong_read", "verified")
        if self.strong_read not in STRONG_READS:
            raise HarnessError(
                f"adapter option strong_read={self.strong_read!r}: use one of "
                f"{', '.join(STRONG_READS)} (docs/adapters/zookeeper.md)"
            )
        self.java, self.java_found_in = find_java(self.options.get("java"))
        self.classpath, self.jars_found_in = find_classpath(self.options.get("classpath"))
        self._version = zookeeper_version(self.java, self.classpath)

    def version(self) -> str:
        read = "" if self.strong_read == "verified" else ", strong reads by sync + read"
        return f"ZooKeeper {self._version} (from {self.jars_found_in}{read})"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        if not is_executable(self.java):
            raise ZooKeeperNotFound(f"{self.java} is no longer an executable file")
        numbers = {host.name: number for number, host in enumerate(hosts, start=1)}
        nodes = []
        for number, host in enumerate(hosts, start=1):
            config = write_node_files(host, number, hosts)
            process = node_process(
                host,
                [
                    *host.command_prefix,
                    str(self.java),
                    *JVM_OPTIONS,
                    "-cp",
                    self.classpath,
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    config,
                ],
                host.log_dir / "node.log",
                dict(os.environ),
                host.log_dir,
            )
            nodes.append(ZooKeeperNode(host, process, numbers))
        cluster = ZooKeeperCluster(nodes, self.strong_read)
        cluster.start()
        return cluster


__all__ = ["ZooKeeperAdapter", "ZooKeeperClient"]
