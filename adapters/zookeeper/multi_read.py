"""Many ``getData`` calls in one request: ZooKeeper's read-only ``multi`` (``multiRead``).

Reading every key of a member is how the suite checks it after a crash or a power cut, and
ZooKeeper's digest here is such a read. Through kazoo's ``get_async`` a read costs about
0.2 ms of client CPU (20 thousand keys: 3.5 s, and the test process reads three members at
once), almost all of it per-request bookkeeping. ZooKeeper 3.6 and later answer a list of
reads in one request (opcode 22, ``multiRead``; each read is answered on its own, not as one
transaction): the same 20 thousand keys take about 0.1 s. kazoo has no call for it, so the
request is a kazoo request record (``type``, ``serialize``, ``deserialize``, as its own
``Transaction`` is) handed to the client's request queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from kazoo.client import KazooClient
from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import GetData, int_struct, multiheader_struct, stat_struct

#: ZooKeeper's opcode for a multi of reads (``ZooDefs.OpCode.multiRead``, 3.6.0 and later).
MULTI_READ = 22
#: A multi's terminating header: type -1, done, error -1.
_END: bytes = multiheader_struct.pack(-1, True, -1)
#: ``MultiHeader`` type of a failed operation's result (an error code follows).
_ERROR = -1


@dataclass(frozen=True)
class MultiRead:
    """The request: one ``getData`` (no watch) per path, answered in order."""

    paths: Sequence[str]

    type: ClassVar[int] = MULTI_READ

    def serialize(self) -> bytearray:
        request = bytearray()
        for path in self.paths:
            request += multiheader_struct.pack(GetData.type, False, -1)
            request += GetData(path, False).serialize()
        return request + _END

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> list[bytes | None | Exception]:
        """Per path its data (None for a znode without data), or the exception kazoo raises
        for that path's error (``NoNodeError`` for a key deleted since it was listed)."""
        results: list[bytes | None | Exception] = []
        while True:
            kind, done, _ = multiheader_struct.unpack_from(buffer, offset)
            offset += multiheader_struct.size
            if done:
                return results
            (value,) = int_struct.unpack_from(buffer, offset)
            offset += int_struct.size
            if kind == _ERROR:
                results.append(EXCEPTIONS[value]())
            elif kind == GetData.type:
                if value < 0:  # a buffer's length, -1 for none
                    results.append(None)
                else:
                    results.append(bytes(buffer[offset : offset + value]))
                    offset += value
                offset += stat_struct.size
            else:
                raise ValueError(f"multiRead answered an operation of type {kind}")


def send_multi_read(kazoo: KazooClient, paths: Sequence[str]) -> object:
    """Queue one multiRead of ``paths`` on ``kazoo``'s session; the returned async result
    gives :meth:`MultiRead.deserialize`'s list, or raises the call's error (the session's,
    or ``UnimplementedError`` from a server before 3.6)."""
    result = kazoo.handler.async_result()
    kazoo._call(MultiRead([kazoo.chroot + path for path in paths]), result)
    return result
