"""What the durable PySyncObj twins change in PySyncObj's journal (broken_stores/
pysyncobj_durability.py), on a real FileJournal in a temporary folder: compaction replaces
the journal whole, and a journal that still holds entries its dump covers is cut to the
dump at start-up instead of being thrown away. The power-cut tests of
tests/test_broken_stores.py show the twins' verdicts; these pin the mechanism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pysyncobj import journal, syncobj

from broken_stores.pysyncobj_durability import _compact_atomically, _cut_journal_to_dump


@pytest.fixture
def compacting_atomically(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin's compaction in this process, undone after the test."""
    monkeypatch.setattr(journal.FileJournal, "deleteEntriesTo", journal.FileJournal.deleteEntriesTo)
    loader = syncobj.SyncObj._SyncObj__loadDumpFile
    monkeypatch.setattr(syncobj.SyncObj, "_SyncObj__loadDumpFile", loader)
    _compact_atomically(lambda path: None)


def indexes(log: Any) -> list[int]:
    return [log[position][1] for position in range(len(log))]


def journal_with(path: Path, count: int) -> Any:
    log = journal.FileJournal(str(path))
    for index in range(1, count + 1):
        log.add(b"command-%d" % index, index, 1)
    return log


@pytest.mark.usefixtures("compacting_atomically")
def test_compaction_replaces_the_journal_with_a_whole_shorter_one(tmp_path: Path) -> None:
    log = journal_with(tmp_path / "raft.journal", 10)
    log.deleteEntriesTo(6)
    log.add(b"command-11", 11, 1)
    assert indexes(log) == [7, 8, 9, 10, 11]
    log._destroy()
    reopened = journal.FileJournal(str(tmp_path / "raft.journal"))
    assert indexes(reopened) == [7, 8, 9, 10, 11]
    assert reopened[4] == (b"command-11", 11, 1)
    reopened._destroy()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft.journal"]


class Dump:
    """A dump whose last two entries are ``before_last`` and ``last``, as PySyncObj's
    serializer returns it: (state, last entry, the entry before it, cluster)."""

    def __init__(self, before_last: tuple[bytes, int, int], last: tuple[bytes, int, int]):
        self.entries = (before_last, last)

    def deserialize(self) -> tuple[Any, ...]:
        return (None, self.entries[1], self.entries[0], set())


@pytest.mark.usefixtures("compacting_atomically")
def test_a_journal_older_than_its_dump_is_cut_to_the_dump(tmp_path: Path) -> None:
    """A cut after the new dump was renamed in but before the journal was shortened: the
    entries after the dump must stay (PySyncObj would clear the journal)."""
    log = journal_with(tmp_path / "raft.journal", 10)
    _cut_journal_to_dump(log, Dump((b"command-5", 5, 1), (b"command-6", 6, 1)))
    assert indexes(log) == [5, 6, 7, 8, 9, 10]
    log._destroy()


@pytest.mark.usefixtures("compacting_atomically")
def test_a_journal_without_the_dumps_entries_is_left_to_pysyncobj(tmp_path: Path) -> None:
    log = journal_with(tmp_path / "raft.journal", 4)
    _cut_journal_to_dump(log, Dump((b"command-7", 7, 1), (b"command-8", 8, 1)))
    _cut_journal_to_dump(log, Dump((b"other", 2, 1), (b"command-3", 3, 1)))
    assert indexes(log) == [1, 2, 3, 4]
    log._destroy()
