"""The Docker host: naming, addresses and member commands (no engine needed), and a clear
skip where no engine answers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pytest_consensus.adapters.etcd import EtcdAdapter
from pytest_consensus.hosts.docker import (
    container_hosts,
    container_name,
    docker_unavailable,
    network_name,
    stale_run_labels,
    subnet_for,
)
from pytest_consensus.hosts.netns import base36

pytestmark = pytest.mark.usefixtures("tests_on_path")


def test_names_carry_the_run_tag_and_addresses_are_fixed(tmp_path: Path) -> None:
    subnet = ipaddress.IPv4Network("198.19.7.0/24")
    hosts = container_hosts("00jtm", 2, 3, subnet, tmp_path)
    assert [h.container for h in hosts] == [
        "pcons-00jtm-c2-n1",
        "pcons-00jtm-c2-n2",
        "pcons-00jtm-c2-n3",
    ]
    assert [h.address for h in hosts] == ["198.19.7.10", "198.19.7.11", "198.19.7.12"]
    assert {h.container_network for h in hosts} == {network_name("00jtm")} == {"pcons-00jtm"}
    assert container_name("x", 1, "n1") == "pcons-x-c1-n1"
    assert subnet_for(1).subnet_of(ipaddress.IPv4Network("198.19.0.0/16"))


def test_member_command_in_a_container_runs_the_images_etcd_with_the_same_flags(
    tmp_path: Path,
) -> None:
    adapter = EtcdAdapter({"docker_image": "quay.io/coreos/etcd:v3.5.17"})
    assert adapter.version().startswith("etcd 3.5.17 (/usr/local/bin/etcd, from image")
    hosts = container_hosts("00jtm", 1, 3, ipaddress.IPv4Network("198.19.7.0/24"), tmp_path)
    command = adapter.member_command(hosts[0], hosts, "token")
    assert command[0] == "/usr/local/bin/etcd"
    assert "--listen-client-urls=http://198.19.7.10:2379" in command
    assert "--data-dir=/var/lib/etcd-data" in command and "--pre-vote" in command
    assert (
        "--initial-cluster=n1=http://198.19.7.10:2380,n2=http://198.19.7.11:2380,"
        "n3=http://198.19.7.12:2380"
    ) in command


def test_only_dead_runs_are_swept() -> None:
    import os

    alive = base36(os.getpid()) + "m"
    dead = base36(36**5 - 1) + "m"  # above any Linux pid_max: never a live process
    assert stale_run_labels([alive, dead, "junk!"]) == [dead]


def test_without_an_engine_the_docker_host_is_na_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    reason = docker_unavailable()
    if reason is None:
        pytest.skip("a Docker engine answers here; the no-engine path is not reachable")
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.consensus_rule("leader-gating")
        def test_needs_a_cluster(consensus_cluster):
            raise AssertionError("must not run")
    """
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        "--consensus-host=docker",
        "--consensus-adapter-option=docker_image=quay.io/coreos/etcd:v3.5.17",
        "-rs",
        "test_x.py",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*n/a: the docker host is unavailable: no Docker engine*"])


def test_with_an_engine_etcd_is_certified_in_containers(pytester: pytest.Pytester) -> None:
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        "--consensus-host=docker",
        "-k",
        "not searched",
    )
    assert result.ret == pytest.ExitCode.OK
