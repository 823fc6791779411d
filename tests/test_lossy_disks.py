"""The lossy filesystem for real (FUSE): a power cut loses what was not synced, through every
way a store writes (write, mmap, O_DSYNC), and leaves no mount or process behind."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_consensus.hosts import disks
from pytest_consensus.hosts.base import mounts_under, sweep_stale_run_dirs
from pytest_consensus.hosts.disks import LossyDisk


@pytest.fixture
def disk(tmp_path: Path, needs_lossy_disks: None) -> LossyDisk:
    made = LossyDisk("n1", tmp_path / "data", tmp_path / "disk", tmp_path / "lossyfs.log")
    made.mount()
    yield made
    made.unmount()
    assert mounts_under(tmp_path) == []


def sync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def test_a_power_cut_keeps_what_was_synced_and_nothing_else(disk: LossyDisk) -> None:
    root = disk.mountpoint
    with open(root / "log", "wb") as log:
        log.write(b"synced")
        log.flush()
        os.fsync(log.fileno())
        log.write(b", lost")
    sync_folder(root)
    (root / "never-synced-name").write_bytes(b"x")
    with open(root / "log", "rb") as log:
        assert log.read() == b"synced, lost"
    report = disk.power_cut()
    assert (root / "log").read_bytes() == b"synced"
    assert not (root / "never-synced-name").exists()
    assert "/never-synced-name (created or renamed)" in report.read_text()


def test_msync_and_o_dsync_writes_are_synced(disk: LossyDisk) -> None:
    root = disk.mountpoint
    with open(root / "journal", "wb") as journal:
        journal.truncate(2 * mmap.PAGESIZE)
        os.fsync(journal.fileno())
    sync_folder(root)
    with open(root / "journal", "r+b") as journal:
        mapped = mmap.mmap(journal.fileno(), 2 * mmap.PAGESIZE)
        mapped[0:6] = b"msync!"
        mapped.flush()
        mapped[mmap.PAGESIZE : mmap.PAGESIZE + 4] = b"lost"
        mapped.close()
    descriptor = os.open(root / "meta", os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o644)
    os.write(descriptor, b"term 7")
    os.close(descriptor)
    sync_folder(root)
    disk.power_cut()
    content = (root / "journal").read_bytes()
    assert content[:6] == b"msync!" and content[mmap.PAGESIZE : mmap.PAGESIZE + 4] == bytes(4)
    assert (root / "meta").read_bytes() == b"term 7"


def test_a_killed_runs_dead_mounts_are_swept(tmp_path: Path, needs_lossy_disks: None) -> None:
    """A pytest killed with its disks mounted leaves dead mounts (the reaper killed their
    filesystem processes); the next run's sweep detaches them before removing the folder."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = tmp_path / f"pytest-consensus-{dead.stdout.strip()}-main-x"
    stray = LossyDisk("n1", folder / "n1" / "data", folder / "n1" / "disk", folder / "fs.log")
    stray.mount()
    assert stray.process is not None
    stray.process.kill()  # as the reaper does when pytest dies
    assert mounts_under(folder)
    assert sweep_stale_run_dirs(tmp_path) == [folder]
    assert mounts_under(tmp_path) == [] and not folder.exists()


def test_without_dev_fuse_power_loss_is_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(disks.os, "access", lambda path, mode: False)
    assert disks._static_reason() in (
        "power-loss faults need read and write access to /dev/fuse (run as root)",
        "power-loss faults need /dev/fuse (FUSE); this machine or container has none",
    )
