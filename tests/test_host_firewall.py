"""The namespace host beside a host firewall that drops bridged traffic (Docker's FORWARD
policy with br_netfilter): the run's bridge still carries its traffic, and where the run
cannot make it, the run stops with a usage error that names the cause, never a verdict.

Each end-to-end test runs pytest inside a network namespace of its own (``unshare --net``),
whose firewall it sets up as Docker would, so the machine's own firewall is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pytest_consensus.hosts.forwarding import (
    BRIDGE_NETFILTER,
    dropping_forward_chains,
    forward_rules,
    sweep_stale_forward_rules,
)
from pytest_consensus.hosts.netns import base36

pytestmark = pytest.mark.usefixtures("needs_network_faults")

SUITE = """
import pytest
from pytest_consensus.nemesis.faults import Fault

@pytest.mark.consensus_rule("leader-gating")
@pytest.mark.consensus_requires("network")
def test_writes_cross_the_bridge_through_a_partition(
    consensus_cluster, consensus_nemesis, consensus_clients
):
    applied = consensus_nemesis.apply(Fault("isolate-leader", 0, 0))
    consensus_nemesis.heal(applied)
    consensus_clients[0].put("after", "heal", timeout=10)
"""

#: After pytest, what a user would look for: the run's rules, namespaces and links.
LEFTOVERS = (
    'echo "pytest exit status: $status"; echo "--- leftovers"; '
    "iptables -S FORWARD | grep -- '-i pcb' || true; ip netns list; "
    "ip -o link show | grep -o ' pc[bv][^:@]*' || true"
)


def run_in_own_network(pytester: pytest.Pytester, firewall: str) -> str:
    """pytest on SUITE in a fresh network and mount namespace whose firewall ``firewall``
    (shell commands) set up; returns everything printed, leftovers last."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    pytester.makepyfile(test_net=SUITE)
    script = (
        "mount -t tmpfs tmpfs /run && "
        f"{firewall} && "
        f"{sys.executable} -m pytest --consensus-adapter=pysyncobj -p no:cacheprovider "
        f"-rs test_net.py; status=$?; {LEFTOVERS}"
    )
    done = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", script],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout + done.stderr


def bridged_traffic_can_be_filtered() -> None:
    """br_netfilter is what makes bridged packets meet iptables; without it there is
    nothing to get around (and Docker loads it)."""
    if not BRIDGE_NETFILTER.exists():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    if not BRIDGE_NETFILTER.exists():
        pytest.skip("br_netfilter is not loaded and cannot be: bridged traffic skips iptables")


def test_beside_dockers_forward_drop_the_runs_bridge_carries_its_traffic(
    pytester: pytest.Pytester,
) -> None:
    bridged_traffic_can_be_filtered()
    printed = run_in_own_network(
        pytester,
        "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables && iptables -P FORWARD DROP",
    )
    assert "pytest exit status: 0" in printed, printed[-4000:]
    assert "1 passed" in printed
    assert printed.split("--- leftovers", 1)[1].strip() == "", printed[-2000:]


def test_a_firewall_the_run_cannot_open_stops_it_with_a_usage_error_naming_the_cause(
    pytester: pytest.Pytester,
) -> None:
    if shutil.which("nft") is None:
        pytest.skip("needs nft (nftables) to build a firewall iptables rules cannot open")
    printed = run_in_own_network(
        pytester,
        "nft add table inet strict && nft add chain inet strict forward "
        "'{ type filter hook forward priority -10; policy drop; }'",
    )
    assert "pytest exit status: 4" in printed, printed[-4000:]
    assert "cannot reach each other across its bridge pcb" in printed
    assert "nftables chain inet strict forward on the forward hook has policy drop" in printed
    assert "--consensus-host=loopback" in printed
    assert "FAIL" not in printed and "passed" not in printed
    assert printed.split("--- leftovers", 1)[1].strip() == "", printed[-2000:]


def test_rules_of_dead_runs_are_swept_and_a_live_runs_are_kept() -> None:
    """A rule is a dead run's when its pid is gone, or when its bridge is (its pid then
    belongs to another process); the rule of a live run with its bridge stays."""
    dead = f"pcb{base36(36**5 - 1)}m"  # above any Linux pid_max: never a live process
    live = f"pcb{base36(os.getpid())}m"
    reused = f"pcb{base36(os.getpid())}r"  # a live pid, but no such bridge
    subprocess.run(["ip", "link", "add", live, "type", "bridge"], check=True)
    try:
        for bridge in (dead, live, reused):
            subprocess.run(
                ["iptables", "-I", "FORWARD", "1", "-i", bridge, "-o", bridge, "-j", "ACCEPT"],
                check=True,
            )
        removed = sweep_stale_forward_rules()  # other runs' rules may be swept too
        assert f"iptables FORWARD rule for {dead}" in removed, removed
        assert f"iptables FORWARD rule for {reused}" in removed, removed
        ours = [rule["bridge"] for rule in forward_rules() if rule["bridge"][3:8] == live[3:8]]
        assert ours == [live]
    finally:
        for bridge in (dead, live, reused):
            subprocess.run(
                ["iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"],
                capture_output=True,
            )
        subprocess.run(["ip", "link", "del", live], capture_output=True)


#: ``nft list ruleset`` beside Docker (abridged), plus a table of the user's that drops.
RULESET = """
table ip filter {
\tchain FORWARD {
\t\ttype filter hook forward priority filter; policy drop;
\t\tcounter packets 0 bytes 0 jump DOCKER-USER
\t}
\tchain DOCKER-USER {
\t\tcounter packets 0 bytes 0 return
\t}
}
table inet strict {
\tchain forward {
\t\ttype filter hook forward priority -10; policy drop;
\t}
\tchain input {
\t\ttype filter hook input priority 0; policy drop;
\t}
}
table inet open {
\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t}
}
"""


def test_only_other_tables_forward_chains_that_drop_are_named() -> None:
    assert dropping_forward_chains(RULESET) == ["inet strict forward"]
