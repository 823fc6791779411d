"""Node data directories on the lossy filesystem, and the power cut.

Each node's data directory is the mount point of its own lossy filesystem
(:mod:`pytest_consensus.hosts.lossyfs`), whose synced state lives in a backing folder
beside it. A power cut kills the filesystem's process and detaches the mount, so the page
cache of the mount and everything unsynced are gone; mounting the backing folder again
gives the node what a machine that lost power would find on its disk.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib.util
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.remote_process import (
    RemoteMachine,
    RemoteNodeProcess,
    python_there,
)
from pytest_consensus.hosts.base import detach, mounts_under

#: How long a filesystem process may take to mount.
MOUNT_TIMEOUT = 15.0
FILESYSTEM_MODULE = "pytest_consensus.hosts.lossyfs"


def lossy_disks_unavailable() -> str | None:
    """Why this machine cannot run nodes on the lossy filesystem, or None if it can. The
    first call also mounts one for real (once per process), since a container may have
    /dev/fuse and still refuse the mount."""
    reason = _static_reason()
    return reason if reason is not None else _trial_mount()


def _static_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "power-loss faults need Linux (FUSE)"
    if not Path("/dev/fuse").exists():
        return "power-loss faults need /dev/fuse (FUSE); this machine or container has none"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "power-loss faults need read and write access to /dev/fuse (run as root)"
    if os.geteuid() != 0:
        return "power-loss faults mount a filesystem per node, which needs root"
    if ctypes.util.find_library("fuse3") is None:
        return "power-loss faults need libfuse 3: apt-get install fuse3"
    if importlib.util.find_spec("mfusepy") is None:
        return "power-loss faults need the mfusepy package: pip install mfusepy"
    if shutil.which("umount") is None:
        return "power-loss faults need umount (util-linux)"
    return None


@functools.cache
def _trial_mount() -> str | None:
    # Named like a run directory, so the sweep of a later run removes it if this one dies.
    folder = Path(tempfile.mkdtemp(prefix=f"pytest-consensus-{os.getpid()}-fuse-probe-"))
    disk = LossyDisk("probe", folder / "mnt", folder / "disk", folder / "lossyfs.log")
    try:
        disk.mount()
        (disk.mountpoint / "probe").write_bytes(b"probe")
        return None
    except (HarnessError, OSError) as error:
        return f"a trial mount of the lossy filesystem failed: {error}"
    finally:
        disk.unmount()
        shutil.rmtree(folder, ignore_errors=True)


class LossyDisk:
    """One node's data directory as a lossy filesystem mount; the filesystem process is
    registered with the run's reaper like a node, so a killed pytest leaves none behind.
    With ``machine`` (the SSH host), the filesystem runs on the node's machine (the paths
    are there, but ``log_path``) and every step is a command over its SSH session."""

    def __init__(
        self,
        name: str,
        mountpoint: Path,
        backing: Path,
        log_path: Path,
        machine: RemoteMachine | None = None,
    ) -> None:
        self.name = name
        self.mountpoint = mountpoint
        self.backing = backing
        self.log_path = log_path
        self.machine = machine
        self.process: NodeProcess | None = None
        self.power_cuts = 0

    def _is_mounted(self) -> bool:
        if self.machine is None:
            return os.path.ismount(self.mountpoint)
        point = shlex.quote(str(self.mountpoint))
        return self.machine.run(f"mountpoint -q {point} && echo yes", check=False).strip() == "yes"

    def mount(self) -> None:
        argv = [sys.executable, "-m", FILESYSTEM_MODULE, str(self.backing), str(self.mountpoint)]
        if self.machine is None:
            self.mountpoint.mkdir(parents=True, exist_ok=True)
            self.backing.mkdir(parents=True, exist_ok=True)
            self.process = NodeProcess(
                f"{self.name}-disk", argv, self.log_path, python_environment(), self.backing.parent
            )
        else:
            folders = " ".join(shlex.quote(str(f)) for f in (self.mountpoint, self.backing))
            self.machine.run(f"mkdir -p {folders}")
            self.process = RemoteNodeProcess(
                f"{self.name}-disk", self.machine, argv, self.log_path, python_environment()
            )
        self.process.start()
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not self._is_mounted():
            if not self.process.is_running() or time.monotonic() > deadline:
                tail = self.process.log_tail(20)
                self.unmount()
                raise HarnessError(
                    f"the lossy filesystem for {self.name} did not mount on {self.mountpoint} "
                    f"within {MOUNT_TIMEOUT:.0f} s; its log:\n{tail}"
                )
            time.sleep(0.02)

    def request(self, what: str, timeout: float = 30.0) -> None:
        """Ask the filesystem process to serve ``what`` (see lossyfs.serve_control) and wait."""
        if self.machine is not None:
            self._request_there(what, timeout)
            return
        done = self.backing / f"{what}.done"
        done.unlink(missing_ok=True)
        (self.backing / what).write_text("")
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self.process is None or not self.process.is_running():
                raise HarnessError(
                    f"the lossy filesystem of {self.name} died; its log:\n"
                    f"{self.process.log_tail(20) if self.process else ''}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"the lossy filesystem of {self.name} did not {what} in {timeout:.0f} s"
                )
            time.sleep(0.01)
        done.unlink()

    def _request_there(self, what: str, timeout: float) -> None:
        """``request`` on the node's machine: one command that asks and waits."""
        assert self.machine is not None
        ask = shlex.quote(str(self.backing / what))
        done = shlex.quote(str(self.backing / f"{what}.done"))
        answer = self.machine.run(
            f"rm -f {done}; : > {ask}; i=0; while [ ! -e {done} ] && [ $i -lt "
            f"{int(timeout * 100)} ]; do sleep 0.01; i=$((i+1)); done; "
            f"[ -e {done} ] && rm -f {done} && echo done",
            timeout=timeout + 30,
        )
        if answer.strip() != "done":
            tail = self.process.log_tail(20) if self.process else ""
            raise HarnessError(
                f"the lossy filesystem of {self.name} on {self.machine.name} did not {what} "
                f"in {timeout:.0f} s; its log:\n{tail}"
            )

    def sync_all(self) -> None:
        """Make everything on the disk durable now (see LossyDisks.checkpoint)."""
        self.request("sync-all")

    def unmount(self) -> None:
        """Kill the filesystem process and detach the mount: unsynced data is gone."""
        if self.process is not None:
            self.process.kill()
            self.process = None
        if self.machine is not None:
            point = shlex.quote(str(self.mountpoint))
            self.machine.run(f"grep -qs ' {point} ' /proc/mounts && umount -l {point}; true")
            return
        # A mount whose filesystem process died answers ENOTCONN, which os.path.ismount
        # takes for "not a mount": the mount table says.
        if self.mountpoint.resolve() in mounts_under(self.mountpoint):
            detach(self.mountpoint)

    def power_cut(self) -> Path:
        """Lose everything unsynced, then mount what the disk kept (the node stays down).
        Returns the report of what was lost, kept beside the node's log as evidence."""
        self.request("report")
        self.power_cuts += 1
        report = self.log_path.parent / f"power-cut-{self.power_cuts}-lost.json"
        self.unmount()
        if self.machine is None:
            (self.backing / "unsynced.json").replace(report)
        else:
            self.machine.fetch(PurePosixPath(self.backing / "unsynced.json"), report)
            self.machine.run(f"rm -f {shlex.quote(str(self.backing / 'unsynced.json'))}")
        self.mount()
        return report


class LossyDisks:
    """The lossy disks of one cluster, by node name."""

    def __init__(self, hosts: Sequence[HostSpec]) -> None:
        self.disks = {
            host.name: LossyDisk(
                host.name,
                host.data_dir,
                host.data_dir.parent / "disk",
                host.log_dir / "lossyfs.log",
                host.machine,
            )
            for host in hosts
        }

    def mount(self) -> LossyDisks:
        try:
            for disk in self.disks.values():
                disk.mount()
        except BaseException:
            self.close()
            raise
        return self

    def power_cut(self, names: Iterable[str]) -> list[Path]:
        """Cut the power of ``names``' disks (their nodes must be dead); the loss reports."""
        return [self.disk(name).power_cut() for name in names]

    def checkpoint(self) -> None:
        """Sync every disk once: called when a cluster has formed, as a machine's writeback
        and filesystem journal would within seconds of its first start, so that a power cut
        tests what the store syncs while it serves, not how it was installed."""
        for disk in self.disks.values():
            disk.sync_all()

    def disk(self, name: str) -> LossyDisk:
        try:
            return self.disks[name]
        except KeyError:
            raise HarnessError(f"no lossy disk for node {name!r}") from None

    def close(self) -> None:
        for disk in self.disks.values():
            disk.unmount()


def require_lossy_disks(hosts: Sequence[HostSpec] = ()) -> None:
    """Raise CapabilityMissing (a test is then n/a) where the lossy filesystem cannot run:
    on this machine, or on the machines of ``hosts`` that are others (the SSH host)."""
    machines = {id(h.machine): h.machine for h in hosts if h.machine is not None}
    reasons = [lossy_disks_unavailable_on(m) for m in machines.values()]
    reason = next((r for r in reasons if r), None) if machines else lossy_disks_unavailable()
    if reason is not None:
        raise CapabilityMissing(reason)


FAILED = "__pytest_consensus_check_failed__"
#: What each machine said when asked whether it can run the lossy filesystem, by name.
_REMOTE_REASONS: dict[str, str | None] = {}


def lossy_disks_unavailable_on(machine: RemoteMachine) -> str | None:
    """Why ``machine`` cannot run the lossy filesystem (its own Python answers with the
    checks this machine makes), or None; asked once per machine and run."""
    if machine.name not in _REMOTE_REASONS:
        check = "from pytest_consensus.hosts.disks import _static_reason as r; print(r() or '')"
        answer = machine.run(f"{python_there(machine, check)} 2>&1 || echo {FAILED}", check=False)
        answer = answer.strip()
        if answer.endswith(FAILED):
            lines = answer.removesuffix(FAILED).strip().splitlines() or ["no output"]
            answer = f"its Python cannot check it ({lines[-1]})"
        _REMOTE_REASONS[machine.name] = f"on {machine.name}: {answer}" if answer else None
    return _REMOTE_REASONS[machine.name]
