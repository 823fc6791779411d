"""The event record every history is made of, apart from the recording machinery, so the
checkers (and ``consensus-check``) import it without the adapter contract and its clients."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

EventType = Literal["invoke", "ok", "fail", "info"]
NEMESIS = "nemesis"


@dataclass(frozen=True)
class Event:
    index: int
    time: float
    process: int | str
    type: EventType
    f: str
    key: str | None = None
    value: Any = None
    node: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(", ", ": "))


_new = object.__new__
_set_attribute = object.__setattr__


def event_of_fields(fields: dict[str, Any]) -> Event:
    """The Event whose attributes are ``fields`` itself, which must hold exactly Event's
    fields, already checked: no copy, and none of the frozen dataclass's per-field
    ``object.__setattr__`` in ``__init__``, which was most of the time of reading a
    200,000-event history. The event stays frozen."""
    event = _new(Event)
    _set_attribute(event, "__dict__", fields)
    return event


def new_event(
    index: int,
    time: float,
    process: int | str,
    type_: EventType,
    f: str,
    key: str | None,
    value: Any,
    node: str | None,
    error: str | None,
) -> Event:
    """An Event from fields already checked, about three times faster than ``Event(...)``."""
    return event_of_fields(
        {
            "index": index,
            "time": time,
            "process": process,
            "type": type_,
            "f": f,
            "key": key,
            "value": value,
            "node": node,
            "error": error,
        }
    )


@dataclass
class EventColumns:
    """A history's events held as one list per field, all of one length: how the file
    readers produce a history, since a whole column is converted and checked at once, and
    how operations are paired from it without an Event object per line."""

    index: list[int]
    time: list[float]
    process: list[int | str]
    type: list[EventType]
    f: list[str]
    key: list[str | None]
    value: list[Any]
    node: list[str | None]
    error: list[str | None]

    FIELDS: ClassVar[tuple[str, ...]] = (
        "index",
        "time",
        "process",
        "type",
        "f",
        "key",
        "value",
        "node",
        "error",
    )

    def __len__(self) -> int:
        return len(self.index)

    def events(self) -> list[Event]:
        """The Event of every row, in order."""
        return [
            new_event(*row)
            for row in zip(
                self.index,
                self.time,
                self.process,
                self.type,
                self.f,
                self.key,
                self.value,
                self.node,
                self.error,
                strict=True,
            )
        ]

    @classmethod
    def of_events(cls, events: Sequence[Event]) -> EventColumns:
        return cls(
            [event.index for event in events],
            [event.time for event in events],
            [event.process for event in events],
            [event.type for event in events],
            [event.f for event in events],
            [event.key for event in events],
            [event.value for event in events],
            [event.node for event in events],
            [event.error for event in events],
        )


__all__ = ["NEMESIS", "Event", "EventColumns", "EventType", "event_of_fields", "new_event"]
