"""The lossy filesystem: a FUSE filesystem over :class:`~.disk_model.DiskModel`, one per node.

Run as ``python -m pytest_consensus.hosts.lossyfs BACKING MOUNTPOINT`` (in the foreground;
the harness starts it, waits for the mount, and kills it for a power cut). Everything a
process writes is served back at once, but reaches ``BACKING`` only when it is synced, so
killing this process and mounting ``BACKING`` again leaves exactly what was synced. The
kernel's page cache of the mount goes with the mount, so nothing survives through it.

Needs ``/dev/fuse``, libfuse 3 (Debian ``fuse3``) and the ``mfusepy`` package (ctypes, no
compiler); docs/faults.md ("Power loss") says why this design and what it costs.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pytest_consensus.hosts.disk_model import DiskModel, Inode, fs_error

#: fallocate modes this filesystem serves: 0 (grow the file) and FALLOC_FL_KEEP_SIZE.
FALLOC_FL_KEEP_SIZE = 1
SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


def _operations_base() -> type:
    import mfusepy

    return mfusepy.Operations  # type: ignore[no-any-return]


class LossyFilesystem(_operations_base()):  # type: ignore[misc]
    """Path-based FUSE operations; open files are handles to inodes, so a file unlinked
    while open (``hard_remove``) stays readable through its handle."""

    use_ns = True

    def __init__(self, model: DiskModel) -> None:
        self.model = model
        self.handles: dict[int, tuple[Inode, int]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------
    def _handle(self, inode: Inode, flags: int) -> int:
        with self._lock:
            number = next(self._numbers)
            self.handles[number] = (inode, flags)
            return number

    def _by_handle(self, fh: int | None, path: str | None) -> Inode:
        if fh is not None and fh in self.handles:
            return self.handles[fh][0]
        if path is None:
            raise fs_error(errno.EBADF)
        return self.model.lookup(path)

    def _attributes(self, inode: Inode) -> dict[str, Any]:
        nanoseconds = int(inode.mtime * 1e9)
        kind = stat.S_IFDIR if inode.is_dir else stat.S_IFREG
        return {
            "st_mode": kind | stat.S_IMODE(inode.mode),
            "st_ino": inode.number,
            "st_nlink": 2 if inode.is_dir else 1,
            "st_size": 4096 if inode.is_dir else inode.size,
            "st_blocks": (inode.size + 511) // 512,
            "st_atime": nanoseconds,
            "st_mtime": nanoseconds,
            "st_ctime": nanoseconds,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
        }

    # -- attributes and the namespace ----------------------------------------------------
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self.model.lock:
            return self._attributes(self._by_handle(fh, path))

    def readdir(self, path: str, fh: int) -> list[str]:
        with self.model.lock:
            inode = self.model.lookup(path)
            return [".", "..", *inode.entries]

    def mkdir(self, path: str, mode: int) -> int:
        self.model.create(path, mode, is_dir=True)
        return 0

    def rmdir(self, path: str) -> int:
        self.model.unlink(path, directory=True)
        return 0

    def unlink(self, path: str) -> int:
        self.model.unlink(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.model.rename(old, new)
        return 0

    def link(self, target: str, source: str) -> int:
        # mfusepy passes (new name, existing file), as fusepy always has.
        self.model.link(source, target)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        with self.model.lock:
            inode = self.model.lookup(path or "/")
            inode.mode = stat.S_IFMT(inode.mode) | stat.S_IMODE(mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        found = os.statvfs(self.model.backing)
        fields = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files")
        return {name: getattr(found, name) for name in (*fields, "f_ffree", "f_namemax")}

    # -- files -----------------------------------------------------------------------------
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        inode = self.model.create(path, mode)
        return self._handle(inode, 0)

    def open(self, path: str, flags: int) -> int:
        inode = self.model.lookup(path)
        return self._handle(inode, flags)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return self.model.read(self._by_handle(fh, path), size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        inode = self._by_handle(fh, path)
        written = self.model.write(inode, data, offset)
        if self.handles.get(fh, (inode, 0))[1] & SYNC_FLAGS:
            self.model.sync_file(inode)
        return written

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        self.model.truncate(self._by_handle(fh, path), length)
        return 0

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        if mode & ~FALLOC_FL_KEEP_SIZE:
            raise fs_error(errno.EOPNOTSUPP)
        if not mode & FALLOC_FL_KEEP_SIZE:
            self.model.allocate(self._by_handle(fh, path), offset, size)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        self.model.sync_file(self._by_handle(fh, path))
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        with self.model.lock:
            inode = self.model.lookup(path or "/")
        self.model.sync_directory(inode)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def release(self, path: str | None, fh: int) -> int:
        with self._lock:
            self.handles.pop(fh, None)
        return 0

    def opendir(self, path: str) -> int:
        return 0

    def releasedir(self, path: str, fh: int) -> int:
        return 0


#: The control channel: the harness writes a request file into the backing folder; this
#: process answers by renaming it to ``<request>.done`` once served.
CONTROL_REQUESTS = ("sync-all", "report")
CONTROL_INTERVAL = 0.02


def serve_control(model: DiskModel) -> None:
    """Serve the harness's requests: ``sync-all`` makes everything durable (the checkpoint
    after a cluster formed); ``report`` writes what a cut now would lose to
    ``unsynced.json`` (evidence, taken just before the harness cuts the power)."""
    while True:
        for request in CONTROL_REQUESTS:
            path = model.backing / request
            if not path.exists():
                continue
            if request == "sync-all":
                model.sync_all()
            else:
                (model.backing / "unsynced.json").write_text(json.dumps(model.unsynced()))
            path.replace(model.backing / f"{request}.done")
        time.sleep(CONTROL_INTERVAL)


def main(argv: list[str] | None = None) -> None:
    import mfusepy

    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 2:
        sys.exit("usage: python -m pytest_consensus.hosts.lossyfs BACKING MOUNTPOINT")
    backing, mountpoint = Path(arguments[0]).resolve(), str(Path(arguments[1]).resolve())
    model = DiskModel(backing)
    threading.Thread(target=serve_control, args=(model,), daemon=True).start()
    print(f"lossyfs: {mountpoint} over {backing}", flush=True)
    mfusepy.FUSE(
        LossyFilesystem(model),
        mountpoint,
        foreground=True,
        hard_remove=True,
        fsname="pytest-consensus-lossyfs",
        subtype="lossyfs",
    )


if __name__ == "__main__":
    main()
