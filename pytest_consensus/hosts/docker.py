"""The Docker host: members as containers on a private network the run creates.

For users whose Docker engine runs. Each node is a container with a fixed address on a
bridge network named after the run; kill, pause and restart are container operations
(SIGKILL, pause/unpause, start). Partitions are not offered: disconnecting a container
cuts it from the client too, and the stock etcd images carry no iptables to block single
links, so network faults are reported n/a on this host rather than approximated.

Where no engine answers, ``docker_unavailable`` says why and tests using this host are
skipped with that reason.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.base import pid_alive
from pytest_consensus.hosts.netns import run_tag

LABEL = "pytest-consensus.run"
NAME_PREFIX = "pcons-"
#: The private network's range (a /24 of RFC 2544's test range, as on the namespace host).
DOCKER_SUBNET_BASE = ipaddress.IPv4Network("198.19.0.0/16")
NETWORK_FAULTS_REASON = (
    "the Docker host cannot block single links exactly (disconnecting a container also cuts "
    "the client; etcd images carry no iptables); use --consensus-host=netns for partitions"
)


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
            data_dir=Path("/var/lib/etcd-data"),  # inside the container, kept across restarts
            log_dir=cluster_dir / f"n{index + 1}",
            container=container_name(tag, cluster, f"n{index + 1}"),
            container_network=network_name(tag),
        )
        for index in range(count)
    ]


def stale_run_labels(labels: Sequence[str]) -> list[str]:
    """The run tags among ``labels`` whose pytest process is gone."""
    stale = []
    for label in labels:
        try:
            pid = int(label[:5], 36)
        except ValueError:
            continue
        if not pid_alive(pid):
            stale.append(label)
    return stale


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
        self._clusters = 0
        try:
            ipam = docker.types.IPAMConfig(
                pool_configs=[
                    docker.types.IPAMPool(
                        subnet=str(self.subnet), gateway=str(self.subnet.network_address + 1)
                    )
                ]
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
        return Allocation(hosts, None, lambda: self._remove([h.container for h in hosts]))

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
        tags = {c.labels.get(LABEL, "") for c in containers} | {
            n.attrs.get("Labels", {}).get(LABEL, "") for n in networks
        }
        stale = set(stale_run_labels(sorted(tags)))
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
