"""Choosing where clusters live: the namespace host when the machine allows, else loopback.

``auto`` (the default) uses network namespaces when this process may create them (root or
CAP_NET_ADMIN, ``ip`` and ``iptables`` installed) and loopback addresses otherwise, in which
case tests that need network faults are reported n/a with the reason, never weakened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.base import LoopbackHosts
from pytest_consensus.hosts.firewall import Firewall
from pytest_consensus.hosts.netns import NamespaceNetwork, network_faults_unavailable

HOST_CHOICES = ("auto", "netns", "loopback", "docker")


class LoopbackProvider:
    name = "loopback"

    def __init__(self, run_dir: Path) -> None:
        self.hosts = LoopbackHosts(run_dir)

    def allocate(self, count: int, ports: Sequence[int] = ()) -> Allocation:
        return Allocation(self.hosts.allocate(count, ports), None, lambda: None)

    def close(self) -> None:
        pass


class NamespaceProvider:
    name = "netns"

    def __init__(self, run_dir: Path, worker: str) -> None:
        self.network = NamespaceNetwork(run_dir, worker)

    def allocate(self, count: int, ports: Sequence[int] = ()) -> Allocation:
        cluster = self.network.allocate(count)
        return Allocation(
            cluster.hosts, Firewall(self.network, cluster), lambda: self.network.release(cluster)
        )

    def close(self) -> None:
        self.network.close()


HostProvider = Any  # LoopbackProvider | NamespaceProvider | DockerHosts: allocate, close


def resolve_host_choice(choice: str) -> tuple[str, str | None]:
    """The host a run will use and, when it is not the namespace host, why not."""
    if choice not in HOST_CHOICES:
        raise HarnessError(f"unknown host {choice!r}; valid: {', '.join(HOST_CHOICES)}")
    if choice == "loopback":
        return "loopback", "--consensus-host=loopback was chosen"
    if choice == "docker":
        from pytest_consensus.hosts.docker import docker_network_faults_unavailable

        return "docker", docker_network_faults_unavailable()
    reason = network_faults_unavailable()
    if reason is None:
        return "netns", None
    if choice == "netns":
        raise HarnessError(f"--consensus-host=netns is not possible here: {reason}")
    return "loopback", reason


def make_provider(host: str, run_dir: Path, worker: str) -> HostProvider:
    """The provider for ``host``; raises CapabilityMissing when the Docker engine is absent."""
    if host == "netns":
        return NamespaceProvider(run_dir, worker)
    if host == "docker":
        from pytest_consensus.hosts.docker import DockerHosts

        return DockerHosts(run_dir, worker)
    return LoopbackProvider(run_dir)
