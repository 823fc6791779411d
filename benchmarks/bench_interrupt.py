"""How long a run takes to stop after Ctrl-C or SIGTERM, and whether it leaves anything.

Starts ``pytest --consensus-adapter=pysyncobj`` on tests with workloads and faults, sends the
signal at staggered moments (setup, workload, partition), and times the exit. Reports the
median and maximum seconds per signal, and counts leftovers (node processes, namespaces,
firewall rules, run directories), which must be zero.

    python benchmarks/bench_interrupt.py --runs 5
"""

from __future__ import annotations

import argparse
import glob
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTION = "read_levels or safety"


def leftovers(pid: int) -> int:
    from pytest_consensus.hosts.netns import base36

    tag = f"pcons-{base36(pid)}"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    nodes = subprocess.run(
        ["pgrep", "-f", f"--parent-pid {pid}"], capture_output=True, text=True
    ).stdout.split()
    directories = glob.glob(f"/tmp/pytest-consensus-{pid}-*")
    return namespaces.count(tag) + rules.count(tag) + len(nodes) + len(directories)


def one_stop(signal_name: str, after: float, seed: int, scratch: Path) -> tuple[float, int, int]:
    """(seconds from the signal to the exit, exit status, leftovers)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--consensus-adapter=pysyncobj",
            f"--consensus-seed={seed}",
            "-p",
            "no:cacheprovider",
            "-q",
            "-k",
            SELECTION,
        ],
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after)
    sent = time.monotonic()
    process.send_signal(getattr(signal, signal_name))
    status = process.wait(120)
    seconds = time.monotonic() - sent
    time.sleep(1.0)  # orphaned nodes, if any, would still be there
    return seconds, status, leftovers(process.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="stops per signal (default 5)")
    arguments = parser.parse_args()
    scratch = Path("/tmp/pytest-consensus-bench-interrupt")
    scratch.mkdir(exist_ok=True)
    for signal_name in ("SIGINT", "SIGTERM"):
        times, statuses, left = [], set(), 0
        for run in range(arguments.runs):
            seconds, status, leftover = one_stop(signal_name, 4.0 + 3.0 * run, run, scratch)
            times.append(seconds)
            statuses.add(status)
            left += leftover
        print(
            f"{signal_name}: {arguments.runs} stops, {statistics.median(times):.2f} s median, "
            f"{max(times):.2f} s max from the signal to the exit; exit status "
            f"{sorted(statuses)}; leftovers {left}"
        )


if __name__ == "__main__":
    main()
