"""The firewall of the namespace and Docker hosts: cut directed links between nodes (or between
a node and the client) with iptables rules in the nodes' namespaces, lose a node's replies,
and add delay or loss with netem. The nemesis decides what to cut; this module knows how."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.hosts.netns import CHAIN, BridgedNetwork, NamespaceCluster, in_namespace

if TYPE_CHECKING:
    from pytest_consensus.hosts.links import LinkProxies

CLIENT = "client"  # the test process, on the bridge
#: The largest TCP packet without data we let through: IPv4 (20) + TCP with options (40).
BARE_TCP_PACKET = 60


class Firewall:
    """Blocks directed links between nodes (or the client) with rules in node namespaces."""

    def __init__(self, network: BridgedNetwork, cluster: NamespaceCluster) -> None:
        self.network = network
        self.cluster = cluster

    def address(self, name: str) -> str:
        return self.client_address() if name == CLIENT else self.cluster.addresses[name]

    def client_address(self) -> str:
        """The test process's address as the nodes see it."""
        return self.network.gateway

    def link_proxies(self) -> LinkProxies:
        """Link proxies for these nodes (not started)."""
        from pytest_consensus.hosts.links import LinkProxies

        return LinkProxies(self.network, self.cluster)

    def add_rule(self, node: str, *rule: str) -> None:
        """Append ``rule`` to the run's chain where ``node`` lives."""
        in_namespace(self.cluster.namespaces[node], "iptables", "-A", CHAIN, *rule)

    def block(self, links: Sequence[tuple[str, ...]]) -> None:
        """Drop packets of each (source, destination) link, on both ends' namespaces."""
        for source, destination in links:
            if destination != CLIENT:
                self.add_rule(destination, "-s", self.address(source), "-j", "DROP")
            if source != CLIENT:
                self.add_rule(source, "-d", self.address(destination), "-j", "DROP")

    def drop_replies(self, node: str) -> None:
        """Drop the node's TCP packets to the client that carry data: handshakes and bare
        acknowledgements (at most 60 bytes) still pass, so requests arrive and are acted on,
        but no answer gets back."""
        self.add_rule(
            node,
            "-d",
            self.client_address(),
            "-p",
            "tcp",
            "-m",
            "length",
            "--length",
            f"{BARE_TCP_PACKET + 1}:65535",
            "-j",
            "DROP",
        )

    def heal(self) -> None:
        for namespace in self.cluster.namespaces.values():
            in_namespace(namespace, "iptables", "-F", CHAIN)

    def set_netem(self, node: str, *arguments: str) -> None:
        in_namespace(
            self.cluster.namespaces[node],
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "netem",
            *arguments,
        )

    def clear_netem(self, node: str) -> None:
        namespace = self.cluster.namespaces[node]
        try:
            in_namespace(namespace, "tc", "qdisc", "del", "dev", "eth0", "root")
        except HarnessError:
            pass
