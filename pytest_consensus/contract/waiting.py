"""Polling instead of sleeping: wait for a condition with a deadline and say what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """A condition the harness waited for did not come true in time.

    Not a HarnessError: what is awaited is the store's doing (a leader, replicas catching
    up), with generous timeouts, so a store that never gets there fails the test.
    """


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns something other than None (or falsy) and return it.

    Exceptions listed in ``ignore`` count as "not yet"; the last one is quoted if the
    deadline passes, so the error says why the condition never held.
    """
    deadline = time.monotonic() + timeout
    last_problem = "the condition never held"
    while True:
        try:
            result = probe()
            if result:
                return result
        except ignore as error:
            last_problem = f"last error: {error}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what} ({last_problem})")
        time.sleep(interval)
