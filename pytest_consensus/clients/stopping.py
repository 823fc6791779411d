"""Stopping a run on Ctrl-C or SIGTERM: quickly, quietly, and with nothing left behind.

The first signal interrupts the test (SIGTERM is turned into the KeyboardInterrupt that
Ctrl-C raises, as `timeout`, CI cancellation and container stops send SIGTERM), and tells
every background thread of the harness (workload workers, pollers) to stop at once, so
pytest's teardown (nodes killed, namespaces and firewall rules removed) is not kept waiting
for load loops to reach their bounds. A second signal during that teardown does not
interrupt it (an interrupted teardown is what leaves namespaces behind): it prints one line
and the teardown goes on. A third gives up at once and leaves the rest to the next run's
sweep.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

_stop = threading.Event()
_signals_seen = 0
_previous: dict[int, Any] = {}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so pytest tears down."""


def stopping() -> bool:
    """True once the run was told to stop: background loops return at their next step."""
    return _stop.is_set()


def wait(seconds: float) -> bool:
    """Sleep up to ``seconds``; True if the run is stopping (the caller should return)."""
    return _stop.wait(seconds)


def _first_signal(signum: int, frame: FrameType | None) -> None:
    """Interrupt the test where it is; from now on, signals wait for the teardown."""
    begin_teardown()
    if signum == signal.SIGTERM:
        raise Terminated("SIGTERM received: tearing down the run's clusters and networks")
    raise KeyboardInterrupt


def _while_tearing_down(signum: int, frame: FrameType | None) -> None:
    global _signals_seen
    _signals_seen += 1
    if _signals_seen == 1:
        sys.stderr.write(
            "\nconsensus: still removing this run's nodes and namespaces (a few seconds); "
            "press Ctrl-C once more to leave them to the next run\n"
        )
        return
    sys.stderr.write("\nconsensus: stopped; the next run removes what this one left\n")
    os._exit(130)


def install() -> None:
    """Handle Ctrl-C and SIGTERM (only where Python's defaults are in place: a signal the
    user ignored, or handles, stays as it is)."""
    global _signals_seen
    _stop.clear()
    _signals_seen = 0
    if threading.current_thread() is not threading.main_thread():
        return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    for number, default in defaults.items():
        if signal.getsignal(number) == default:
            _previous[number] = signal.signal(number, _first_signal)


def begin_teardown() -> None:
    """The run is stopping: background threads stop, and further signals neither
    interrupt the teardown nor go unanswered."""
    _stop.set()
    if threading.current_thread() is not threading.main_thread():
        return
    for number in list(_previous):
        signal.signal(number, _while_tearing_down)


def uninstall() -> None:
    """Put back the handlers this module replaced (pytest runs in-process in pytester)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number, handler in _previous.items():
        signal.signal(number, handler)
    _previous.clear()
