"""The firewall of the namespace and Docker hosts: cut directed links between nodes (or between
a node and the client) with iptables rules in the nodes' namespaces, lose a node's replies,
and add delay or loss with netem. The nemesis decides what to cut; this module knows how."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.hosts.netns import CHAIN, BridgedNetwork, NamespaceCluster, in_namespace

CLIENT = "client"  # the test process, on the bridge
#: The largest TCP packet without data we let through: IPv4 (20) + TCP with options (40).
BARE_TCP_PACKET = 60


class Firewall:
    """Blocks directed links between nodes (or the client) with rules in node namespaces."""

    def __init__(self, network: BridgedNetwork, cluster: NamespaceCluster) -> None:
        self.network = network
        self.cluster = cluster

    def address(self, name: str) -> str:
        return self.network.gateway if name == CLIENT else self.cluster.addresses[name]

    def block(self, links: Sequence[tuple[str, ...]]) -> None:
        """Drop packets of each (source, destination) link, on both ends' namespaces."""
        for source, destination in links:
            if destination != CLIENT:
                in_namespace(
                    self.cluster.namespaces[destination],
                    "iptables",
                    "-A",
                    CHAIN,
                    "-s",
                    self.address(source),
                    "-j",
                    "DROP",
                )
            if source != CLIENT:
                in_namespace(
                    self.cluster.namespaces[source],
                    "iptables",
                    "-A",
                    CHAIN,
                    "-d",
                    self.address(destination),
                    "-j",
                    "DROP",
                )

    def drop_replies(self, node: str) -> None:
        """Drop the node's TCP packets to the client that carry data: handshakes and bare
        acknowledgements (at most 60 bytes) still pass, so requests arrive and are acted on,
        but no answer gets back."""
        in_namespace(
            self.cluster.namespaces[node],
            "iptables",
            "-A",
            CHAIN,
            "-d",
            self.network.gateway,
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
