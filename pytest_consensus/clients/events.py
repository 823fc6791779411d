"""The event record every history is made of, apart from the recording machinery, so the
checkers (and ``consensus-check``) import it without the adapter contract and its clients."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

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


__all__ = ["NEMESIS", "Event", "EventType"]
