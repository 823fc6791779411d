"""Shared helpers for the project's own tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_consensus.hosts.netns import NamespaceNetwork

TESTS_DIR = Path(__file__).parent

pytest_plugins = ["pytester"]

try:
    # pytester restores sys.modules after each test that uses it, which drops a docker SDK
    # first imported inside such a test while objects of the old requests module survive;
    # the SDK then fails ("You can only merge into CookieJar") although the engine answers.
    # Imported here, before any test, the SDK and its requests stay one set of modules.
    import docker  # noqa: F401
except ImportError:
    pass


@pytest.fixture
def tests_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let pytester subprocesses (and the nodes they start) import broken_stores and fakes."""
    current = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), current])))


def node_processes_of(parent_pid: int) -> list[int]:
    """PIDs of live node processes started by the harness process ``parent_pid``."""
    marker = f"--parent-pid\0{parent_pid}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if marker in cmdline + b"\0" and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def needs_network_faults() -> None:
    """Skip (with the reason) where this machine cannot make namespaces and rules."""
    from pytest_consensus.hosts.netns import network_faults_unavailable

    reason = network_faults_unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def network(tmp_path: Path, needs_network_faults: None) -> Iterator[NamespaceNetwork]:
    """The run's bridge and address range on real namespaces, removed after the test."""
    from pytest_consensus.hosts.netns import NamespaceNetwork

    net = NamespaceNetwork(tmp_path)
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def needs_lossy_disks() -> None:
    """Skip (with the reason) where this machine cannot mount the lossy filesystem."""
    from pytest_consensus.hosts.disks import lossy_disks_unavailable

    reason = lossy_disks_unavailable()
    if reason is not None:
        pytest.skip(reason)


def start_inner_run(
    pytester: pytest.Pytester, test_source: str, what: str
) -> subprocess.Popen[bytes]:
    """Start ``pytest --consensus-adapter=pysyncobj`` on ``test_source`` in the background and
    return once the test has written the file named by the ``{marker}`` in its source."""
    marker = pytester.path / "inner-run-ready"
    pytester.makepyfile(test_inner=test_source.format(marker=marker))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--consensus-adapter=pysyncobj",
            "test_inner.py",
            "-p",
            "no:cacheprovider",
            f"--basetemp={pytester.path / 'basetemp'}",
        ],
        cwd=pytester.path,
        stdout=open(pytester.path / "inner-run.out", "wb"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
        # A suite started as a background job inherits SIGINT ignored, and so would the
        # inner run: it must react to Ctrl-C as a user's terminal run does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    from pytest_consensus.contract.waiting import wait_for

    wait_for(marker.exists, timeout=60, what=what)
    return process


def what_failed(output: str, limit: int = 8000) -> str:
    """An inner run's failure messages and its verdict table, for an assertion's message:
    the last few thousand characters of a run are its tables, and the message of the test
    that failed (the store's evidence, or the harness's error) comes well before them."""
    start = output.find("= FAILURES =")
    errors = output.find("= ERRORS =")
    first = min((i for i in (start, errors) if i >= 0), default=-1)
    if first < 0:
        return output[-limit:]
    return output[first : first + limit // 2] + "\n...\n" + output[-limit // 2 :]
