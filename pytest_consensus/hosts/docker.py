"""The Docker host: members as containers on a private network the run creates.

For users whose Docker engine runs. Each node is a container with a fixed address on a
bridge network named after the run; kill, pause and restart are container operations
(SIGKILL, pause/unpause, start). Network faults work as on the namespace host: each node's
address and network namespace belong to a holder container that is never faulted
(:mod:`pytest_consensus.hosts.docker_netns`), the node's container joins it, and the
firewall's rules and the link proxies run in that namespace from the host, so no tool is
needed in the image. Where this process may not manage namespaces (no root, no ``ip`` or
``iptables``), nodes get plain containers and network faults are n/a with that reason.

Where no engine answers, ``docker_unavailable`` says why and tests using this host are
skipped with that reason.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.base import owner_alive_since
from pytest_consensus.hosts.docker_netns import holder_image, network_mode_of, start_holder
from pytest_consensus.hosts.firewall import Firewall
from pytest_consensus.hosts.netns import (
    NamespaceCluster,
    chain_setup,
    delete_run_namespaces,
    in_namespace,
    ip_command,
    network_faults_unavailable,
    run_tag,
)

LABEL = "pytest-consensus.run"
NAME_PREFIX = "pcons-"
#: The private network's range (a /24 of RFC 2544's test range, as on the namespace host).
DOCKER_SUBNET_BASE = ipaddress.IPv4Network("198.19.0.0/16")


def docker_network_faults_unavailable() -> str | None:
    """Why the Docker host cannot fault links here (the namespace tools it runs from the
    host are missing or not allowed), or None when it can."""
    reason = network_faults_unavailable()
    return None if reason is None else f"the Docker host's network faults: {reason}"


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed: pip install 'pytest-consensus[docker]'"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as error:  # the SDK raises several kinds for "no engine"
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if engine_answers(where):
            return (
                f"a Docker engine answers at {where}, but the docker SDK cannot talk to it "
                f"({type(error).__name__}: {error}); check the versions of docker and "
                "requests installed beside pytest-consensus"
            )
        return f"no Docker engine answers at {where}: {type(error).__name__}: {error}"
    return None


def engine_answers(where: str) -> bool:
    """Whether an engine answers a ping on a unix socket, asked without the SDK, so an
    SDK that fails is not reported as a missing engine."""
    if not where.startswith("unix://"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(where.removeprefix("unix://"))
            connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = connection.recv(64)
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer
    except OSError:
        return False


def network_name(tag: str) -> str:
    return f"{NAME_PREFIX}{tag}"


def container_name(tag: str, cluster: int, node: str) -> str:
    return f"{NAME_PREFIX}{tag}-c{cluster}-{node}"


def subnet_for(pid: int) -> ipaddress.IPv4Network:
    return list(DOCKER_SUBNET_BASE.subnets(new_prefix=24))[pid % 256]


def container_hosts(
    tag: str, cluster: int, count: int, subnet: ipaddress.IPv4Network, cluster_dir: Path
) -> list[HostSpec]:
    """Host specs for one cluster's containers (addresses from .10 up; .1 is the gateway)."""
    return [
        HostSpec(
            name=f"n{index + 1}",
            address=str(subnet.network_address + 10 + index),
            # A path on this machine, mounted into a node process's container (where the
            # adapter runs a program); an etcd container's stays inside it, across restarts.
            data_dir=cluster_dir / f"n{index + 1}" / "data",
            log_dir=cluster_dir / f"n{index + 1}",
            container=container_name(tag, cluster, f"n{index + 1}"),
            container_network=network_name(tag),
        )
        for index in range(count)
    ]


def stale_run_labels(labels: Mapping[str, float | None]) -> list[str]:
    """The run tags among ``labels`` whose pytest process is gone. Each tag maps to when
    its oldest container or network was created: a process with the tag's pid that started
    later is another process that got the pid after it wrapped, not the run."""
    stale = []
    for label, created in sorted(labels.items()):
        try:
            pid = int(label[:5], 36)
        except ValueError:
            continue
        if not owner_alive_since(pid, created):
            stale.append(label)
    return stale


def docker_created_at(attrs: Mapping[str, Any]) -> float | None:
    """A container's or network's ``Created`` time (RFC 3339 with nanoseconds) in seconds
    since the epoch; None if it is missing or unreadable."""
    text = str(attrs.get("Created", ""))
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if match is None:
        return None
    zone = match.group(3) or "Z"
    stamp = match.group(1) + ("+00:00" if zone == "Z" else zone)
    fraction = float(match.group(2) or 0)
    return datetime.fromisoformat(stamp).timestamp() + fraction


class DockerHosts:
    """The run's Docker network; hands out container hosts per cluster."""

    name = "docker"

    def __init__(self, run_dir: Path, worker: str = "main") -> None:
        reason = docker_unavailable()
        if reason is not None:
            raise CapabilityMissing(reason)
        import docker

        self.client: Any = docker.from_env(timeout=60)
        self.run_dir = run_dir
        self.tag = run_tag(os.getpid(), worker)
        self.subnet = subnet_for(os.getpid())
        self.gateway = str(self.subnet.network_address + 1)
        self.network_faults_reason = docker_network_faults_unavailable()
        self._holder_image: str | None = None
        self._clusters = 0
        try:
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(self.subnet), gateway=self.gateway)]
            )
            self.network = self.client.networks.create(
                network_name(self.tag), driver="bridge", ipam=ipam, labels={LABEL: self.tag}
            )
        except Exception as error:
            raise HarnessError(
                f"cannot create the Docker network {network_name(self.tag)}: {error}"
            ) from error

    def allocate(self, count: int, ports: Sequence[int] = ()) -> Allocation:
        self._clusters += 1
        hosts = container_hosts(
            self.tag, self._clusters, count, self.subnet, self.run_dir / f"cluster-{self._clusters}"
        )
        if self.network_faults_reason is not None:
            return Allocation(hosts, None, lambda: self._remove([h.container for h in hosts]))
        cluster = NamespaceCluster([], {}, {})
        try:
            self._hold_namespaces(hosts, cluster)
        except BaseException:
            self._release(cluster)
            raise
        return Allocation(cluster.hosts, Firewall(self, cluster), lambda: self._release(cluster))

    def _hold_namespaces(self, hosts: Sequence[HostSpec], cluster: NamespaceCluster) -> None:
        """A holder per node, its namespace named after the node's container (as the
        namespace host names its own) with the firewall's chain in it; the node's host
        spec then says to join the holder."""
        if self._holder_image is None:
            self._holder_image = holder_image(self.client)
        for host in hosts:
            assert host.container is not None
            holder = f"{host.container}-net"
            pid = start_holder(
                self.client,
                self._holder_image,
                holder,
                network_name(self.tag),
                host.address,
                {LABEL: self.tag},
            )
            cluster.links.append(holder)  # containers to remove with the cluster
            ip_command("netns", "attach", host.container, str(pid))
            cluster.namespaces[host.name] = host.container
            for rule in chain_setup():
                in_namespace(host.container, "iptables", "-w", "5", *rule)
            cluster.addresses[host.name] = host.address
            cluster.hosts.append(replace(host, container_network=network_mode_of(holder)))

    def _release(self, cluster: NamespaceCluster) -> None:
        """The nodes' containers first (they live in the holders' namespaces), then the
        holders and the namespaces' names."""
        self._remove([host.container for host in cluster.hosts])
        self._remove(cluster.links)
        for namespace in cluster.namespaces.values():
            ip_command("netns", "del", namespace, check=False)

    def _remove(self, names: Sequence[str | None]) -> None:
        for name in names:
            try:
                self.client.containers.get(name).remove(force=True)
            except Exception:
                pass

    def close(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.tag}"}
        ):
            container.remove(force=True)
        if self.network_faults_reason is None:
            delete_run_namespaces(self.tag)
        try:
            self.network.remove()
        except Exception:
            pass
        self.client.close()


def sweep_stale_docker() -> list[str]:
    """Remove containers and networks of runs whose pytest process is gone."""
    if docker_unavailable() is not None:
        return []
    import docker

    client = docker.from_env(timeout=30)
    removed = []
    try:
        containers = client.containers.list(all=True, filters={"label": LABEL})
        networks = client.networks.list(filters={"label": LABEL})
        created: dict[str, float | None] = {}
        for label, attrs in [
            *((c.labels.get(LABEL, ""), c.attrs) for c in containers),
            *((n.attrs.get("Labels", {}).get(LABEL, ""), n.attrs) for n in networks),
        ]:
            times = [t for t in (created.get(label), docker_created_at(attrs)) if t is not None]
            created[label] = min(times) if times else None
        stale = set(stale_run_labels(created))
        for container in containers:
            if container.labels.get(LABEL) in stale:
                container.remove(force=True)
                removed.append(container.name)
        for network in networks:
            if network.attrs.get("Labels", {}).get(LABEL) in stale:
                network.remove()
                removed.append(network.name)
    finally:
        client.close()
    return removed
