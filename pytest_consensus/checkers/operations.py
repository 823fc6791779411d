"""Pairing a history's events into operations: an invocation and its completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_consensus.clients.events import NEMESIS, Event

Status = Literal["ok", "fail", "info"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation. ``call`` and ``ret`` are positions in the event list; ``ret``
    is None when the outcome is unknown (``info``, or never completed), which means the
    operation may take effect at any time after its call, or never."""

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

    def __init__(self, problem: str, event: Event, position: int) -> None:
        super().__init__(f"event {event.index}: {problem}")
        self.problem = problem
        self.position = position


def pair_operations(events: Sequence[Event]) -> list[Operation]:
    """Pair each invoke with the next completion of the same process, in event order.

    Nemesis events are skipped. An invocation never completed counts as ``info``.
    """
    open_calls: dict[Any, tuple[int, Event]] = {}
    completed: list[tuple[int, Event, int | None, Event | None]] = []
    for position, event in enumerate(events):
        if event.process == NEMESIS:
            continue
        if event.type == "invoke":
            if event.process in open_calls:
                raise HistoryError(
                    f"process {event.process} invokes {event.f} while its "
                    f"{open_calls[event.process][1].f} is still open",
                    event,
                    position,
                )
            open_calls[event.process] = (position, event)
            continue
        opened = open_calls.pop(event.process, None)
        if opened is None:
            raise HistoryError(
                f"{event.type} {event.f} by process {event.process} has no invocation",
                event,
                position,
            )
        call_position, invocation = opened
        if invocation.f != event.f:
            raise HistoryError(
                f"process {event.process} completes {event.f} but invoked {invocation.f}",
                event,
                position,
            )
        completed.append((call_position, invocation, position, event))
    for call_position, invocation in open_calls.values():
        completed.append((call_position, invocation, None, None))
    completed.sort(key=lambda item: item[0])
    operations = []
    for number, (call_position, invocation, ret_position, completion) in enumerate(completed):
        status: Status = "info" if completion is None else completion.type  # type: ignore[assignment]
        unknown = status == "info"
        operations.append(
            Operation(
                id=number,
                process=invocation.process,
                f=invocation.f,
                key=invocation.key,
                value=invocation.value,
                output=None if completion is None else completion.value,
                status=status,
                call=call_position,
                ret=None if unknown else ret_position,
                error=None if completion is None else completion.error,
            )
        )
    return operations
