"""The SSH host (``--consensus-host=ssh``), for real: machines are network namespaces with an
sshd each (tests/ssh_machines.py), and the harness reaches them through SSH alone. Its
PATH in these runs has no ``ip``, ``iptables`` or ``nsenter``: a harness that stepped into a
machine's namespace instead of logging in would fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_machines import Machines, ssh_machines, sshd_unavailable

from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.hosts.ssh import InventoryError, SshMachine, read_inventory

pytestmark = pytest.mark.usefixtures("tests_on_path")


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    """Three machines for the module's tests (each test leaves them as it found them, which
    the tests that run clusters assert)."""
    reason = sshd_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with ssh_machines(3, tmp_path_factory.mktemp("machines")) as made:
        yield made


@pytest.fixture
def ssh_only_path(tmp_path: Path) -> str:
    """A PATH with Python, ssh and the etcd binary, and none of the namespace tools."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for program in ("ssh", "etcd"):
        found = shutil.which(program)
        if found is not None:
            (folder / program).symlink_to(found)
    (folder / "python3").symlink_to(sys.executable)
    return str(folder)


def leftovers(machines: Machines) -> list[str]:
    """What runs left on the machines (node processes, run folders, firewall chains) and
    here (SSH master connections of runs that are gone)."""
    found = []
    for namespace, work in zip(machines.namespaces, machines.work_dirs, strict=True):
        if work.exists() and any(work.iterdir()):
            found.append(f"{work}: {sorted(p.name for p in work.iterdir())}")
        rules = subprocess.run(
            ["ip", "netns", "exec", namespace, "iptables-save"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found += re.findall(r"^:(PCONS-\S+)", rules, re.MULTILINE)
    root = str(machines.inventory.parent)
    for process in Path("/proc").iterdir():
        try:
            command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        master = re.match(r"ssh: \S*/pytest-consensus-(\d+)-\S* \[mux\]", command)
        if (root in command and "sshd" not in command) or (
            master is not None and not Path(f"/proc/{master.group(1)}").exists()
        ):
            found.append(f"{process.name}: {command[:200]}")
    return found


def test_pysyncobj_and_etcd_are_certified_through_ssh_alone_and_nothing_is_left(
    pytester: pytest.Pytester,
    machines: Machines,
    ssh_only_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kills and restarts, a pause, a partition, lost replies and a power cut of the whole
    cluster, each made on the nodes' machines over SSH: the verdicts of the namespace host
    (etcd passes; PySyncObj fails consensus-safety on its power-loss finding alone,
    docs/adapters/pysyncobj.md), and nothing is left on the machines."""
    if shutil.which("etcd") is None:
        pytest.skip("no etcd binary on PATH (apt-get install etcd-server)")
    with monkeypatch.context() as only_ssh:
        only_ssh.setenv("PATH", ssh_only_path)
        result = pytester.runpytest_subprocess(
            "--consensus-adapter=pysyncobj",
            "--consensus-adapter=etcd",
            "--consensus-host=ssh",
            f"--consensus-ssh-inventory={machines.inventory}",
            "--consensus-seed=3",
            "-k",
            "kill_and_restart_of_one_node or (first_strong_read and pause) or retried_write "
            "or deposed_leader or (power_cut and whole)",
            "-p",
            "no:cacheprovider",
            "-rfs",
        )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-5000:]
    result.stdout.fnmatch_lines(["consensus host: ssh"])
    table = output.split("consensus certification", 1)[1]
    for rule in ("leader-gating", "read-levels", "partition-retries"):
        assert re.search(rf"^{rule} +pass \(\d+ passed\) +pass", table, re.MULTILINE), table
    assert re.search(r"^consensus-safety +FAIL \(1 of 3 failed\) +pass", table, re.MULTILINE)
    failed = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    assert failed == [
        "test_disk_faults.py::test_acknowledged_writes_survive_a_power_cut[pysyncobj-whole-cluster]"
    ], failed
    assert "acknowledged writes lost after a power cut (whole-cluster)" in output
    assert "harness error" not in table
    assert leftovers(machines) == []


def test_link_faults_run_there_and_find_a_lease_timed_from_acknowledgement_arrival(
    pytester: pytest.Pytester, machines: Machines
) -> None:
    """The link proxies run on the nodes' machines: the late acknowledgements they make
    expose the broken lease (tests/broken_stores) on the SSH host as on the others."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=broken_stores.lease_from_ack_arrival:Adapter",
        "--consensus-host=ssh",
        f"--consensus-ssh-inventory={machines.inventory}",
        "-k",
        "acknowledgements_arrive_late",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*received its followers' acknowledgements 3 s late*"])
    assert leftovers(machines) == []


def test_a_machine_that_refuses_the_login_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, machines: Machines
) -> None:
    stranger = pytester.path / "stranger_key"  # a key the machines do not know
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    broken = re.sub(
        r'identity_file = ".*"', f'identity_file = "{stranger}"', machines.inventory.read_text()
    )
    inventory = pytester.path / "inventory.toml"
    inventory.write_text(broken)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "--consensus-host=ssh",
        f"--consensus-ssh-inventory={inventory}",
        "--co",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*cannot log in to m1 (root@* over SSH: *Permission denied (publickey)*(check the "
            "inventory's address, user,*"
        ]
    )


def test_more_nodes_than_machines_is_a_usage_error(
    pytester: pytest.Pytester, machines: Machines
) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "--consensus-host=ssh",
        f"--consensus-ssh-inventory={machines.inventory}",
        "--consensus-nodes=5",
        "--co",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--consensus-nodes=5 needs 5 machines (one node on each)*lists 3"]
    )


def test_a_session_survives_a_failing_command_and_a_hung_one(
    machines: Machines, tmp_path: Path
) -> None:
    """One shell session per machine carries every command: an exit status, stderr, output
    without a final newline, a command that hangs (the session is replaced), large output."""
    from pathlib import PurePosixPath

    (tmp_path / "control").mkdir()
    machine = SshMachine(
        read_inventory(machines.inventory)[0],
        tmp_path / "control",
        tmp_path,
        PurePosixPath(tmp_path / "remote"),
    )
    try:
        assert machine.call("echo out; echo err >&2; exit 3") == (3, b"out\n", b"err\n")
        assert machine.run("printf no-newline") == "no-newline"
        with pytest.raises(HarnessError, match="no answer in 1 s to: sleep 30"):
            machine.run("sleep 30", timeout=1)
        assert machine.run("echo still here") == "still here\n"
        assert len(machine.call("head -c 3000000 /dev/zero")[1]) == 3_000_000
        assert machine.client_address() == machines.addresses[0].rsplit(".", 1)[0] + ".1"
    finally:
        machine.close()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "lists no machine; add one [[machine]] table per machine"),
        ("[[machine]]\nname = 'a'\n", "machine 1 has no address"),
        ("[[machine]]\naddress = 'db1.example'\n", "is not an IPv4 address"),
        ("[[machine]]\naddress = '10.0.0.1'\nusr = 'x'\n", "unknown key(s) ['usr']"),
        (
            "[[machine]]\naddress = '10.0.0.1'\n[[machine]]\naddress = '10.0.0.1'\n",
            "two machines share the address 10.0.0.1",
        ),
        ("[[machine]\n", "not TOML"),
        ("[[machine]]\naddress = '10.0.0.1'\nport = 'ssh'\n", "port must be a number"),
        (
            "[[machine]]\naddress = '10.0.0.1'\nidentity_file = '/nonexistent/key'\n",
            "identity_file /nonexistent/key does not exist",
        ),
    ],
)
def test_a_bad_inventory_says_what_to_fix(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=re.escape(complaint)):
        read_inventory(path)


def test_the_ssh_host_without_an_inventory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-host=ssh", "--co"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--consensus-host=ssh needs --consensus-ssh-inventory=FILE*"])
    missing = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "--consensus-host=ssh",
        f"--consensus-ssh-inventory={pytester.path / 'nope.toml'}",
        "--co",
    )
    missing.stderr.fnmatch_lines(["*nope.toml: cannot read it*"])
    assert os.path.exists(pytester.path)


def test_an_inventory_named_in_an_ini_file_is_found_from_a_subfolder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ini path is taken from the ini file's folder, as pytest's own paths are,
    not from wherever pytest was started."""
    pytester.makeini("[pytest]\nconsensus_ssh_inventory = machines.toml\n")
    (pytester.path / "machines.toml").write_text("[[machine]\n")
    subfolder = pytester.mkdir("sub")
    monkeypatch.chdir(subfolder)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-host=ssh", "--co"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{pytester.path / 'machines.toml'}*not TOML*"])


def test_what_a_killed_run_left_on_the_machines_the_next_run_removes(
    pytester: pytest.Pytester, machines: Machines
) -> None:
    """A run killed with SIGKILL mid-test leaves its nodes running, its folder and its
    firewall chain on the machines; the next run from this machine removes them first."""
    pytester.makeini("[pytest]\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--consensus-adapter=pysyncobj",
        "--consensus-host=ssh",
        f"--consensus-ssh-inventory={machines.inventory}",
        "-p",
        "no:cacheprovider",
    ]
    output = pytester.path / "killed-run.txt"
    # Only the killed run's own nodes count: a pid file another test left would end the wait
    # before this run started any node.
    earlier = {path for work in machines.work_dirs for path in work.rglob("*.node-pid")}
    with output.open("w") as sink:
        killed = subprocess.Popen(
            [*command, "-k", "kill_and_restart_of_one_node"],
            cwd=pytester.path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not any(
            path not in earlier for work in machines.work_dirs for path in work.rglob("*.node-pid")
        ):
            assert killed.poll() is None and time.monotonic() < deadline, (
                f"no node started (the run {'ended' if killed.poll() is not None else 'ran on'}):"
                f"\n{output.read_text()[-3000:]}"
            )
            time.sleep(0.2)
        time.sleep(2)  # the cluster up, its test under way
    finally:
        killed.kill()
        killed.wait()
    left = leftovers(machines)
    assert any("PCONS-" in item for item in left), left
    assert any("--data-dir" in item for item in left), left  # node processes
    again = subprocess.run(
        [*command, "-k", "retried_write"], cwd=pytester.path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert leftovers(machines) == []
