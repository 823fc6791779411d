"""Fixtures for conformance tests: the adapter, a running cluster, recorded clients, history.

Registered by the plugin. Clusters are per test, so a test's crashes and restarts never
leak into the next; everything a cluster creates lives in the run directory, removed at
the end of the session (and swept by the next run if this one is killed).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.contract import Adapter, Capability, Cluster
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.base import RunDirectory
from pytest_consensus.hosts.disks import LossyDisks, require_lossy_disks
from pytest_consensus.hosts.providers import HostProvider, make_provider
from pytest_consensus.nemesis.faults import (
    ALL_FAULTS,
    POWER_FAULTS,
    Nemesis,
    Schedule,
    generate_schedule,
)
from pytest_consensus.plugin.hooks import required_names
from pytest_consensus.plugin.keys import (
    adapters_key,
    history_path_key,
    schedule_path_key,
    settings_key,
)
from pytest_consensus.plugin.settings import Settings
from pytest_consensus.report.evidence import copy_node_logs
from pytest_consensus.report.records import HISTORY_PROPERTY, SCHEDULE_PROPERTY


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
def consensus_hosts(
    consensus_run_dir: Path, consensus_settings: Settings
) -> Iterator[HostProvider]:
    """Hands out hosts for each cluster: namespaces (with a firewall) or loopback addresses;
    the run's bridge and anything left of it is removed at the end of the session."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    try:
        inventory = consensus_settings.ssh_inventory
        provider = make_provider(
            consensus_settings.host,
            consensus_run_dir,
            worker,
            None if inventory is None else Path(inventory),
        )
    except CapabilityMissing as missing:
        pytest.skip(f"n/a: the {consensus_settings.host} host is unavailable: {missing}")
    except HarnessError as error:
        # No cluster of any test can run without hosts: one usage error, not a verdict per test.
        pytest.exit(
            f"consensus: the {consensus_settings.host} host could not be set up: {error}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
def consensus_allocation(
    request: pytest.FixtureRequest,
    consensus_adapter: Adapter,
    consensus_settings: Settings,
    consensus_hosts: HostProvider,
) -> Iterator[Allocation]:
    """The hosts of this test's cluster; released (namespaces deleted) after the test. A
    test that requires ``links`` gets link proxies on them, in place before its nodes."""
    ports = consensus_adapter.ports
    allocation = consensus_hosts.allocate(consensus_settings.nodes, ports)
    try:
        if "links" in required_names(request.node):
            allocation.start_link_proxies()
        yield allocation
    finally:
        allocation.close_link_proxies()
        allocation.release()


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
    request.node.user_properties.append((HISTORY_PROPERTY, str(path)))
    try:
        yield history
    finally:
        history.write_jsonl(path)


@pytest.fixture
def consensus_cluster(
    consensus_adapter: Adapter,
    consensus_settings: Settings,
    consensus_allocation: Allocation,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """A fresh running cluster with a leader (where the store exposes one), torn down after."""
    hosts = consensus_allocation.hosts
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
        copy_node_logs(hosts, tmp_path / "logs")


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


@pytest.fixture
def consensus_nemesis(
    consensus_cluster: Cluster,
    consensus_history: History,
    consensus_allocation: Allocation,
    consensus_settings: Settings,
) -> Iterator[Nemesis]:
    """Applies fault schedules to the test's cluster; stopped (and healed) after the test."""
    nemesis = Nemesis(
        consensus_cluster,
        consensus_history,
        consensus_allocation.firewall,
        leader_timeout=consensus_settings.leader_timeout,
        links=consensus_allocation.links,
    )
    try:
        yield nemesis
    finally:
        nemesis.stop()


#: The kinds a schedule is drawn from by default: power cuts need lossy disks, which a
#: test asks for explicitly.
DRAWN_FAULTS = tuple(kind for kind in ALL_FAULTS if kind not in POWER_FAULTS)


class ScheduleFactory:
    """Makes the test's fault schedule: generated from the test's seed, or the one passed
    with --consensus-replay. The schedule as applied is written next to the history."""

    def __init__(self, settings: Settings, seed: int, nodes: list[str]) -> None:
        self.settings = settings
        self.seed = seed
        self.nodes = nodes

    def __call__(
        self,
        kinds: tuple[str, ...] = DRAWN_FAULTS,
        faults: int | None = None,
        **options: object,
    ) -> Schedule:
        """A schedule of ``faults`` faults (default: the profile's) drawn from ``kinds``."""
        if self.settings.replay is not None:
            schedule = Schedule.read(Path(self.settings.replay))
            if schedule.nodes != self.nodes:
                raise HarnessError(
                    f"schedule {self.settings.replay} is for nodes {schedule.nodes}, this "
                    f"cluster has {self.nodes}; pass --consensus-nodes={len(schedule.nodes)}"
                )
            return schedule
        profile = self.settings.profile
        options.setdefault("fault_duration", profile.fault_seconds)
        options.setdefault("gap", profile.gap_seconds)
        count = profile.faults if faults is None else faults
        return generate_schedule(self.seed, self.nodes, kinds, faults=count, **options)  # type: ignore[arg-type]


@pytest.fixture
def consensus_round(request: pytest.FixtureRequest) -> int:
    """Which round of a fault-schedule test this is (the thorough profile runs several, each
    with its own schedule: the round is part of the test id, and so of its seed)."""
    return int(getattr(request, "param", 0))


@pytest.fixture
def consensus_schedule(
    request: pytest.FixtureRequest,
    consensus_round: int,
    consensus_settings: Settings,
    consensus_cluster: Cluster,
    consensus_nemesis: Nemesis,
    tmp_path: Path,
) -> Iterator[ScheduleFactory]:
    """A factory of fault schedules; the applied schedule is saved as schedule.json."""
    nodes = [node.name for node in consensus_cluster.nodes]
    seed = consensus_settings.seed_for(request.node.nodeid + "/schedule")
    factory = ScheduleFactory(consensus_settings, seed, nodes)
    path = tmp_path / "schedule.json"
    request.node.stash[schedule_path_key] = path
    request.node.user_properties.append((SCHEDULE_PROPERTY, str(path)))
    try:
        yield factory
    finally:
        Schedule(seed, nodes, list(consensus_nemesis.applied)).write(path)


class ClusterFactory:
    """Starts fresh clusters on demand (for searches that need one per example); each is
    torn down, and its hosts released, when its ``with`` block ends."""

    def __init__(self, adapter: Adapter, settings: Settings, hosts: HostProvider) -> None:
        self.adapter = adapter
        self.settings = settings
        self.hosts = hosts

    @contextmanager
    def __call__(
        self, *, lossy_disks: bool = False, link_proxies: bool = False
    ) -> Iterator[tuple[Cluster, Allocation]]:
        """A cluster; with ``lossy_disks``, every node's data directory is a lossy filesystem
        (``allocation.disks``) that a power cut can make forget what was not synced; with
        ``link_proxies``, its links pass through proxies (``allocation.links``)."""
        if lossy_disks and self.settings.host != "ssh":
            require_lossy_disks()  # before any cluster: this machine's
        allocation = self.hosts.allocate(self.settings.nodes, self.adapter.ports)
        try:
            if lossy_disks:
                require_lossy_disks(allocation.hosts)  # the SSH host's machines
            if link_proxies:
                allocation.start_link_proxies()
            if lossy_disks:
                if any(host.container for host in allocation.hosts):
                    raise CapabilityMissing(
                        "power-loss faults need nodes that are local processes; the docker "
                        "host runs them in containers"
                    )
                allocation.disks = LossyDisks(allocation.hosts).mount()
            with self.adapter.start_cluster(allocation.hosts) as cluster:
                if self.adapter.has(Capability.LEADER):
                    wait_for_leader(cluster, timeout=self.settings.leader_timeout)
                if allocation.disks is not None:
                    allocation.disks.checkpoint()
                yield cluster, allocation
        finally:
            if allocation.disks is not None:
                allocation.disks.close()
            allocation.close_link_proxies()
            allocation.release()


@pytest.fixture
def consensus_cluster_factory(
    consensus_adapter: Adapter, consensus_settings: Settings, consensus_hosts: HostProvider
) -> ClusterFactory:
    """Fresh clusters on demand: ``with consensus_cluster_factory() as (cluster, hosts):``."""
    return ClusterFactory(consensus_adapter, consensus_settings, consensus_hosts)
