"""Evidence that outlives a run: histories, fault schedules and node logs kept on disk.

A failing example that does not fail again is still a finding; without what it recorded
nobody can look at it, so every failing run keeps its own folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from pytest_consensus.checkers.linearizability import LinearizabilityResult
from pytest_consensus.checkers.models import Model
from pytest_consensus.checkers.operations import pair_operations
from pytest_consensus.checkers.timeline import render_timeline
from pytest_consensus.clients.history import Event, History
from pytest_consensus.contract import HostSpec
from pytest_consensus.nemesis.faults import Schedule


def copy_node_logs(hosts: Sequence[HostSpec], destination: Path) -> Path:
    """Copy each node's log folder (not its data, nor the synced copy of a lossy disk) to
    ``destination/<node>``; a power cut's report of what it lost is among the logs."""
    for host in hosts:
        if host.log_dir.exists():
            shutil.copytree(
                host.log_dir,
                destination / host.name,
                ignore=shutil.ignore_patterns("data", "disk"),
                dirs_exist_ok=True,
            )
    return destination


def write_counterexample(
    folder: Path,
    events: Sequence[Event],
    model: Model,
    verdict: LinearizabilityResult,
    title: str,
) -> Path:
    """Draw a non-linearizable history's counterexample as a timeline page in ``folder``."""
    page = folder / "counterexample.html"
    page.write_text(render_timeline(pair_operations(events), model, verdict, title))
    return page


class EvidenceKeeper:
    """Keeps what each failing run recorded in its own numbered folder under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kept: list[Path] = []

    def keep(self, history: History, schedule: Schedule, hosts: Sequence[HostSpec]) -> Path:
        """Write the run's history and schedule and copy its node logs; return the folder."""
        folder = self.root / f"failure-{len(self.kept) + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        history.write_jsonl(folder / "history.jsonl")
        schedule.write(folder / "schedule.json")
        copy_node_logs(hosts, folder / "logs")
        self.kept.append(folder)
        return folder
