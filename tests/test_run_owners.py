"""Whose leftovers are whose: a dead run's pid may belong to another process by the time
the next run sweeps (pids wrap at 32768 on many machines, and a busy suite starts thousands
of processes), and that must not keep the dead run's folders and namespaces forever."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pytest_consensus.hosts import base
from pytest_consensus.hosts.base import (
    RUN_PREFIX,
    owner_alive,
    process_started_at,
    sweep_stale_run_dirs,
)


def test_a_process_start_time_is_read_from_proc() -> None:
    started = process_started_at(os.getpid())
    assert started is not None
    assert time.time() - 24 * 3600 < started <= time.time()


def test_a_process_that_started_after_a_folder_was_made_does_not_own_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "_START_SLACK", 0.0)
    made = tmp_path / "made"
    made.mkdir()
    time.sleep(1.2)  # /proc/stat's boot time is whole seconds: start times are that coarse
    newcomer = subprocess.Popen(["sleep", "30"])
    try:
        assert not owner_alive(newcomer.pid, made)  # the pid is taken, but not by the maker
        assert owner_alive(os.getpid(), made)  # this process made it
    finally:
        newcomer.kill()
        newcomer.wait()
    assert not owner_alive(newcomer.pid, made)  # gone


def test_a_run_folder_whose_pid_was_reused_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead run's folder whose pid now belongs to a process that started after the folder
    is swept; this run's own folder (same check, the true owner) is kept."""
    newcomer = subprocess.Popen(["sleep", "30"])
    try:
        stale = tmp_path / f"{RUN_PREFIX}{newcomer.pid}-main-x"
        stale.mkdir()
        ours = tmp_path / f"{RUN_PREFIX}{os.getpid()}-main-y"
        ours.mkdir()
        real = base.process_started_at
        monkeypatch.setattr(
            base,
            "process_started_at",
            lambda pid: time.time() + 60 if pid == newcomer.pid else real(pid),
        )
        assert sweep_stale_run_dirs(tmp_path) == [stale]
        assert ours.exists() and not stale.exists()
    finally:
        newcomer.kill()
        newcomer.wait()


def test_an_ssh_of_a_dead_run_whose_pid_was_reused_is_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SSH master left by a dead run is ended though a newer process has the run's pid
    (it started after the master, so it is not the run that started it); one of this run
    is left alone."""
    from pytest_consensus.hosts.ssh import sweep_dead_masters

    newcomer = subprocess.Popen(["sleep", "30"])
    masters = {
        owner: subprocess.Popen(
            ["bash", "-c", f'exec -a "ssh: /tmp/{RUN_PREFIX}{owner}-main-x/ssh/m1 [mux]" sleep 30']
        )
        for owner in (newcomer.pid, os.getpid())
    }
    try:
        time.sleep(0.3)  # until bash has exec'd the named sleep
        real = base.process_started_at
        monkeypatch.setattr(
            base,
            "process_started_at",
            lambda pid: time.time() + 60 if pid == newcomer.pid else real(pid),
        )
        ended = sweep_dead_masters()
        assert masters[newcomer.pid].wait(timeout=10) is not None
        assert [f"{RUN_PREFIX}{newcomer.pid}-" in line for line in ended] == [True]
        assert masters[os.getpid()].poll() is None, "this run's own ssh was ended"
    finally:
        for process in (newcomer, *masters.values()):
            process.kill()
            process.wait()
