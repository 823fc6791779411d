"""Recording every client operation as invoke / ok / fail / info events.

One JSON Lines record per event, the format the checkers read:
``{"index": 0, "time": 12.034, "process": 3, "type": "invoke", "f": "cas", "key": "k1",
"value": ["a", "b"], "node": "n2", "error": null}``. ``time`` is seconds on a monotonic
clock since the history began; a completion repeats its invocation's process, f and key.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Re-exported: histories and their events are imported from here across the project.
from pytest_consensus.clients.events import NEMESIS as NEMESIS
from pytest_consensus.clients.events import Event as Event
from pytest_consensus.clients.events import EventType as EventType
from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.contract.errors import CapabilityMissing, ConsensusError, UnknownError


class History:
    """A thread-safe, append-only list of events with process ids handed out in order."""

    _latest: weakref.ref[History] | None = None

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._origin = time.monotonic()
        self._processes = itertools.count()
        self._completed: Counter[str] = Counter()
        self._last_nemesis: Event | None = None
        History._latest = weakref.ref(self)

    @classmethod
    def latest(cls) -> History | None:
        """The history created last, if still alive: the one a test is recording now (for
        live progress, which has no other way to find histories tests make themselves)."""
        return cls._latest() if cls._latest is not None else None

    def last_nemesis(self) -> Event | None:
        """The latest fault or heal recorded, if any."""
        with self._lock:
            return self._last_nemesis

    def completed(self) -> dict[str, int]:
        """Client operations completed so far, by outcome (ok, fail, info)."""
        with self._lock:
            return dict(self._completed)

    @property
    def origin(self) -> float:
        """The monotonic clock reading that event times count from."""
        return self._origin

    def now(self) -> float:
        """Seconds since the history began, as event times count them."""
        return time.monotonic() - self._origin

    def new_process(self) -> int:
        """A fresh process id: one per client, and a new one after every indefinite result."""
        with self._lock:
            return next(self._processes)

    def record(self, process: int | str, type_: EventType, f: str, **fields: Any) -> Event:
        with self._lock:
            event = Event(
                index=len(self._events),
                time=round(time.monotonic() - self._origin, 6),
                process=process,
                type=type_,
                f=f,
                **fields,
            )
            self._events.append(event)
            if process == NEMESIS:
                self._last_nemesis = event
            elif type_ != "invoke":
                self._completed[type_] += 1
            return event

    def nemesis(self, f: str, value: Any = None) -> Event:
        """Record a fault (or its healing) between the client operations."""
        return self.record(NEMESIS, "info", f, value=value)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def completions(self, type_: EventType | None = None) -> list[Event]:
        """Completion events (not invocations or nemesis), optionally of one type."""
        return [
            event
            for event in self.events
            if event.type != "invoke"
            and event.process != NEMESIS
            and (type_ is None or event.type == type_)
        ]

    def write_jsonl(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_events(self.events, path)
        return path


def read_jsonl(path: Path) -> list[Event]:
    """Read a JSON Lines history; a malformed line is an error naming the file and line."""
    events = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                events.append(Event(**json.loads(line)))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a history event: {error}") from error
    return events


def write_events(events: Iterable[Event], path: Path) -> None:
    with open(path, "w") as handle:
        for event in events:
            handle.write(event.to_json() + "\n")


class RecordingClient(Client):
    """Wraps an adapter's client so every call lands in the history, then passes it on.

    Definite failures are recorded as ``fail``, indefinite ones as ``info`` (after which
    the client continues as a new process, as in Jepsen: the old one may still be
    pending). An exception outside the taxonomy is an adapter bug; it is recorded as
    ``info`` and re-raised as :class:`UnknownError` naming what the adapter raised.
    """

    def __init__(self, inner: Client, history: History) -> None:
        self.inner = inner
        self.node = inner.node
        self.history = history
        self.process = history.new_process()

    def _call(self, f: str, key: str, value: Any, action: Any) -> Any:
        process = self.process
        self.history.record(process, "invoke", f, key=key, value=value, node=self.node)
        try:
            result = action()
        except ConsensusError as error:
            outcome: EventType = "fail" if error.definite else "info"
            message = f"{error.kind}: {error}"
            self.history.record(
                process, outcome, f, key=key, value=value, node=self.node, error=message
            )
            if not error.definite:
                self.process = self.history.new_process()
            raise
        except CapabilityMissing as missing:
            self.history.record(
                process,
                "fail",
                f,
                key=key,
                value=value,
                node=self.node,
                error=f"capability-missing: {missing}",
            )
            raise
        except Exception as error:
            message = f"adapter raised {type(error).__name__}: {error}"
            self.history.record(
                process, "info", f, key=key, value=value, node=self.node, error=message
            )
            self.process = self.history.new_process()
            raise UnknownError(
                f"{message} (adapters must raise pytest_consensus.contract.errors)"
            ) from error
        return result

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        self._call(
            "put",
            key,
            value,
            lambda: self.inner.put(key, value, timeout=timeout, request_id=request_id),
        )
        self._complete("ok", "put", key, value)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        f = "get" if ReadLevel(level) is ReadLevel.STRONG else "stale-get"
        value: str | None = self._call(
            f, key, None, lambda: self.inner.get(key, level=level, timeout=timeout)
        )
        self._complete("ok", f, key, value)
        return value

    def append(
        self, key: str, value: str, *, timeout: float, request_id: str | None = None
    ) -> None:
        self._call(
            "append",
            key,
            value,
            lambda: self.inner.append(key, value, timeout=timeout, request_id=request_id),
        )
        self._complete("ok", "append", key, value)

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        self._call(
            "delete",
            key,
            None,
            lambda: self.inner.delete(key, timeout=timeout, request_id=request_id),
        )
        self._complete("ok", "delete", key, None)

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        value = [expected, new]
        swapped = bool(
            self._call(
                "cas",
                key,
                value,
                lambda: self.inner.cas(key, expected, new, timeout=timeout, request_id=request_id),
            )
        )
        if swapped:
            self._complete("ok", "cas", key, value)
        else:
            self._complete("fail", "cas", key, value, error="mismatch")
        return swapped

    def _complete(
        self, type_: EventType, f: str, key: str, value: Any, error: str | None = None
    ) -> None:
        self.history.record(
            self.process, type_, f, key=key, value=value, node=self.node, error=error
        )

    def close(self) -> None:
        self.inner.close()
