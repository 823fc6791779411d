"""Letting the run's bridge forward its own traffic whatever the host firewall does.

Traffic between two of the run's namespaces crosses the run's bridge. Where the kernel's
br_netfilter is loaded with ``net.bridge.bridge-nf-call-iptables = 1``, bridged packets also
pass the host's iptables FORWARD chain; Docker loads br_netfilter and sets that chain's policy
to DROP, so nodes could no longer reach each other. The run then adds one rule at the top of
FORWARD that accepts packets in and out of its own bridge (and nothing else), and deletes it
at teardown; a later run deletes the rules of runs whose pytest process is gone. The kernel
applies the per-bridge ``nf_call_iptables`` option only to switch filtering on, never off, so
a rule is the only change that works beside Docker without changing the machine for it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pytest_consensus.hosts.base import pid_alive
from pytest_consensus.hosts.commands import run_tool

#: The run's bridge is named this prefix and the run's tag (pid in base 36, then the worker).
BRIDGE_PREFIX = "pcb"
BRIDGE_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
#: The host's network interfaces, one entry each.
LINKS = Path("/sys/class/net")
#: The rule, as ``iptables -S FORWARD`` prints it back, for the run's bridge.
RULE_PATTERN = re.compile(
    rf"^-A FORWARD -i (?P<bridge>{BRIDGE_PREFIX}(?P<pid>[0-9a-z]{{5}})\S*) "
    rf"-o (?P=bridge) -j ACCEPT$"
)


def bridged_traffic_is_filtered(flag: Path = BRIDGE_NETFILTER) -> bool:
    """Whether bridged IPv4 packets pass the host's iptables (br_netfilter loaded and on)."""
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return False


def _rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def allow_bridge_forwarding(bridge: str) -> bool:
    """Accept the bridge's own traffic in FORWARD when bridged packets are filtered there;
    returns whether a rule was added (and must be removed)."""
    if not bridged_traffic_is_filtered():
        return False
    chain, *match = _rule(bridge)
    run_tool(["iptables", "-w", "5", "-I", chain, "1", *match])
    return True


def remove_bridge_forwarding(bridge: str) -> None:
    """Delete the bridge's rule (every copy of it; absent is fine)."""
    for _ in range(10):
        if not any(rule["bridge"] == bridge for rule in forward_rules()):
            return
        run_tool(["iptables", "-w", "5", "-D", *_rule(bridge)], check=False)


def forward_rules() -> list[re.Match[str]]:
    """The FORWARD rules of pytest-consensus runs, live or dead."""
    output = run_tool(["iptables", "-w", "5", "-S", "FORWARD"], check=False)
    return [m for m in map(RULE_PATTERN.match, output.splitlines()) if m is not None]


def sweep_stale_forward_rules() -> list[str]:
    """Delete the FORWARD rules of runs whose pytest process is gone, or whose bridge is:
    a run makes its bridge before its rule, so a rule without one is a dead run's whose pid
    another process has taken since (the rule carries no time to tell otherwise)."""
    removed = []
    for rule in forward_rules():
        if not pid_alive(int(rule["pid"], 36)) or not (LINKS / rule["bridge"]).exists():
            run_tool(["iptables", "-w", "5", "-D", *_rule(rule["bridge"])], check=False)
            removed.append(f"iptables FORWARD rule for {rule['bridge']}")
    return removed


def forwarding_diagnosis(bridge: str) -> str:
    """What the host's firewall does to bridged traffic, for an error that says why the
    run's namespaces cannot reach each other."""
    facts = []
    if bridged_traffic_is_filtered():
        facts.append(
            "br_netfilter passes bridged packets through the host's iptables "
            "(net.bridge.bridge-nf-call-iptables = 1)"
        )
    forward = run_tool(["iptables", "-w", "5", "-S", "FORWARD"], check=False).splitlines()
    policy = next((line.split()[-1] for line in forward if line.startswith("-P FORWARD")), "?")
    facts.append(f"the FORWARD chain's policy is {policy}")
    ours = any(rule["bridge"] == bridge for rule in forward_rules())
    facts.append(
        f"the run's accept rule for {bridge} is {'in place' if ours else 'missing'} in FORWARD"
    )
    chains = run_tool(["iptables", "-w", "5", "-S"], check=False).splitlines()
    if "-N DOCKER-USER" in chains:
        facts.append("Docker's chains are present (DOCKER-USER)")
    nft = run_tool(["nft", "list", "ruleset"], check=False) if shutil.which("nft") else ""
    for chain in dropping_forward_chains(nft):
        facts.append(f"nftables chain {chain} on the forward hook has policy drop")
    return "; ".join(facts)


def dropping_forward_chains(ruleset: str) -> list[str]:
    """nftables chains on the forward hook with policy drop, except iptables' own FORWARD
    (reported above): ``nft list ruleset`` output in, "family table chain" names out."""
    found, table, chain = [], "", ""
    for line in ruleset.splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table = f"{words[1]} {words[2]}"
        elif words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
        elif "hook forward" in line and "policy drop" in line:
            if (table, chain) not in (("ip filter", "FORWARD"),):
                found.append(f"{table} {chain}")
    return found
