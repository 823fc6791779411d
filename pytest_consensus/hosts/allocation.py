"""What a host provider hands out for one cluster: its hosts, and how to give them back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_consensus.contract import HostSpec
from pytest_consensus.hosts.disks import LossyDisks
from pytest_consensus.hosts.firewall import Firewall


@dataclass
class Allocation:
    """Hosts for one cluster, the firewall that can partition them (None on loopback), the
    lossy disks their data directories are mounted on (None unless asked for), and how to
    give them back."""

    hosts: list[HostSpec]
    firewall: Firewall | None
    release: Callable[[], None]
    disks: LossyDisks | None = None
