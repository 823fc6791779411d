"""``--consensus-shard=K/N``: run the K-th of N shares of the selected tests, so that one
certification can be split across CI jobs or machines and merged afterwards
(``consensus-merge``, report/merge.py).

A test's seed and schedule come from the run's seed and the test's id alone
(Settings.seed_for), never from what else runs, so a test gives in its shard what it gives
in the unsplit run. Tests are dealt round-robin in collection order: every shard gets a
share of each module (the slow crash loop and the quick read tests alike), and every
shard of one command line gets the same list to deal from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

SHARD_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")

Item = TypeVar("Item")


@dataclass(frozen=True)
class Shard:
    """The K-th (from 1) of N shares of a run's tests."""

    index: int
    total: int

    @classmethod
    def parse(cls, raw: str) -> Shard:
        match = SHARD_FORM.match(raw)
        if match is None:
            raise ValueError(
                f"--consensus-shard={raw}: give K/N, the K-th of N shares (for example 1/3, "
                "2/3 and 3/3 in three jobs)"
            )
        index, total = int(match.group(1)), int(match.group(2))
        if total < 1 or not 1 <= index <= total:
            raise ValueError(f"--consensus-shard={raw}: K must be between 1 and N (N at least 1)")
        return cls(index, total)

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def share(self, items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
        """(this shard's items, the others'): every N-th item, starting at the K-th."""
        kept: list[Item] = []
        others: list[Item] = []
        for position, item in enumerate(items):
            (kept if position % self.total == self.index - 1 else others).append(item)
        return kept, others


class ShardPlugin:
    """Deselects the other shards' tests once every other selection (``-k``, ``-m``, test
    paths) has been made, and remembers how many tests of each adapter the unsplit run has,
    which the certificate records so that a merge can tell a missing shard."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        #: Tests per adapter in the unsplit selection.
        self.unsplit: dict[str, int] = {}
        self.kept = 0
        self.selected = 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        for item in items:
            adapter = dict(item.user_properties).get("consensus_adapter")
            if adapter is not None:
                self.unsplit[str(adapter)] = self.unsplit.get(str(adapter), 0) + 1
        kept, others = self.shard.share(items)
        self.selected, self.kept = len(items), len(kept)
        if others:
            config.hook.pytest_deselected(items=others)
        items[:] = kept

    def pytest_report_collectionfinish(self) -> str:
        return (
            f"consensus shard {self.shard}: {self.kept} of the {self.selected} selected tests "
            "(merge the shards' certificates with consensus-merge)"
        )
