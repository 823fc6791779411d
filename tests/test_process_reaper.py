"""Node processes never outlive the run, whatever their language: the reaper kills a node
that ignores its parent when the harness is killed, and exits itself with the harness."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import alive, gone_within

#: A node that neither watches its parent nor stops on SIGTERM or SIGHUP.
STUBBORN_NODE = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)

HARNESS = """
import sys, time
from pathlib import Path
from pytest_consensus.contract import reaper
from pytest_consensus.contract.process import NodeProcess
if sys.argv[2] == "without-reaper":
    reaper.register = lambda pid: None
node = NodeProcess("n1", [sys.executable, "-c", sys.argv[3]], Path(sys.argv[1]), {})
node.start()
print(node.pid, reaper._reaper.pid if reaper._reaper else 0, flush=True)
if sys.argv[4] == "stop":
    node.stop(grace=0.5)
    print("stopped", flush=True)
else:
    time.sleep(300)
"""


def start_harness(tmp_path: Path, reaper: str, end: str) -> tuple[subprocess.Popen[str], int, int]:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path / "n1.log"), reaper, STUBBORN_NODE, end],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert harness.stdout is not None
    node_pid, reaper_pid = (int(word) for word in harness.stdout.readline().split())
    return harness, node_pid, reaper_pid


@pytest.mark.parametrize("reaper", ["with-reaper", "without-reaper"])
def test_a_node_that_ignores_its_parent_dies_with_a_killed_harness(
    tmp_path: Path, reaper: str
) -> None:
    """Without the reaper (the control) the node outlives the killed harness, so the test
    sees the problem it guards against; with it, the node is gone within seconds."""
    harness, node_pid, _ = start_harness(tmp_path, reaper, "sleep")
    try:
        time.sleep(0.3)
        assert alive(node_pid)
        harness.kill()  # as kill -9 on pytest: no teardown runs
        harness.wait()
        if reaper == "with-reaper":
            assert gone_within(node_pid, 10.0), "the node outlived the killed harness"
        else:
            assert not gone_within(node_pid, 1.0)
    finally:
        harness.kill()
        harness.wait()
        subprocess.run(["kill", "-9", str(node_pid)], capture_output=True, check=False)


def test_after_a_normal_stop_the_reaper_exits_with_the_harness(tmp_path: Path) -> None:
    harness, node_pid, reaper_pid = start_harness(tmp_path, "with-reaper", "stop")
    assert harness.stdout is not None
    assert harness.stdout.readline().strip() == "stopped"
    assert harness.wait(30) == 0
    assert not alive(node_pid)
    assert gone_within(reaper_pid, 10.0), "the reaper outlived the harness"


def test_a_node_is_forgotten_by_the_reaper_once_however_often_it_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node killed by a fault and stopped again at teardown unregisters its pid once: a
    second unregister could make the reaper forget another node given the reused pid."""
    from pytest_consensus.contract import reaper
    from pytest_consensus.contract.process import NodeProcess

    sent: list[str] = []
    monkeypatch.setattr(reaper, "register", lambda pid: sent.append(f"+{pid}"))
    monkeypatch.setattr(reaper, "unregister", lambda pid: sent.append(f"-{pid}"))
    node = NodeProcess("n1", [sys.executable, "-c", STUBBORN_NODE], tmp_path / "n1.log", {})
    node.start()
    first = node.pid
    node.kill()
    node.stop(grace=0.1)
    node.kill()
    node.start()  # restarted: registered again, and unregistered once more when stopped
    second = node.pid
    node.stop(grace=0.1)
    assert sent == [f"+{first}", f"-{first}", f"+{second}", f"-{second}"]
