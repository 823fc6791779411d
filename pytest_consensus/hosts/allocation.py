"""What a host provider hands out for one cluster: its hosts, and how to give them back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import CapabilityMissing
from pytest_consensus.hosts.disks import LossyDisks
from pytest_consensus.hosts.firewall import Firewall
from pytest_consensus.hosts.links import LinkProxies


@dataclass
class Allocation:
    """Hosts for one cluster, the firewall that can partition them (None on loopback), the
    lossy disks their data directories are mounted on (None unless asked for), the link
    proxies their connections pass through (None unless asked for), and how to give them
    back."""

    hosts: list[HostSpec]
    firewall: Firewall | None
    release: Callable[[], None]
    disks: LossyDisks | None = None
    links: LinkProxies | None = None

    def start_link_proxies(self) -> LinkProxies:
        """Put a link proxy on every node's links (before the nodes start); only hosts with
        a firewall can (namespace, Docker), since the redirect rules live in the nodes'
        network namespaces."""
        if self.firewall is None:
            raise CapabilityMissing(
                "link faults need nodes in network namespaces of their own (the namespace "
                "host, or the Docker host run as root) or on machines of their own (the SSH "
                "host): the proxies' redirect rules live there"
            )
        self.links = self.firewall.link_proxies().start()
        return self.links

    def close_link_proxies(self) -> None:
        if self.links is not None:
            self.links.close()
            self.links = None
