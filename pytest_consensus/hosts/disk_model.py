"""What a disk keeps across a power cut: the model behind the harness's lossy filesystem.

Two states live side by side. The *volatile* state is what processes see: every write,
create, rename and unlink as it happened. The *durable* state is what a power cut leaves:
a file's data and size as of its last ``fsync``/``fdatasync`` (``msync`` and
``O_SYNC``/``O_DSYNC`` writes reach here as fsyncs), and a directory's entries as of its
last ``fsync`` (POSIX: an fsync of a file does not make its name durable; creates, renames
and unlinks become durable when their directory is fsynced). The durable state is kept in
a backing folder (``meta.json`` for the directory tree, ``data/<inode>`` for file
contents), which the filesystem process writes only at those syncs: killing that process
and loading the folder again is the power cut. docs/faults.md, "Power loss", says more.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = 4096
ROOT = 1
META_FILE = "meta.json"
DATA_DIR = "data"


def fs_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@dataclass
class Inode:
    """A file or directory. Files keep their unsynced pages here (``dirty``); what is not
    dirty is read from the durable copy, except above ``zero_from``, where a truncation
    since the last sync cut the durable bytes off."""

    number: int
    is_dir: bool
    mode: int
    entries: dict[str, int] = field(default_factory=dict)
    size: int = 0
    durable_size: int = 0
    dirty: dict[int, bytearray] = field(default_factory=dict)
    zero_from: int | None = None
    mtime: float = field(default_factory=time.time)


class DiskModel:
    """The volatile and durable states of one node's disk, kept in ``backing``.

    Thread-safe: one lock around every operation (the filesystem serves several threads).
    Paths are absolute within the disk (``/member/wal/0.wal``)."""

    def __init__(self, backing: Path) -> None:
        self.backing = backing
        self.data_dir = backing / DATA_DIR
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.inodes: dict[int, Inode] = {}
        #: Directory entries as of each directory's last fsync, and what each durable inode is.
        self.durable_entries: dict[int, dict[str, int]] = {}
        self.durable_kinds: dict[int, tuple[bool, int]] = {}
        self.next_inode = ROOT + 1
        self._load()

    # -- loading what survived -------------------------------------------------------------
    def _load(self) -> None:
        meta_path = self.backing / META_FILE
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            self.next_inode = int(meta["next"])
            self.durable_entries = {int(k): dict(v) for k, v in meta["dirs"].items()}
            self.durable_kinds = {int(k): (bool(v[0]), int(v[1])) for k, v in meta["kinds"].items()}
        self.durable_kinds.setdefault(ROOT, (True, 0o755 | stat.S_IFDIR))
        self.durable_entries.setdefault(ROOT, {})
        reachable = self._reachable()
        for number in reachable:
            is_dir, mode = self.durable_kinds[number]
            inode = Inode(number, is_dir, mode)
            if is_dir:
                inode.entries = dict(self.durable_entries.get(number, {}))
            else:
                path = self._data_path(number)
                inode.size = inode.durable_size = path.stat().st_size if path.exists() else 0
            self.inodes[number] = inode
        for path in self.data_dir.iterdir():  # data of files whose names did not survive
            if not path.name.isdigit() or int(path.name) not in reachable:
                path.unlink()

    def _reachable(self) -> set[int]:
        seen, pending = set(), [ROOT]
        while pending:
            number = pending.pop()
            if number in seen or number not in self.durable_kinds:
                continue
            seen.add(number)
            if self.durable_kinds[number][0]:
                pending.extend(self.durable_entries.get(number, {}).values())
        return seen

    def _data_path(self, number: int) -> Path:
        return self.data_dir / str(number)

    def _write_meta(self) -> None:
        reachable = self._reachable()
        meta = {
            "next": self.next_inode,
            "dirs": {str(k): v for k, v in self.durable_entries.items() if k in reachable},
            "kinds": {str(k): list(v) for k, v in self.durable_kinds.items() if k in reachable},
        }
        temporary = self.backing / (META_FILE + ".new")
        temporary.write_text(json.dumps(meta))
        temporary.replace(self.backing / META_FILE)

    # -- looking things up -----------------------------------------------------------------
    def lookup(self, path: str) -> Inode:
        inode = self.inodes[ROOT]
        for part in _parts(path):
            if not inode.is_dir:
                raise fs_error(errno.ENOTDIR)
            number = inode.entries.get(part)
            if number is None:
                raise fs_error(errno.ENOENT)
            inode = self.inodes[number]
        return inode

    def _parent(self, path: str) -> tuple[Inode, str]:
        parts = _parts(path)
        if not parts:
            raise fs_error(errno.EEXIST)
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not parent.is_dir:
            raise fs_error(errno.ENOTDIR)
        return parent, parts[-1]

    # -- the namespace ---------------------------------------------------------------------
    def create(self, path: str, mode: int, is_dir: bool = False) -> Inode:
        with self.lock:
            parent, name = self._parent(path)
            if name in parent.entries:
                raise fs_error(errno.EEXIST)
            inode = Inode(self.next_inode, is_dir, mode)
            self.next_inode += 1
            self.inodes[inode.number] = inode
            parent.entries[name] = inode.number
            parent.mtime = time.time()
            return inode

    def unlink(self, path: str, *, directory: bool = False) -> None:
        with self.lock:
            parent, name = self._parent(path)
            number = parent.entries.get(name)
            if number is None:
                raise fs_error(errno.ENOENT)
            inode = self.inodes[number]
            if directory and not inode.is_dir:
                raise fs_error(errno.ENOTDIR)
            if not directory and inode.is_dir:
                raise fs_error(errno.EISDIR)
            if directory and inode.entries:
                raise fs_error(errno.ENOTEMPTY)
            del parent.entries[name]
            parent.mtime = time.time()

    def rename(self, old: str, new: str) -> None:
        with self.lock:
            old_parent, old_name = self._parent(old)
            number = old_parent.entries.get(old_name)
            if number is None:
                raise fs_error(errno.ENOENT)
            new_parent, new_name = self._parent(new)
            replaced = new_parent.entries.get(new_name)
            if replaced is not None and replaced != number:
                target = self.inodes[replaced]
                if target.is_dir and target.entries:
                    raise fs_error(errno.ENOTEMPTY)
                if target.is_dir != self.inodes[number].is_dir:
                    raise fs_error(errno.EISDIR if target.is_dir else errno.ENOTDIR)
            del old_parent.entries[old_name]
            new_parent.entries[new_name] = number
            old_parent.mtime = new_parent.mtime = time.time()

    def link(self, target: str, name: str) -> None:
        with self.lock:
            inode = self.lookup(target)
            if inode.is_dir:
                raise fs_error(errno.EPERM)
            parent, entry = self._parent(name)
            if entry in parent.entries:
                raise fs_error(errno.EEXIST)
            parent.entries[entry] = inode.number

    # -- file contents ---------------------------------------------------------------------
    def _durable_page(self, inode: Inode, page: int) -> bytearray:
        """The page as the durable copy has it, with what a truncation cut off zeroed."""
        start = page * PAGE
        content = bytearray(PAGE)
        if start < inode.durable_size:
            with open(self._data_path(inode.number), "rb") as handle:
                handle.seek(start)
                chunk = handle.read(min(PAGE, inode.durable_size - start))
            content[: len(chunk)] = chunk
        if inode.zero_from is not None and inode.zero_from < start + PAGE:
            cut = max(0, inode.zero_from - start)
            content[cut:] = bytes(PAGE - cut)
        return content

    def read(self, inode: Inode, size: int, offset: int) -> bytes:
        with self.lock:
            end = min(offset + size, inode.size)
            out = bytearray()
            position = offset
            while position < end:
                page, within = divmod(position, PAGE)
                content = inode.dirty.get(page)
                if content is None:
                    content = self._durable_page(inode, page)
                take = min(PAGE - within, end - position)
                out += content[within : within + take]
                position += take
            return bytes(out)

    def write(self, inode: Inode, data: bytes, offset: int) -> int:
        with self.lock:
            position, view = offset, memoryview(data)
            while view:
                page, within = divmod(position, PAGE)
                content = inode.dirty.get(page)
                if content is None:
                    content = inode.dirty[page] = self._durable_page(inode, page)
                take = min(PAGE - within, len(view))
                content[within : within + take] = view[:take]
                view = view[take:]
                position += take
            inode.size = max(inode.size, offset + len(data))
            inode.mtime = time.time()
            return len(data)

    def truncate(self, inode: Inode, length: int) -> None:
        with self.lock:
            if inode.is_dir:
                raise fs_error(errno.EISDIR)
            if length < inode.size:
                last_page, within = divmod(length, PAGE)
                for page in [
                    p for p in inode.dirty if p > last_page or (p == last_page and not within)
                ]:
                    del inode.dirty[page]
                if within and last_page in inode.dirty:
                    inode.dirty[last_page][within:] = bytes(PAGE - within)
                if length < inode.durable_size:
                    inode.zero_from = (
                        length if inode.zero_from is None else min(inode.zero_from, length)
                    )
            inode.size = length
            inode.mtime = time.time()

    def allocate(self, inode: Inode, offset: int, length: int) -> None:
        """fallocate mode 0: the file grows to cover the range, with zeros."""
        with self.lock:
            if offset + length > inode.size:
                self.truncate(inode, offset + length)

    # -- making things durable -------------------------------------------------------------
    def sync_file(self, inode: Inode) -> None:
        """fsync/fdatasync: the file's data and size become what a power cut keeps."""
        with self.lock:
            if inode.is_dir:
                self.sync_directory(inode)
                return
            path = self._data_path(inode.number)
            with open(path, "r+b" if path.exists() else "w+b") as handle:
                if inode.zero_from is not None and inode.zero_from < inode.durable_size:
                    handle.truncate(inode.zero_from)
                handle.truncate(inode.size)
                for page in sorted(inode.dirty):
                    start = page * PAGE
                    if start >= inode.size:
                        continue
                    handle.seek(start)
                    handle.write(inode.dirty[page][: min(PAGE, inode.size - start)])
            inode.dirty.clear()
            inode.zero_from = None
            inode.durable_size = inode.size
            known = self.durable_kinds.get(inode.number)
            if known is not None and known[1] != inode.mode:
                self.durable_kinds[inode.number] = (False, inode.mode)
                self._write_meta()

    def sync_directory(self, inode: Inode) -> None:
        """fsync of a directory: its entries (creates, renames, unlinks in it) become what a
        power cut keeps. A new child comes back as it was last synced (a file never synced
        comes back empty, a directory never synced comes back empty)."""
        with self.lock:
            self._record_entries(inode)
            self._write_meta()

    def _record_entries(self, inode: Inode) -> None:
        """Make a directory's entries the durable ones, in memory (``_write_meta`` stores)."""
        self.durable_entries[inode.number] = dict(inode.entries)
        self.durable_kinds[inode.number] = (True, inode.mode)
        for number in inode.entries.values():
            child = self.inodes[number]
            if number not in self.durable_kinds:
                self.durable_kinds[number] = (child.is_dir, child.mode)
                if child.is_dir:
                    self.durable_entries.setdefault(number, {})

    def sync_all(self) -> None:
        """Everything becomes durable, as ``sync(2)`` would make it (the harness's checkpoint
        after a cluster has formed); the directory tree is stored once, at the end."""
        with self.lock:
            for _, inode in self._everything():
                if inode.is_dir:
                    self._record_entries(inode)
                else:
                    self.sync_file(inode)
            self._write_meta()

    # -- what the tests and the harness look at --------------------------------------------
    def unsynced(self) -> dict[str, list[str]]:
        """What a power cut now would lose: names whose directory was not synced since they
        changed, and files with unsynced bytes (the evidence of a cut)."""
        with self.lock:
            report: dict[str, list[str]] = {"names": [], "data": []}
            for path, inode in self._everything():
                if inode.is_dir:
                    durable = self.durable_entries.get(inode.number, {})
                    base = path.rstrip("/")
                    for name, number in sorted(inode.entries.items()):
                        if durable.get(name) != number:
                            report["names"].append(f"{base}/{name} (created or renamed)")
                    for name in sorted(set(durable) - set(inode.entries)):
                        report["names"].append(f"{base}/{name} (removed or renamed away)")
                elif inode.dirty or inode.size != inode.durable_size:
                    report["data"].append(
                        f"{path}: {len(inode.dirty)} unsynced page(s), size {inode.size} "
                        f"(synced: {inode.durable_size})"
                    )
            return report

    def _everything(self) -> list[tuple[str, Inode]]:
        """The root and every inode reachable from it, with their paths."""
        return [("/", self.inodes[ROOT]), *self.walk()]

    def walk(self, number: int = ROOT, prefix: str = "") -> list[tuple[str, Inode]]:
        inode = self.inodes[number]
        found = []
        for name, child in sorted(inode.entries.items()):
            path = f"{prefix}/{name}"
            found.append((path, self.inodes[child]))
            if self.inodes[child].is_dir:
                found += self.walk(child, path)
        return found


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]
