"""What PySyncObj 0.3.17 leaves out for durability, put back for ``sync=always``.

PySyncObj writes its journal through ``mmap`` and never flushes it, and replaces its meta
file (term, vote) and its full dump by a rename, syncing neither the file nor the folder.
A power cut then loses the log tail, the term and the vote (docs/adapters/pysyncobj.md).
:func:`sync_before_acknowledging` patches the module so that every journal change is
flushed (``msync``) before PySyncObj goes on (a follower answers an append, a leader
counts itself, only after that), the meta file and the dump are fsynced before their
rename, and their folder after it; and log compaction is made crash-safe: PySyncObj
renames its new dump into place, then rewrites its journal in place starting from an empty
one, and at start-up throws the whole journal away unless it begins exactly at the dump's
last entries, so a cut between or during those steps loses the log's tail on that node.
The project's broken stores switch parts of it off.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from pysyncobj import journal, serializer, syncobj


def sync_directory(path: str | Path) -> None:
    """fsync a folder, so the names created, renamed or removed in it survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_before_acknowledging(*, directories: bool = True) -> None:
    """Make this process's PySyncObj sync what Raft needs on disk before it answers;
    ``directories=False`` syncs file contents but never the folders holding them."""

    def folder_of(path: str) -> None:
        if directories:
            sync_directory(os.path.dirname(os.path.abspath(path)))

    original_init = journal.ResizableFile.__init__

    def resizable_init(self: Any, fileName: str, *args: Any, **kwargs: Any) -> None:  # noqa: N803
        created = not os.path.exists(fileName)
        original_init(self, fileName, *args, **kwargs)
        self.flush()
        if created:
            folder_of(fileName)

    journal.ResizableFile.__init__ = resizable_init

    for name in ("add", "clear", "deleteEntriesFrom"):
        original = getattr(journal.FileJournal, name)

        def flushed(self: Any, *args: Any, _original: Any = original) -> Any:
            result = _original(self, *args)
            self.flush()
            return result

        setattr(journal.FileJournal, name, flushed)

    def store_meta(self: Any, meta: Any) -> None:
        path = self.getPath()
        with open(path + ".tmp", "wb") as handle:
            handle.write(journal.dumps(meta))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)
        folder_of(path)

    journal.MetaStorer.storeMeta = store_meta

    def atomic_replace(source: str, destination: str) -> None:
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, destination)
        folder_of(destination)

    serializer.atomicReplace = atomic_replace
    _compact_atomically(folder_of)


def _compact_atomically(folder_of: Any) -> None:
    """Compaction that a power cut cannot tear: the shortened journal is written to a new
    file, synced and renamed over the old one, and at start-up a journal that still holds
    entries the dump covers is cut to where the dump ends instead of being thrown away."""

    def delete_entries_to(self: Any, entry_to: int) -> None:
        kept = self._FileJournal__journal[entry_to:]
        path = self._FileJournal__journalFile._ResizableFile__fileName
        staging = path + ".compacting"
        if os.path.exists(staging):
            os.remove(staging)
        fresh = type(self)(staging)
        for entry in kept:
            fresh.add(*entry)
        fresh.flush()
        offset = fresh._FileJournal__currentOffset
        fresh._destroy()
        self._FileJournal__journalFile._destroy()
        os.replace(staging, path)
        folder_of(path)
        self._FileJournal__journalFile = journal.ResizableFile(path)
        self._FileJournal__journal = list(kept)
        self._FileJournal__currentOffset = offset

    journal.FileJournal.deleteEntriesTo = delete_entries_to

    load_dump = syncobj.SyncObj._SyncObj__loadDumpFile

    def load_dump_file(self: Any, clearJournal: bool) -> Any:  # noqa: N803
        if not clearJournal:
            _cut_journal_to_dump(self._SyncObj__raftLog, self._SyncObj__serializer)
        return load_dump(self, clearJournal)

    syncobj.SyncObj._SyncObj__loadDumpFile = load_dump_file


def _cut_journal_to_dump(log: Any, dump: Any) -> None:
    """If the journal holds the dump's last two entries after others, drop those others, so
    that PySyncObj keeps the entries after the dump instead of clearing its journal."""
    try:
        _state, last, before_last, *_ = dump.deserialize()
    except Exception:  # no dump yet, or one PySyncObj will refuse itself
        return
    for position in range(1, len(log) - 1):
        if log[position][1] == before_last[1] and log[position] == before_last:
            if log[position + 1] == last:
                log.deleteEntriesTo(position)
            return


class CorruptJournal(Exception):
    """A journal record whose checksum does not match: the node refuses to start."""


CHECKSUM_SIZE = 4


class ChecksummedJournal(journal.FileJournal):  # type: ignore[misc]
    """A FileJournal whose records carry a CRC32 of their index, term and command, checked
    when the journal is read at start-up: a damaged record stops the node instead of being
    applied (PySyncObj's own journal has no checksum)."""

    def __init__(self, journalFile: str) -> None:  # noqa: N803
        super().__init__(journalFile)
        records = self._FileJournal__journal
        for position, (command, index, term) in enumerate(records):
            stored, body = command[:CHECKSUM_SIZE], command[CHECKSUM_SIZE:]
            if stored != _checksum(body, index, term):
                raise CorruptJournal(
                    f"journal {journalFile}: record {position} (log index {index}) fails its "
                    "checksum; refusing to start on a damaged log"
                )
            records[position] = (body, index, term)

    def add(self, command: bytes, idx: int, term: int) -> None:
        super().add(_checksum(command, idx, term) + command, idx, term)
        self._FileJournal__journal[-1] = (command, idx, term)


def _checksum(command: bytes, index: int, term: int) -> bytes:
    return zlib.crc32(f"{index}:{term}:".encode() + bytes(command)).to_bytes(CHECKSUM_SIZE, "big")


def checksum_the_journal() -> None:
    """Make this process's PySyncObj keep its log in a :class:`ChecksummedJournal`."""

    def create_journal(journalFile: str | None = None) -> Any:  # noqa: N803
        if journalFile is None:
            return journal.MemoryJournal()
        return ChecksummedJournal(journalFile)

    syncobj.createJournal = create_journal
