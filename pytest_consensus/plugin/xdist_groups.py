"""Tests that share one run keep to one pytest-xdist worker.

The crash loop runs once per adapter in a session fixture and feeds two tests. Under
``pytest -n N`` every worker has its own session, so the two tests, dealt to two workers,
would run the loop twice: twice the cost, and two verdicts read from two different loops.
Such tests get an ``xdist_group`` mark per adapter, and a run with ``-n`` and no ``--dist``
of its own is switched from xdist's default ``load`` to ``loadgroup``, which keeps a group
on one worker and deals everything else as ``load`` does.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import pytest

from pytest_consensus.report.records import GROUP_PREFIX

#: Session fixtures whose tests must share a worker (one run of the fixture per adapter).
SHARED_FIXTURES = ("crash_loop_outcome",)


def group_shared_runs(item: pytest.Item, adapter: str | None) -> None:
    """Mark ``item`` to stay with the other tests of its adapter's shared run, if it has one."""
    names = getattr(item, "fixturenames", ())
    for fixture in SHARED_FIXTURES:
        if fixture in names:
            item.add_marker(pytest.mark.xdist_group(f"{GROUP_PREFIX}{fixture}-{adapter or ''}"))


#: The key under which the controller tells its workers its distribution mode.
WORKER_DIST = "consensus_dist"


def keep_groups_together(config: pytest.Config) -> None:
    """``-n N`` without ``--dist``: deal by ``loadgroup`` rather than ``load``. A worker
    parses the command line again and so never sees that switch; it is handed the
    controller's mode (:func:`hand_dist_to_worker`) and labels its tests' groups for it."""
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        if worker_input.get(WORKER_DIST) == "loadgroup":
            config.option.loadgroup = True
        return
    if getattr(config.option, "dist", "no") != "load" or _dist_given(config):
        return
    config.option.dist = "loadgroup"


def hand_dist_to_worker(node: Any) -> None:
    """pytest-xdist's ``pytest_configure_node``: the controller's distribution mode."""
    node.workerinput[WORKER_DIST] = getattr(node.config.option, "dist", "no")


def _dist_given(config: pytest.Config) -> bool:
    """Whether the user chose a distribution mode (command line, PYTEST_ADDOPTS, addopts)."""
    words = list(config.invocation_params.args)
    words += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    addopts = config.getini("addopts")
    words += addopts if isinstance(addopts, list) else shlex.split(str(addopts))
    return any(w == "-d" or w == "--dist" or w.startswith("--dist=") for w in map(str, words))
