"""The namespace host: every node in its own Linux network namespace, joined to a bridge.

Peer traffic between processes on one loopback interface all leaves from 127.0.0.1, so no
firewall rule can tell nodes apart there. Here each node has a namespace, a veth pair into
the run's bridge and its own address; the test process reaches nodes over the bridge; and a
partition is a set of DROP rules inside the node namespaces (their own iptables, which die
with them). Nothing is configured outside the run's bridge and namespaces.

Names carry the run's tag (pid in base 36 and the xdist worker), so runs and workers never
collide and a later run can tell a dead run's leftovers from a live one's.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.hosts.base import owner_alive, pid_alive
from pytest_consensus.hosts.commands import run_tool
from pytest_consensus.hosts.forwarding import (
    BRIDGE_PREFIX,
    allow_bridge_forwarding,
    forwarding_diagnosis,
    remove_bridge_forwarding,
    sweep_stale_forward_rules,
)
from pytest_consensus.hosts.reachability import NamespacesUnreachable, unreachable_paths

#: RFC 2544's benchmarking range: reserved for tests, routed nowhere, unlikely to clash
#: with the machine's own networks. Each run takes one /24 of it.
ADDRESS_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
NAMESPACE_PREFIX = "pcons-"
LINK_PREFIX = "pc"  # bridge pcb<tag>, host-side veths pcv<tag><cluster><node>
CHAIN = "PCONS"
NAMESPACE_PATTERN = re.compile(rf"^{NAMESPACE_PREFIX}(?P<pid>[0-9a-z]{{5}})")
LINK_PATTERN = re.compile(rf"^{LINK_PREFIX}[bv](?P<pid>[0-9a-z]{{5}})")
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def base36(number: int, width: int = 5) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while number:
        number, remainder = divmod(number, 36)
        text = digits[remainder] + text
    return text.rjust(width, "0")


def run_tag(pid: int, worker: str) -> str:
    """5 characters of pid, then the worker: 'm' for a plain run, the number for gwN."""
    worker_part = worker[2:] if worker.startswith("gw") else "m"
    return base36(pid) + worker_part


def ip_command(*arguments: str, namespace: str | None = None, check: bool = True) -> str:
    """Run ``ip``; a failure is a HarnessError quoting the command and its stderr."""
    command = ["ip", *(("-n", namespace) if namespace else ()), *arguments]
    return run_tool(command, check)


def in_namespace(namespace: str, *command: str) -> str:
    return run_tool(["ip", "netns", "exec", namespace, *command])


#: Running without root: a user namespace of one's own, in which the run is root over its
#: own network and mounts (the README's command; the suite tests it).
USER_NAMESPACE_COMMAND = (
    "unshare --user --map-root-user --net --mount sh -c "
    "'mount -t tmpfs tmpfs /run && exec pytest --consensus-adapter=...'"
)


def has_namespace_capabilities(status: str | None = None) -> bool:
    """Root, or both capabilities that creating namespaces and links needs: CAP_NET_ADMIN
    alone is not enough (`ip netns add` mounts, which needs CAP_SYS_ADMIN)."""
    if status is None:
        if os.geteuid() == 0:
            return True
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
            return all(effective >> bit & 1 for bit in (CAP_NET_ADMIN, CAP_SYS_ADMIN))
    return False


def network_faults_unavailable() -> str | None:
    """Why this machine cannot run namespace hosts and network faults, or None if it can."""
    if not Path("/proc/self/ns/net").exists():
        return "network namespaces need Linux"
    if not has_namespace_capabilities():
        return (
            "network faults need root; without it, run pytest in a user namespace of your "
            f"own, where it is root over its own network: {USER_NAMESPACE_COMMAND}"
        )
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"network faults need {tool!r}; install it: apt-get install {package}"
    return None


def netem_unavailable() -> str | None:
    """Why delay/loss faults cannot run here (netem qdisc missing), or None."""
    probe = f"{LINK_PREFIX}x{base36(os.getpid())}"
    try:
        ip_command("link", "add", probe, "type", "dummy")
    except HarnessError as error:
        return f"cannot create a probe link for netem: {error}"
    try:
        run_tool(["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"])
        return None
    except HarnessError as error:
        return f"delay and loss need the netem qdisc, which this kernel lacks ({error})"
    finally:
        ip_command("link", "del", probe, check=False)


def _namespaces() -> list[str]:
    output = ip_command("netns", "list", check=False)
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def _links() -> list[str]:
    output = ip_command("-o", "link", "show", check=False)
    names = []
    for line in output.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _pid_of(name: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.match(name)
    return int(match.group("pid"), 36) if match else None


#: Where ``ip netns`` keeps a named namespace (made when the namespace was).
NETNS_DIR = Path("/run/netns")


def sweep_stale_network() -> list[str]:
    """Delete namespaces and links left by runs whose pytest process is gone (its pid
    gone, or reused by a process that started after the namespace was made)."""
    removed = []
    dead: set[int] = set()
    for namespace in _namespaces():
        pid = _pid_of(namespace, NAMESPACE_PATTERN)
        if pid is not None and not owner_alive(pid, NETNS_DIR / namespace):
            ip_command("netns", "del", namespace, check=False)
            removed.append(namespace)
            dead.add(pid)
    for link in _links():
        pid = _pid_of(link, LINK_PATTERN)
        if pid is not None and (pid in dead or not pid_alive(pid)):
            ip_command("link", "del", link, check=False)
            removed.append(link)
    return removed + sweep_stale_forward_rules()


def delete_run_namespaces(tag: str) -> None:
    """Delete (or, for an attached one, unname) every namespace of the run tagged ``tag``."""
    for namespace in _namespaces():
        if namespace.startswith(f"{NAMESPACE_PREFIX}{tag}-"):
            ip_command("netns", "del", namespace, check=False)


def _subnets_in_use() -> list[ipaddress.IPv4Network]:
    output = ip_command("-o", "-4", "addr", "show", check=False)
    return [
        ipaddress.IPv4Interface(match.group(1)).network
        for match in re.finditer(r"inet (\S+)", output)
    ]


class BridgedNetwork(Protocol):
    """A run's network as the firewall and the link proxies see it: the subnet its nodes'
    namespaces are on, and the address the test process reaches them from. The namespace
    host's bridge is one; the Docker host's network is another."""

    subnet: ipaddress.IPv4Network
    gateway: str


@dataclass
class NamespaceCluster:
    """The namespaces of one cluster; ``addresses`` maps node name to its address, ``links``
    names what else to remove with it (host-side veths; the Docker host's holders)."""

    hosts: list[HostSpec]
    namespaces: dict[str, str]
    addresses: dict[str, str]
    links: list[str] = field(default_factory=list)


class NamespaceNetwork:
    """One run's bridge and subnet; hands out namespace hosts per cluster."""

    def __init__(self, run_dir: Path, worker: str = "main") -> None:
        reason = network_faults_unavailable()
        if reason is not None:
            raise CapabilityMissing(reason)
        self.run_dir = run_dir
        self.tag = run_tag(os.getpid(), worker)
        self.bridge = f"{BRIDGE_PREFIX}{self.tag}"
        self.subnet = self._pick_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        self._clusters = 0
        self.forwarding_rule = False
        try:
            ip_command("link", "add", self.bridge, "type", "bridge")
            ip_command("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip_command("link", "set", self.bridge, "up")
            self.forwarding_rule = allow_bridge_forwarding(self.bridge)
        except HarnessError as error:
            self.close()
            raise HarnessError(
                f"cannot create the run's bridge {self.bridge}: {error}; no traffic was sent"
            ) from error
        try:
            self._check_reachability()
        except BaseException:
            self.close()
            raise

    def _check_reachability(self) -> None:
        """Two probe namespaces on the bridge, one connection between them and one from the
        test process; a usage error naming the host firewall's part when either fails."""
        probe = self._create(2, "probe", 0)
        try:
            failed = unreachable_paths(
                [probe.namespaces["n1"], probe.namespaces["n2"]],
                [probe.addresses["n1"], probe.addresses["n2"]],
            )
        finally:
            self.release(probe)
        if failed:
            raise NamespacesUnreachable(
                f"the run's network namespaces cannot reach each other across its bridge "
                f"{self.bridge}: {'; '.join(failed)}. On this machine: "
                f"{forwarding_diagnosis(self.bridge)}. No store was tested. Fix: let bridged "
                f"traffic of the bridges named {BRIDGE_PREFIX}* through the host firewall "
                f"(with Docker: iptables -I DOCKER-USER -i {BRIDGE_PREFIX}+ -o {BRIDGE_PREFIX}+ "
                "-j ACCEPT; with an nftables forward chain that drops: an accept rule for "
                f'iifname "{BRIDGE_PREFIX}*" in it), or run on loopback addresses with '
                "--consensus-host=loopback, where network faults are n/a"
            )

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = _subnets_in_use()
        offset = os.getpid() % 512
        candidates = list(ADDRESS_RANGE.subnets(new_prefix=24))
        for step in range(len(candidates)):
            subnet = candidates[(offset + step) % len(candidates)]
            if not any(subnet.overlaps(other) for other in used):
                return subnet
        raise HarnessError(f"every /24 of {ADDRESS_RANGE} is in use on this machine")

    def allocate(self, count: int) -> NamespaceCluster:
        """Create ``count`` namespaces with addresses on the bridge (removed by release)."""
        if not 1 <= count <= 200:
            raise HarnessError(f"cluster size must be between 1 and 200, got {count}")
        self._clusters += 1
        return self._create(count, f"c{self._clusters}", self._clusters % 100)

    def _create(self, count: int, label: str, number: int) -> NamespaceCluster:
        """Namespaces ``{tag}-{label}-nK`` with host-side links numbered ``number``."""
        cluster_dir = self.run_dir / f"cluster-{label.removeprefix('c')}"
        created = NamespaceCluster([], {}, {})
        try:
            for index in range(count):
                name = f"n{index + 1}"
                namespace = f"{NAMESPACE_PREFIX}{self.tag}-{label}-{name}"
                outside = f"{LINK_PREFIX}v{self.tag}{number:02d}{index + 1:02d}"[:15]
                inside = f"{outside}i"[:15] if len(outside) < 15 else f"pci{index}{number}"
                address = str(self.subnet.network_address + 10 + index)
                ip_command("netns", "add", namespace)
                created.namespaces[name] = namespace
                ip_command("link", "add", outside, "type", "veth", "peer", "name", inside)
                created.links.append(outside)
                ip_command("link", "set", outside, "master", self.bridge, "up")
                ip_command("link", "set", inside, "netns", namespace)
                ip_command("link", "set", inside, "name", "eth0", namespace=namespace)
                ip_command(
                    "addr",
                    "add",
                    f"{address}/{self.subnet.prefixlen}",
                    "dev",
                    "eth0",
                    namespace=namespace,
                )
                ip_command("link", "set", "eth0", "up", namespace=namespace)
                ip_command("link", "set", "lo", "up", namespace=namespace)
                for rule in chain_setup():
                    in_namespace(namespace, "iptables", *rule)
                created.addresses[name] = address
                created.hosts.append(
                    HostSpec(
                        name=name,
                        address=address,
                        data_dir=cluster_dir / name / "data",
                        log_dir=cluster_dir / name,
                        command_prefix=("ip", "netns", "exec", namespace),
                    )
                )
        except BaseException:
            self.release(created)
            raise
        return created

    def release(self, cluster: NamespaceCluster) -> None:
        """Delete the cluster's namespaces (their rules and veths go with them)."""
        for namespace in cluster.namespaces.values():
            ip_command("netns", "del", namespace, check=False)
        for link in cluster.links:
            if link in _links():
                ip_command("link", "del", link, check=False)

    def close(self) -> None:
        """Remove the bridge and anything of this run still present."""
        delete_run_namespaces(self.tag)
        for link in _links():
            if link.startswith(f"{LINK_PREFIX}v{self.tag}") or link == self.bridge:
                ip_command("link", "del", link, check=False)
        if self.forwarding_rule:
            remove_bridge_forwarding(self.bridge)
            self.forwarding_rule = False


def chain_setup() -> Iterable[tuple[str, ...]]:
    """Our own chain in each namespace, jumped to first from INPUT and OUTPUT: faults are
    rules in it, and healing is flushing it."""
    yield ("-N", CHAIN)
    yield ("-I", "INPUT", "1", "-j", CHAIN)
    yield ("-I", "OUTPUT", "1", "-j", CHAIN)


def wait_until_gone(names: Iterable[str], timeout: float = 5.0) -> bool:
    """Link deletion is asynchronous after a namespace goes; wait for the names to vanish."""
    deadline = time.monotonic() + timeout
    remaining = set(names)
    while remaining and time.monotonic() < deadline:
        remaining &= set(_links()) | set(_namespaces())
        if remaining:
            time.sleep(0.05)
    return not remaining
