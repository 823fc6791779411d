"""Real PySyncObj clusters: lifecycle, error mapping, and nothing left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter, node_ports
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.contract import Cluster, ReadLevel, Role
from pytest_consensus.contract.errors import NodeStartError, Timeout, Unavailable
from pytest_consensus.contract.waiting import wait_for
from pytest_consensus.hosts.base import (
    RUN_PREFIX,
    LoopbackHosts,
    RunDirectory,
    port_free,
    sweep_stale_run_dirs,
)
from pytest_consensus.hosts.netns import base36

from conftest import node_processes_of, start_inner_run


@pytest.fixture
def hosts(tmp_path: Path) -> LoopbackHosts:
    return LoopbackHosts(tmp_path)


@pytest.fixture
def cluster(hosts: LoopbackHosts) -> Iterator[Cluster]:
    adapter = PySyncObjAdapter()
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as running:
        wait_for_leader(running)
        yield running


def test_a_node_that_cannot_start_raises_with_its_log(hosts: LoopbackHosts) -> None:
    adapter = PySyncObjAdapter()
    specs = hosts.allocate(3, adapter.ports)
    blocker = socket.socket()
    blocker.bind((specs[0].address, node_ports(0)[1]))
    blocker.listen()
    try:
        with pytest.raises(
            NodeStartError, match=r"(?s)node n1 failed to start.*Address already in use"
        ):
            adapter.start_cluster(specs)
    finally:
        blocker.close()
    assert node_processes_of(os.getpid()) == []


def test_closing_a_cluster_leaves_no_process_and_frees_its_ports(hosts: LoopbackHosts) -> None:
    adapter = PySyncObjAdapter()
    specs = hosts.allocate(3, adapter.ports)
    cluster = adapter.start_cluster(specs)
    assert len(node_processes_of(os.getpid())) == 3
    cluster.close()
    assert node_processes_of(os.getpid()) == []
    assert all(port_free(spec.address, port) for spec in specs for port in adapter.ports)


def test_a_killed_node_refuses_connections_as_a_definite_failure(cluster: Cluster) -> None:
    victim = cluster.nodes[2]
    client = cluster.client(victim)
    victim.kill()
    with pytest.raises(Unavailable):
        client.put("k", "v", timeout=2)


def test_a_paused_node_times_out_as_an_indefinite_failure(cluster: Cluster) -> None:
    victim = cluster.nodes[1]
    client = cluster.client(victim)
    victim.pause()
    try:
        with pytest.raises(Timeout):
            client.get("k", level=ReadLevel.STALE, timeout=0.5)
    finally:
        victim.resume()
    assert client.get("k", level=ReadLevel.STALE, timeout=5) is None


def test_a_leader_left_without_a_majority_steps_down_and_refuses_definitely(
    cluster: Cluster,
) -> None:
    leader, _ = wait_for_leader(cluster)
    for node in cluster.nodes:
        if node is not leader:
            node.kill()
    wait_for(
        lambda: leader.status(2).role is not Role.LEADER,
        timeout=30,
        what="the lone leader to step down (leaderFallbackTimeout)",
    )
    with pytest.raises(Unavailable, match="no leader"):
        cluster.client(leader).put("k", "v", timeout=5)


def test_a_follower_left_alone_acknowledges_no_write(cluster: Cluster) -> None:
    """PySyncObj starts no election while connected to nobody, so the lone follower keeps
    forwarding to its dead leader: the outcome is unknown (timeout), never an ack."""
    leader, _ = wait_for_leader(cluster)
    survivor = next(node for node in cluster.nodes if node is not leader)
    for node in cluster.nodes:
        if node is not survivor:
            node.kill()
    with pytest.raises((Timeout, Unavailable)):
        cluster.client(survivor).put("k", "v", timeout=2)


def test_restart_keeps_data_and_rejoins(cluster: Cluster) -> None:
    client = cluster.client(cluster.nodes[0])
    client.put("durable", "yes", timeout=5)
    for node in cluster.nodes:
        node.kill()
    for node in cluster.nodes:
        node.start()
    wait_for_leader(cluster)
    assert client.get("durable", timeout=10) == "yes"


SLOW_TEST = """
import time
from pathlib import Path

def test_waits(consensus_cluster):
    Path("{marker}").write_text("started")
    time.sleep(60)
"""


def start_pytest_with_a_cluster(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    process = start_inner_run(pytester, SLOW_TEST, "the inner run's cluster to start")
    assert len(node_processes_of(process.pid)) == 3
    return process


def run_dirs_of(pid: int) -> list[Path]:
    return list(Path("/tmp").glob(f"{RUN_PREFIX}{pid}-*"))


def test_ctrl_c_tears_everything_down(pytester: pytest.Pytester) -> None:
    process = start_pytest_with_a_cluster(pytester)
    assert run_dirs_of(process.pid)
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == pytest.ExitCode.INTERRUPTED
    assert node_processes_of(process.pid) == []
    assert run_dirs_of(process.pid) == []


def test_a_killed_run_leaves_no_nodes_and_the_next_run_sweeps_its_dir(
    pytester: pytest.Pytester,
) -> None:
    process = start_pytest_with_a_cluster(pytester)
    process.kill()
    process.wait(10)
    wait_for(
        lambda: not node_processes_of(process.pid),
        timeout=10,
        what="orphaned nodes to notice their harness died and exit",
    )
    assert run_dirs_of(process.pid), "a SIGKILLed run cannot clean up; its dir is still there"
    next_run = pytester.runpytest_subprocess("--consensus-adapter=pysyncobj", "--co", "-q")
    assert next_run.ret == pytest.ExitCode.OK
    assert run_dirs_of(process.pid) == []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"pcons-{base36(process.pid)}" not in listing  # its namespaces, if it had any


def test_sweeping_spares_live_runs(tmp_path: Path) -> None:
    mine = RunDirectory.create(base=tmp_path)
    dead = tmp_path / f"{RUN_PREFIX}999999999-main-x"
    dead.mkdir()
    assert sweep_stale_run_dirs(tmp_path) == [dead]
    assert mine.path.exists()


def test_nodes_import_the_harness_package_even_from_a_shadowing_checkout(
    hosts: LoopbackHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory holding another `pytest_consensus` (a source checkout beside a
    regular install), nodes still import the package the harness imported."""
    shadow = tmp_path / "checkout"
    (shadow / "pytest_consensus").mkdir(parents=True)
    (shadow / "pytest_consensus" / "__init__.py").write_text("raise ImportError('shadow')\n")
    monkeypatch.chdir(shadow)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    adapter = PySyncObjAdapter()
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as cluster:
        wait_for_leader(cluster)
