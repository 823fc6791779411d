"""Where nodes live: a run directory and one distinct address per node.

The loopback host gives every node its own address in 127.0.0.0/8 (Linux routes the
whole range to ``lo``), so nodes bind the same ports without clashing, and nothing is
ever sent off the machine. Network faults need the namespace host (docs/decisions.md).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import HarnessError

RUN_PREFIX = "pytest-consensus-"
RUN_DIR_PATTERN = re.compile(rf"^{re.escape(RUN_PREFIX)}(\d+)-")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Seconds a run's owner may seem to have started after something it made: a start time
#: from /proc is boot time (whole seconds) plus clock ticks, so it may be off by up to 1 s.
_START_SLACK = 2.0


def owner_alive(pid: int, made: Path) -> bool:
    """Whether the run that made ``made`` (a file or folder named with its pid) still runs.
    A pid alone is not enough: pids wrap (at 32768 on many machines), and after a busy run
    a killed run's pid may belong to another process, which then keeps the dead run's
    leftovers from ever being swept. A process that started after ``made`` last changed
    is not its maker."""
    try:
        changed: float | None = made.stat().st_ctime
    except OSError:
        changed = None  # gone meanwhile: the pid alone decides
    return owner_alive_since(pid, changed)


def owner_alive_since(pid: int, made_at: float | None) -> bool:
    """Whether process ``pid`` runs and started before ``made_at`` (seconds since the epoch;
    None where the thing's time is unknown, then the pid alone decides): what
    :func:`owner_alive` asks of a file, for things with a creation time of their own
    (Docker's containers and networks)."""
    if not pid_alive(pid):
        return False
    if made_at is None:
        return True
    started = process_started_at(pid)
    return started is None or started <= made_at + _START_SLACK


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        ticks = int(fields[19])  # field 22 of stat(5): starttime, after pid and (comm)
    except (IndexError, ValueError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def mounts_under(folder: Path) -> list[Path]:
    """Mount points at or under ``folder`` (deepest first), from /proc/self/mounts."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    root = str(folder.resolve())
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = fields[1].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def detach(mountpoint: Path) -> None:
    """Lazily unmount ``mountpoint`` (it goes once no process uses it; ours are dead)."""
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)


def unmount_all_under(folder: Path) -> list[Path]:
    """Detach every mount under ``folder`` (a finished or dead run's disks); returns them."""
    points = mounts_under(folder)
    for point in points:
        detach(point)
    return points


def sweep_stale_run_dirs(base: Path | None = None) -> list[Path]:
    """Remove run directories whose owning pytest process is gone (a killed run's)."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for candidate in base.glob(f"{RUN_PREFIX}*"):
        match = RUN_DIR_PATTERN.match(candidate.name)
        if match and candidate.is_dir() and not owner_alive(int(match.group(1)), candidate):
            unmount_all_under(candidate)  # its nodes' lossy disks, left mounted but dead
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


@dataclass
class RunDirectory:
    """The one temporary directory a run owns; its name carries the owner's pid."""

    path: Path

    @classmethod
    def create(cls, worker: str = "main", base: Path | None = None) -> RunDirectory:
        prefix = f"{RUN_PREFIX}{os.getpid()}-{worker}-"
        return cls(Path(tempfile.mkdtemp(prefix=prefix, dir=base)))

    def remove(self) -> None:
        unmount_all_under(self.path)
        shutil.rmtree(self.path, ignore_errors=True)


def port_free(address: str, port: int) -> bool:
    """Whether a server could listen on ``address:port`` now (as servers do, with
    SO_REUSEADDR, so connections lingering in TIME_WAIT do not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class LoopbackHosts:
    """Allocates clusters of hosts on distinct loopback addresses 127.A.B.1..N."""

    def __init__(self, run_dir: Path, rng: random.Random | None = None) -> None:
        self.run_dir = run_dir
        # Addresses are not part of the test's seed: two runs at once must not collide.
        self._rng = rng or random.SystemRandom()
        self._clusters = 0

    def allocate(self, count: int, ports: Sequence[int] = ()) -> list[HostSpec]:
        """Return ``count`` hosts whose addresses have every port in ``ports`` free."""
        if not 1 <= count <= 250:
            raise HarnessError(f"cluster size must be between 1 and 250, got {count}")
        self._clusters += 1
        cluster_dir = self.run_dir / f"cluster-{self._clusters}"
        for _attempt in range(20):
            a, b = self._rng.randrange(100, 255), self._rng.randrange(1, 255)
            addresses = [f"127.{a}.{b}.{i + 1}" for i in range(count)]
            if all(port_free(address, port) for address in addresses for port in ports):
                return [
                    HostSpec(
                        name=f"n{i + 1}",
                        address=address,
                        data_dir=cluster_dir / f"n{i + 1}" / "data",
                        log_dir=cluster_dir / f"n{i + 1}",
                    )
                    for i, address in enumerate(addresses)
                ]
        raise HarnessError(f"no free loopback addresses for ports {list(ports)} after 20 tries")
