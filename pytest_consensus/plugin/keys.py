"""Where the plugin keeps its state on pytest's config and items, and how a test item names
its rule and adapter: shared by the hooks, the fixtures and the progress reporter, so that
none of them imports another."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_consensus.report.records import without_group

if TYPE_CHECKING:
    # Used only inside the StashKey subscripts below, which ruff does not read as types.
    from pytest_consensus.contract import Adapter  # noqa: F401
    from pytest_consensus.plugin.kept_evidence import KeptEvidence  # noqa: F401
    from pytest_consensus.plugin.settings import Settings  # noqa: F401
    from pytest_consensus.report.verdicts import VerdictTable  # noqa: F401

settings_key = pytest.StashKey["Settings"]()
adapters_key = pytest.StashKey["dict[str, Adapter]"]()
verdicts_key = pytest.StashKey["VerdictTable"]()
history_path_key = pytest.StashKey[Path]()
schedule_path_key = pytest.StashKey[Path]()
#: Where this run keeps failing tests' evidence beyond pytest's temp-folder rotation.
kept_evidence_key = pytest.StashKey["KeptEvidence"]()
#: Folders of a test's evidence besides its tmp_path (a session fixture's, for one).
evidence_folders_key = pytest.StashKey["list[Path]"]()
#: Where a failed test's evidence is copied once its teardown has written it.
kept_folder_key = pytest.StashKey[Path]()
#: What this run's start removed of dead runs (directories, namespaces, links, containers).
swept_key = pytest.StashKey["list[str]"]()


def rule_and_adapter(item: pytest.Item) -> tuple[str | None, str | None]:
    marker = item.get_closest_marker("consensus_rule")
    rule = str(marker.args[0]) if marker and marker.args else None
    callspec = getattr(item, "callspec", None)
    adapter = callspec.params.get("consensus_adapter") if callspec else None
    return rule, adapter


def replayable_id(item: pytest.Item) -> str:
    """The test's id with its file's absolute path: the conformance suite lives in the
    installed package, so an id relative to the run's folder names no file elsewhere."""
    nodeid = without_group(item.nodeid)
    return f"{item.path}::{nodeid.split('::', 1)[1]}" if "::" in nodeid else nodeid
