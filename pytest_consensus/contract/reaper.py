"""One small process per run that kills the run's node processes if the run dies first.

A node that watches its parent (PySyncObj's, with ``--parent-pid``) exits when pytest is
killed; a store written in any other language would not, and would hold its ports and
data until someone found it. So every process :class:`NodeProcess` starts is registered
with the reaper: a child interpreter that reads ``+pid`` and ``-pid`` lines from a pipe and,
when the pipe closes (the kernel closes it when this process exits, however it exits), kills
the process group of every pid still registered. A node runs in a session of its own, so its
group is the node and whatever it started. A run that ends normally has stopped its nodes
already and unregistered them; the reaper then just exits.

A reaper rather than a parent-death signal: ``PR_SET_PDEATHSIG`` fires when the *thread*
that started the process ends, and nodes are restarted from fault and test threads.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import IO

_REAPER = r"""
import os, signal, sys
registered = set()
for line in sys.stdin.buffer:
    line = line.strip()
    if line[:1] == b"+":
        registered.add(int(line[1:]))
    elif line[:1] == b"-":
        registered.discard(int(line[1:]))
for pid in registered:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_reaper: subprocess.Popen[bytes] | None = None  # kept: a dropped Popen warns it still runs
_pipe: IO[bytes] | None = None


def _send(line: str) -> None:
    global _pipe, _reaper
    with _lock:
        if _pipe is None:
            _reaper = reaper = subprocess.Popen(
                [sys.executable, "-c", _REAPER],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C reaches pytest, not the reaper
                close_fds=True,
            )
            assert reaper.stdin is not None
            _pipe = reaper.stdin
        try:
            _pipe.write(line.encode() + b"\n")
            _pipe.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reaper was killed: nodes still stop at teardown as before


def register(pid: int) -> None:
    """Kill ``pid``'s process group if this process dies before :func:`unregister`."""
    _send(f"+{pid}")


def unregister(pid: int) -> None:
    """The process was reaped here: its pid may be reused, so forget it."""
    _send(f"-{pid}")


__all__ = ["register", "unregister"]
