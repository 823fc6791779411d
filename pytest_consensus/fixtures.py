"""Fixtures for conformance tests: the adapter, a running cluster, recorded clients, history.

Registered by the plugin. Clusters are per test, so a test's crashes and restarts never
leak into the next; everything a cluster creates lives in the run directory, removed at
the end of the session (and swept by the next run if this one is killed).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_consensus.cluster_ops import wait_for_leader
from pytest_consensus.contract import Adapter, Capability, Cluster
from pytest_consensus.errors import HarnessError
from pytest_consensus.history import History, RecordingClient
from pytest_consensus.hosts import LoopbackHosts, RunDirectory
from pytest_consensus.plugin import adapters_key, history_path_key, settings_key
from pytest_consensus.settings import Settings


@pytest.fixture(scope="session")
def consensus_settings(pytestconfig: pytest.Config) -> Settings:
    """The run's effective settings (adapters, nodes, seed, timeouts)."""
    return pytestconfig.stash[settings_key]


@pytest.fixture(scope="session")
def consensus_run_dir() -> Iterator[Path]:
    """The run's own temporary directory, named with the pid so a later run can sweep it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    run_dir = RunDirectory.create(worker)
    try:
        yield run_dir.path
    finally:
        run_dir.remove()


@pytest.fixture(scope="session")
def consensus_hosts(consensus_run_dir: Path) -> LoopbackHosts:
    """Hands out distinct addresses and data directories for each cluster."""
    return LoopbackHosts(consensus_run_dir)


@pytest.fixture(scope="session")
def consensus_adapter(request: pytest.FixtureRequest) -> Adapter:
    """The adapter under test; the plugin parametrizes it over every --consensus-adapter."""
    name = getattr(request, "param", None)
    if name is None:
        pytest.skip("no consensus adapter selected: pass --consensus-adapter=NAME")
    adapter: Adapter = request.config.stash[adapters_key][name]
    return adapter


@pytest.fixture
def consensus_rng(request: pytest.FixtureRequest, consensus_settings: Settings) -> random.Random:
    """A generator seeded from the run's seed and the test id: reruns with the seed replay."""
    return random.Random(consensus_settings.seed_for(request.node.nodeid))


@pytest.fixture
def consensus_history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[History]:
    """The test's history, written as history.jsonl into the test's tmp_path at teardown."""
    history = History()
    path = tmp_path / "history.jsonl"
    request.node.stash[history_path_key] = path
    try:
        yield history
    finally:
        history.write_jsonl(path)


@pytest.fixture
def consensus_cluster(
    consensus_adapter: Adapter,
    consensus_settings: Settings,
    consensus_hosts: LoopbackHosts,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """A fresh running cluster with a leader (where the store exposes one), torn down after."""
    ports = getattr(consensus_adapter, "ports", ())
    hosts = consensus_hosts.allocate(consensus_settings.nodes, ports)
    try:
        cluster = consensus_adapter.start_cluster(hosts)
    except HarnessError:
        raise
    except Exception as error:
        raise HarnessError(
            f"adapter {consensus_adapter.name} failed to start a cluster: "
            f"{type(error).__name__}: {error}"
        ) from error
    try:
        if consensus_adapter.has(Capability.LEADER):
            wait_for_leader(cluster, timeout=consensus_settings.leader_timeout)
        yield cluster
    finally:
        cluster.close()
        for host in hosts:
            if host.log_dir.exists():
                shutil.copytree(
                    host.log_dir,
                    tmp_path / "logs" / host.name,
                    ignore=shutil.ignore_patterns("data"),
                    dirs_exist_ok=True,
                )


@pytest.fixture
def consensus_clients(
    consensus_cluster: Cluster, consensus_history: History
) -> Iterator[list[RecordingClient]]:
    """One recorded client per node, in node order; every call lands in the history."""
    clients = [
        RecordingClient(consensus_cluster.client(node), consensus_history)
        for node in consensus_cluster.nodes
    ]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()
