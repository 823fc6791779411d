"""The ZooKeeper backend: its pieces on their own, a real three-server ensemble through the
adapter, and the suite's verdicts on it (docs/adapters/zookeeper.md says why each)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.exceptions import BadVersionError, ConnectionLoss, NoNodeError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import int_struct, multiheader_struct, stat_struct

from pytest_consensus.adapters import zookeeper
from pytest_consensus.adapters.zookeeper import (
    ZooKeeperAdapter,
    ZooKeeperNotFound,
    find_classpath,
    server_config,
)
from pytest_consensus.adapters.zookeeper.client import (
    ENCODED_PREFIX,
    SCAN_WINDOW,
    map_kazoo_error,
    workload_key,
    znode_name,
)
from pytest_consensus.adapters.zookeeper.multi_read import MultiRead
from pytest_consensus.clients.cluster_ops import wait_for_leader, wait_for_same_applied_index
from pytest_consensus.contract import Cluster, HostSpec, Role
from pytest_consensus.contract.errors import (
    ConnectionLost,
    HarnessError,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
)
from pytest_consensus.hosts.base import LoopbackHosts

from client_checks import (
    check_a_client_stays_bound_to_its_server,
    check_a_request_id_applies_a_write_once,
    check_operations_at_both_read_levels,
    check_scan_reads_every_key_under_the_prefix,
)
from conftest import node_processes_of, what_failed

pytestmark = pytest.mark.skipif(
    not (zookeeper.DEBIAN_JAVA_DIR / "zookeeper.jar").is_file(),
    reason="ZooKeeper is not installed (apt-get install zookeeperd); .ci/run installs it",
)


def test_keys_zookeeper_accepts_are_kept_and_others_encoded_without_collisions() -> None:
    assert znode_name("r1") == "r1"
    assert znode_name("w0-12") == "w0-12"
    odd = ["key with spaces", "a/b", ".", "..", ".lead", "ü", "*", ENCODED_PREFIX + "x", ""]
    encoded = [znode_name(key) for key in odd]
    assert all(name.startswith(ENCODED_PREFIX) for name in encoded)
    assert len(set(encoded)) == len(odd)
    assert all("/" not in name for name in encoded)
    assert [workload_key(name) for name in encoded] == odd
    assert workload_key("w0-12") == "w0-12"


@pytest.mark.parametrize(
    ("error", "sent", "expected", "definite"),
    [
        (ConnectionLoss(), False, Unavailable, True),
        (ConnectionLoss(), True, ConnectionLost, False),
        (SessionExpiredError(), True, ConnectionLost, False),
        (KazooTimeoutError(), True, Timeout, False),
        (BadVersionError(), True, Rejected, True),
        (NoNodeError(), True, Rejected, True),
        (RuntimeError("odd"), True, UnknownError, False),
    ],
)
def test_kazoo_failures_map_to_definite_or_indefinite(
    error: BaseException, sent: bool, expected: type, definite: bool
) -> None:
    mapped = map_kazoo_error(error, "n1", sent=sent)
    assert type(mapped) is expected
    assert mapped.definite is definite
    assert str(mapped).startswith("n1: ")


def test_the_server_config_lists_every_server_and_keeps_time_short(tmp_path: Path) -> None:
    hosts = [
        HostSpec(f"n{i}", f"127.0.0.{i}", tmp_path / f"n{i}", tmp_path / f"log{i}")
        for i in (1, 2, 3)
    ]
    config = server_config(hosts[1], hosts)
    assert "clientPortAddress=127.0.0.2" in config
    assert "admin.serverAddress=127.0.0.2" in config
    assert f"dataDir={tmp_path / 'n2'}" in config
    assert "server.1=127.0.0.1:2888:3888" in config
    assert "server.3=127.0.0.3:2888:3888" in config
    assert "tickTime=100" in config
    assert "forceSync=yes" in config


def test_an_unknown_strong_read_is_a_usage_error() -> None:
    with pytest.raises(HarnessError, match=r"strong_read='fast': use one of verified, sync"):
        ZooKeeperAdapter({"strong_read": "fast"})


def test_missing_jars_or_java_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zookeeper, "DEBIAN_JAVA_DIR", tmp_path)
    with pytest.raises(ZooKeeperNotFound, match=r"zookeeper.jar.*apt-get install zookeeperd"):
        find_classpath(None)
    assert find_classpath("/opt/zk/lib/*") == ("/opt/zk/lib/*", "adapter option classpath")
    with pytest.raises(ZooKeeperNotFound, match=r"java=/nowhere/java: does not exist"):
        ZooKeeperAdapter({"java": "/nowhere/java"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    adapter = ZooKeeperAdapter()
    hosts = LoopbackHosts(tmp_path_factory.mktemp("zookeeper"))
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as running:
        wait_for_leader(running)
        yield running
    assert node_processes_of(os.getpid()) == []


def test_every_server_reports_the_leader_by_node_name_and_one_epoch(cluster: Cluster) -> None:
    leader, status = wait_for_leader(cluster)
    statuses = [node.quick_status(5.0) for node in cluster.nodes]
    assert [s.leader for s in statuses] == [leader.name] * 3
    assert {s.term for s in statuses} == {status.term}
    assert [s.role for s in statuses].count(Role.LEADER) == 1
    assert all(s.applied_index is not None and s.applied_index >> 32 == s.term for s in statuses)


def test_a_multi_read_asks_for_each_path_and_reads_each_answer_in_order() -> None:
    """The request is ZooKeeper's multiRead of getData (no watch) records; the answer gives
    data, None for a znode without data, and kazoo's exception for a path's error."""
    request = MultiRead(["/a", "/bc"])
    assert request.type == 22
    header = multiheader_struct.pack
    assert bytes(request.serialize()) == (
        header(4, False, -1)
        + int_struct.pack(2)
        + b"/a"
        + b"\x00"
        + header(4, False, -1)
        + int_struct.pack(3)
        + b"/bc"
        + b"\x00"
        + header(-1, True, -1)
    )
    stat = bytes(stat_struct.size)
    answer = (
        header(4, False, 0)
        + int_struct.pack(5)
        + b"hello"
        + stat
        + header(-1, False, -101)
        + int_struct.pack(-101)
        + header(4, False, 0)
        + int_struct.pack(-1)
        + stat
        + header(-1, True, -1)
    )
    first, missing, empty = MultiRead.deserialize(b"xx" + answer, 2)
    assert first == b"hello" and empty is None
    assert isinstance(missing, NoNodeError)


def test_operations_at_both_read_levels(cluster: Cluster) -> None:
    check_operations_at_both_read_levels(cluster)


def test_a_scan_reads_every_key_under_the_prefix_from_the_members_own_copy(
    cluster: Cluster,
) -> None:
    check_scan_reads_every_key_under_the_prefix(cluster, "s", SCAN_WINDOW + 200)


def test_a_request_id_applies_a_write_once(cluster: Cluster) -> None:
    """The id's marker is created in the write's own transaction: a retried write, even
    through another server, finds it and is acknowledged without being applied again; a
    retried delete too."""
    check_a_request_id_applies_a_write_once(cluster, prefix="rid-")
    one, two = (cluster.client(node) for node in cluster.nodes[:2])
    one.delete("rid-p", timeout=5.0, request_id="r-5")
    one.put("rid-p", "3", timeout=5.0)
    two.delete("rid-p", timeout=5.0, request_id="r-5")
    assert one.get("rid-p", timeout=5.0) == "3"


def test_digests_agree_at_one_index_and_tree_digests_at_one_zxid(cluster: Cluster) -> None:
    client = cluster.client(cluster.nodes[0])
    for number in range(300):
        client.put(f"d-{number}", str(number), timeout=5.0)
    convergence = wait_for_same_applied_index(cluster, timeout=30.0)
    assert convergence.digests_agree, convergence.describe()
    assert all("keys)" in (s.digest or "") for s in convergence.statuses)
    points = {node.name: node.digest_point(5.0) for node in cluster.nodes}
    lowest = min(points.values())
    digests = {node.digest_at(lowest, 5.0).digest for node in cluster.nodes}
    assert len(digests) == 1, (points, digests)
    with pytest.raises(Unavailable, match="no tree digest recorded at zxid"):
        cluster.nodes[0].digest_at(lowest + 1, 5.0)


def test_a_client_stays_bound_to_its_server(cluster: Cluster) -> None:
    check_a_client_stays_bound_to_its_server(cluster, "bound", lambda: wait_for_leader(cluster))


def test_sync_then_read_is_offered_as_an_option(tmp_path: Path) -> None:
    adapter = ZooKeeperAdapter({"strong_read": "sync"})
    assert adapter.version().endswith(", strong reads by sync + read)")
    hosts = LoopbackHosts(tmp_path)
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as running:
        wait_for_leader(running)
        client = running.client(running.nodes[2])
        assert client.get("absent", timeout=5.0) is None
        client.put("k", "v", timeout=5.0)
        assert client.get("k", timeout=5.0) == "v"
    assert node_processes_of(os.getpid()) == []


def _verdicts(output: str) -> dict[str, str]:
    found = {}
    for rule in (
        "consensus-safety",
        "fsm-determinism",
        "leader-gating",
        "read-levels",
        "partition-retries",
    ):
        match = re.search(rf"^{rule} +(.*)$", output, re.MULTILINE)
        assert match is not None, (rule, output[-3000:])
        found[rule] = match.group(1)
    return found


def test_the_suite_certifies_zookeeper(
    pytester: pytest.Pytester, needs_network_faults: None, needs_lossy_disks: None
) -> None:
    """What CI certifies for real, with the default (verified) strong reads: every rule
    passes but consensus-safety, which fails on docs/adapters/zookeeper.md's power-loss
    finding alone (new transaction logs whose names were never synced). The crash loop, with
    the two rarer findings it makes on ZooKeeper (a member killed while it loads a snapshot
    never starts again; members' tree digests differ at one zxid), the schedule search and
    the retry schedules (ZooKeeper's slowest tests) are left to the benchmarks' default runs
    to keep CI under its time budget; they run here on PySyncObj and etcd (partition-retries
    keeps its lost-reply test here)."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=zookeeper",
        "--consensus-profile=quick",
        "-k",
        "not crash_loop and not searched and not fault_schedule",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, what_failed(output)
    verdicts = _verdicts(output)
    assert verdicts.pop("consensus-safety").startswith("FAIL"), output[-3000:]
    for rule, verdict in verdicts.items():
        assert verdict.startswith("pass"), (rule, what_failed(output))
    failed = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    power_cuts = [test for test in failed if "power_cut[zookeeper-" in test]
    assert power_cuts and len(failed) == len(power_cuts), what_failed(output)
    result.stdout.fnmatch_lines(
        [
            "consensus: adapters=zookeeper (ZooKeeper 3.*),*",
            "*acknowledged writes lost after a power cut*disk lost at the cut * unsynced "
            "name(s)*/version-2/log.* (created or renamed)*",
        ]
    )


def test_sync_then_read_lets_a_resumed_old_leader_serve_overwritten_values(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """docs/adapters/zookeeper.md's read finding, pinned: with ZooKeeper's own strong read
    (``sync`` + read), a leader paused while the others elected a new one and overwrote a key
    answers the overwritten value after it resumes, cut off or not."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=zookeeper",
        "--consensus-adapter-option=strong_read=sync",
        "-k",
        "paused_leader",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert _verdicts(output)["read-levels"].startswith("FAIL"), output[-3000:]
    result.stdout.fnmatch_lines(
        [
            "*was paused while * led and overwrote * answered * of * strong reads with "
            "'before-pause-*"
        ]
    )
