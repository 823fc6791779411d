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

HOST_CHOICES = ("auto", "netns", "loopback", "docker", "ssh")


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


HostProvider = Any  # LoopbackProvider | NamespaceProvider | DockerHosts | SshHosts


def resolve_host_choice(choice: str, ssh_inventory: Path | None = None) -> tuple[str, str | None]:
    """The host a run will use and why it cannot cut links (None: it can). The SSH host
    logs in to every machine of the inventory here, so an unusable one is an error before
    any test runs."""
    if choice not in HOST_CHOICES:
        raise HarnessError(f"unknown host {choice!r}; valid: {', '.join(HOST_CHOICES)}")
    if choice == "ssh":
        if ssh_inventory is None:
            raise HarnessError(
                "--consensus-host=ssh needs --consensus-ssh-inventory=FILE, the machines to "
                "run nodes on (docs/hosts.md shows the format)"
            )
        from pytest_consensus.hosts.ssh import ssh_network_faults_unavailable

        return "ssh", ssh_network_faults_unavailable(ssh_inventory)
    if ssh_inventory is not None:
        raise HarnessError("--consensus-ssh-inventory is for --consensus-host=ssh only")
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


def make_provider(
    host: str, run_dir: Path, worker: str, ssh_inventory: Path | None = None
) -> HostProvider:
    """The provider for ``host``; raises CapabilityMissing when the Docker engine is absent."""
    if host == "ssh" and ssh_inventory is not None:
        from pytest_consensus.hosts.ssh import SshHosts

        return SshHosts(run_dir, worker, ssh_inventory)
    if host == "netns":
        return NamespaceProvider(run_dir, worker)
    if host == "docker":
        from pytest_consensus.hosts.docker import DockerHosts

        return DockerHosts(run_dir, worker)
    return LoopbackProvider(run_dir)
