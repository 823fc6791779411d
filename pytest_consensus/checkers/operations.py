"""Pairing a history's events into operations: an invocation and its completion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from pytest_consensus.clients.events import NEMESIS, Event, EventColumns

Status = Literal["ok", "fail", "info"]


class Operation(NamedTuple):
    """One client operation. ``call`` and ``ret`` are positions in the event list; ``ret``
    is None when the outcome is unknown (``info``, or never completed), which means the
    operation may take effect at any time after its call, or never.

    A named tuple rather than a frozen dataclass: a history of 100,000 operations builds
    them about five times faster (a frozen dataclass sets each field through
    ``object.__setattr__``), and reading a field costs the same."""

    id: int
    process: int | str
    f: str
    key: Any
    value: Any  # the invocation's value (what was written; a cas's [expected, new])
    output: Any  # the completion's value (what was read)
    status: Status
    call: int
    ret: int | None
    error: str | None = None

    def describe(self) -> str:
        shown = self.value if self.f not in ("get", "read") else self.output
        key = "" if self.key is None else f" {self.key}"
        result = {"ok": "", "fail": " (failed)", "info": " (unknown outcome)"}[self.status]
        return f"p{self.process} {self.f}{key} {shown!r}{result}"


class HistoryError(ValueError):
    """Events that cannot be paired (a completion with no invocation, two open at once).

    ``position`` is the offending event's place in the list, so a reader of a file can name
    its line; the message alone names the event's index."""

    def __init__(self, problem: str, index: int, position: int) -> None:
        super().__init__(f"event {index}: {problem}")
        self.problem = problem
        self.position = position


def pair_operations(events: Sequence[Event]) -> list[Operation]:
    """Pair each invoke with the next completion of the same process, in event order.

    Nemesis events are skipped. An invocation never completed counts as ``info``.
    """
    return pair_columns(EventColumns.of_events(events))


def pair_columns(columns: EventColumns) -> list[Operation]:
    """:func:`pair_operations` over a history held a list per field, as the file readers
    give it: one pass over processes and types, then each operation built as a tuple."""
    calls, returns = _pairs(columns)
    processes, types, fs = columns.process, columns.type, columns.f
    keys, values, errors = columns.key, columns.value, columns.error
    make = tuple.__new__
    operations: list[Operation] = []
    append = operations.append
    for number, (call, ret) in enumerate(zip(calls, returns, strict=True)):
        if ret is None:  # never completed: unknown outcome
            output, status, error = None, "info", None
        else:
            output, status, error = values[ret], types[ret], errors[ret]
        append(
            make(
                Operation,
                (
                    number,
                    processes[call],
                    fs[call],
                    keys[call],
                    values[call],
                    output,
                    status,
                    call,
                    None if status == "info" else ret,
                    error,
                ),
            )
        )
    return operations


def _pairs(columns: EventColumns) -> tuple[list[int], list[int | None]]:
    """Calls and returns event by event; raises HistoryError at the first event that
    cannot be paired."""
    processes, types, fs = columns.process, columns.type, columns.f
    calls: list[int] = []  # by operation, in call order: the invocation's position
    returns: list[int | None] = []  # the completion's position, None while open
    open_calls: dict[Any, int] = {}  # process -> its open operation
    for position, (process, type_) in enumerate(zip(processes, types, strict=True)):
        if process == NEMESIS:
            continue
        if type_ == "invoke":
            opened = open_calls.get(process)
            if opened is not None:
                raise HistoryError(
                    f"process {process} invokes {fs[position]} while its "
                    f"{fs[calls[opened]]} is still open",
                    columns.index[position],
                    position,
                )
            open_calls[process] = len(calls)
            calls.append(position)
            returns.append(None)
            continue
        opened = open_calls.pop(process, None)
        if opened is None:
            raise HistoryError(
                f"{type_} {fs[position]} by process {process} has no invocation",
                columns.index[position],
                position,
            )
        if fs[calls[opened]] != fs[position]:
            raise HistoryError(
                f"process {process} completes {fs[position]} but invoked {fs[calls[opened]]}",
                columns.index[position],
                position,
            )
        returns[opened] = position
    return calls, returns
