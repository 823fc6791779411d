"""What the SSH host runs on a machine to end a run's nodes and remove its folder, run here
through ``sh`` on the real wrapper and real processes (the machine is this one).

The wrapper of a killed node outlived it for a moment and wrote the node's exit status into
the folder being removed: one run in CI left its folder on a machine that way."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from processes import gone_within

from pytest_consensus.contract.remote_process import (
    EXIT,
    PID,
    WRAPPER,
    kill_nodes_script,
    remove_folder_script,
)


def start_wrapped(folder: Path, *node: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A node under the wrapper as RemoteNodeProcess starts it; the wrapper and the pid file."""
    folder.mkdir(parents=True, exist_ok=True)
    start = folder / "node.0123456789ab"
    pidfile = start.with_name(start.name + PID)
    wrapper = subprocess.Popen(
        ["setsid", "sh", "-c", WRAPPER, "node", str(pidfile), f"{start}{EXIT}", f"{start}.log"]
        + list(node)
    )
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the wrapper wrote no pid"
        time.sleep(0.01)
    return wrapper, pidfile


def test_the_wrapper_dies_before_its_node_and_the_folder_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "pytest-consensus-ab12-1-main"
    wrapper, pidfile = start_wrapped(root / "cluster-1" / "n1", "sleep", "1000")
    node = int(pidfile.read_text())
    script = f"{kill_nodes_script(str(root))}; {remove_folder_script(str(root))}"
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    assert wrapper.wait(timeout=10) == -signal.SIGKILL  # killed, so it wrote nothing after
    assert gone_within(node, 10), f"node {node} still runs"
    time.sleep(0.2)  # what a survivor would write lands now
    assert not root.exists()


def test_a_node_that_ended_is_not_killed_again_by_a_pid_that_may_be_reused(
    tmp_path: Path,
) -> None:
    """A start whose exit status is written has ended; the pids in its files may since
    belong to other processes, which the cleanup must not kill."""
    root = tmp_path / "pytest-consensus-ab12-2-main"
    wrapper, pidfile = start_wrapped(root / "cluster-1" / "n1", "true")
    assert wrapper.wait(timeout=10) == 0
    assert pidfile.with_name(pidfile.name.removesuffix(PID) + EXIT).read_text().strip() == "0"
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{bystander.pid}\n")  # as if the node's pid had been reused
        subprocess.run(["sh", "-c", kill_nodes_script(str(root))], check=True, timeout=30)
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_removing_a_folder_that_is_already_gone_succeeds(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", "-c", remove_folder_script(str(tmp_path / "never-made"))], timeout=30
    )
    assert done.returncode == 0
