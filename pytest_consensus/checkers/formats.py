"""Reading and writing histories: JSON Lines, Jepsen-style EDN, and the Jepsen log format.

Every reader returns :class:`~pytest_consensus.clients.history.Event` objects in file order and
raises :class:`HistoryFormatError` naming the file and line of anything it cannot read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from pytest_consensus.checkers import edn
from pytest_consensus.clients.events import NEMESIS, Event, EventType, event_of_fields, new_event

FORMATS = ("jsonl", "edn", "jepsen-log")
EVENT_TYPES = {"invoke", "ok", "fail", "info"}
JSONL_FIELDS = {"index", "time", "process", "type", "f", "key", "value", "node", "error"}
JEPSEN_LOG_LINE = re.compile(
    r"^\S+\s+jepsen\.util\s+-\s+(?P<process>\S+)\s+:(?P<type>\w+)\s+:(?P<f>[\w-]+)(?:\s+(?P<value>.*?))?\s*$"
)


class HistoryFormatError(ValueError):
    """A history file that cannot be read; the message names the file and line."""


def detect_format(path: Path, first_line: str) -> str:
    stripped = first_line.lstrip()
    if stripped.startswith("{:") or stripped.startswith("{ :"):
        return "edn"
    if stripped.startswith("{"):
        return "jsonl"
    if JEPSEN_LOG_LINE.match(first_line):
        return "jepsen-log"
    raise HistoryFormatError(
        f"{path}:1: cannot tell the format (not JSON Lines, EDN or a Jepsen log); "
        "pass --format jsonl|edn|jepsen-log"
    )


def read_history(path: Path, format: str = "auto") -> list[Event]:  # noqa: A002
    """Read a history file; ``format`` is one of FORMATS or ``auto`` (by the first line)."""
    return read_history_lines(path, format)[0]


def read_history_lines(
    path: Path,
    format: str = "auto",  # noqa: A002
) -> tuple[list[Event], list[int]]:
    """The events of a history file and the line each came from (for messages about them).

    A Jepsen log's lines always end with a value and a newline (Jepsen writes ``nil`` for
    none), so a last line without its newline was cut off: a value cut short (``12`` to
    ``1``) would still parse, as a different operation. JSON Lines and EDN events end with a
    closing brace, so a cut one never parses.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryFormatError(f"{path}: cannot read: {error}") from error
    # Lines end at "\n" only (a "\r" before it is whitespace to every reader): splitlines
    # would also break a line at a U+2028 or a form feed inside a string.
    lines = text.split("\n")
    content = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not content:
        return [], []
    if format == "auto":
        format = detect_format(path, content[0][1])
    parse = {"jsonl": _jsonl_event, "edn": _edn_event, "jepsen-log": _jepsen_log_event}.get(format)
    if parse is None:
        raise HistoryFormatError(
            f"unknown history format {format!r}; valid: auto, {', '.join(FORMATS)}"
        )
    if format == "jepsen-log" and not text.endswith("\n"):
        raise HistoryFormatError(
            f"{path}:{len(lines)}: the last line has no newline, so it may be cut off "
            "(Jepsen ends every line with one); check the file is complete"
        )
    events: list[Event] = []
    if format == "jsonl":
        events = _jsonl_events_at_once([line for _, line in content])
    elif format == "jepsen-log":
        events = _jepsen_log_events_at_once(text, len(content))
    elif format == "edn":
        events = _edn_events_at_once(text, content[0][1], len(content))
    if not events:
        for number, line in content:
            try:
                events.append(parse(line, len(events)))
            except (ValueError, TypeError, KeyError) as error:
                raise HistoryFormatError(f"{path}:{number}: {error}") from None
    return events, [number for number, _ in content]


def _check_type(type_: Any) -> EventType:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"event type {type_!r} is not one of invoke, ok, fail, info")
    return cast(EventType, str(type_))


def _jsonl_events_at_once(lines: list[str]) -> list[Event]:
    """Every line's event from one call of the C JSON decoder over the whole file; an empty
    list when any line is not exactly one valid event, so the line-by-line reader can name
    the line that is wrong."""
    try:
        records = json.loads("[" + ",".join(lines) + "]")
        if len(records) != len(lines):  # a line held two values ("{...}, {...}")
            return []
        return [_jsonl_record_event(record, position) for position, record in enumerate(records)]
    except (ValueError, TypeError, KeyError):
        return []


def _jsonl_event(line: str, position: int) -> Event:
    return _jsonl_record_event(json.loads(line), position)


def _jsonl_record_event(record: Any, position: int) -> Event:
    if type(record) is not dict:
        raise ValueError("a JSON Lines event must be an object")
    if not JSONL_FIELDS.issuperset(record):
        raise ValueError(f"unknown fields {sorted(set(record) - JSONL_FIELDS)}")
    return _checked_event(record, position)


_OPTIONAL_FIELDS = (("key", None), ("value", None), ("node", None), ("error", None))


def _checked_event(record: dict[str, Any], position: int) -> Event:
    """The Event whose fields are ``record`` itself, which must hold Event's fields only:
    checked and completed in place (see clients.events.event_of_fields)."""
    record["type"] = _check_type(record["type"])
    record["process"]  # noqa: B018 - required: a KeyError names it
    index = record.setdefault("index", position)
    if type(index) is not int:
        record["index"] = int(index)
    moment = record.setdefault("time", float(position))
    if type(moment) is not float:
        record["time"] = float(moment)
    f = record["f"]
    if type(f) is not str:
        record["f"] = str(f)
    if len(record) != len(JSONL_FIELDS):
        for name, default in _OPTIONAL_FIELDS:
            record.setdefault(name, default)
    return event_of_fields(record)


def _plain(value: Any) -> Any:
    """EDN values as the JSON-like values the checkers use (keywords become strings)."""
    if isinstance(value, edn.Keyword):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _edn_events_at_once(text: str, first: str, lines: int) -> list[Event]:
    """Every line's event when the file reads as maps of one shape at once, checked a
    column at a time; an empty list otherwise, so the line-by-line reader reads it (and
    names any line that is wrong)."""
    columns = edn.flat_map_columns(text, first, lines)
    if columns is None or not JSONL_FIELDS.issuperset(columns):
        return []
    types, fs, processes = columns.get("type"), columns.get("f"), columns.get("process")
    if types is None or fs is None or processes is None or not EVENT_TYPES.issuperset(types):
        return []
    if not all(type(f) is str for f in fs):
        return []
    indexes = columns.get("index", range(lines))
    times = columns.get("time") or [float(position) for position in range(lines)]
    if not all(type(index) is int for index in indexes):
        return []
    if not all(type(moment) is float for moment in times):
        times = [float(moment) for moment in times]
    nothing = [None] * lines
    return [
        event_of_fields(
            {
                "index": index,
                "time": moment,
                "process": process,
                "type": kind,
                "f": f,
                "key": key,
                "value": value,
                "node": node,
                "error": error,
            }
        )
        for index, moment, process, kind, f, key, value, node, error in zip(
            indexes,
            times,
            processes,
            types,
            fs,
            columns.get("key", nothing),
            columns.get("value", nothing),
            columns.get("node", nothing),
            columns.get("error", nothing),
            strict=True,
        )
    ]


def _edn_event(line: str, position: int) -> Event:
    record = edn.loads_flat_map(line)
    if record is None:  # not a flat map of plain values: the full reader, with its errors
        parsed = edn.loads(line)
        if not isinstance(parsed, dict):
            raise ValueError("an EDN event must be a map")
        record = {str(key): _plain(value) for key, value in parsed.items()}
    if not JSONL_FIELDS.issuperset(record):  # Jepsen's maps may carry more: keep Event's
        record = {name: value for name, value in record.items() if name in JSONL_FIELDS}
    return _checked_event(record, position)


#: Every line of a Jepsen log at once (one regex pass over the whole text); unlike
#: JEPSEN_LOG_LINE it never crosses a line end, and it needs the value Jepsen always writes.
JEPSEN_LOG_LINES = re.compile(
    r"^\S+[ \t]+jepsen\.util[ \t]+-[ \t]+(\S+)[ \t]+:(\w+)[ \t]+:([\w-]+)[ \t]+(.*?)[ \t\r]*$",
    re.MULTILINE,
)


def _jepsen_log_events_at_once(text: str, lines: int) -> list[Event]:
    """The events of a whole Jepsen log from one regex pass, values read once per distinct
    text (a log repeats a few values on every line); an empty list when any line is not a
    regular one, so the line-by-line reader can name it."""
    rows = JEPSEN_LOG_LINES.findall(text)
    if len(rows) != lines:
        return []
    events: list[Event] = []
    append = events.append
    values: dict[str, Any] = {}
    processes: dict[str, int | str] = {}
    try:
        for position, (raw_process, type_, f, raw_value) in enumerate(rows):
            if type_ not in EVENT_TYPES or not raw_value:
                return []
            process = processes.get(raw_process)
            if process is None:
                process = processes[raw_process] = _jepsen_process(raw_process)
            if raw_value[0] == "[":
                value: Any = edn.loads_value(raw_value)  # a list: never shared between events
            else:
                value = values.get(raw_value, values)
                if value is values:
                    value = values[raw_value] = edn.loads_value(raw_value)
            error = None
            if raw_value[0] == ":" and type_ in ("fail", "info") and isinstance(value, str):
                error, value = value, None  # ":fail :read :timed-out": the value is the reason
            moment = float(position)
            append(new_event(position, moment, process, type_, f, None, value, None, error))
    except (ValueError, TypeError):
        return []
    return events


def _jepsen_process(raw: str) -> int | str:
    if raw == ":nemesis":
        return NEMESIS
    return int(raw) if raw.lstrip("-").isdigit() else raw


def _jepsen_log_event(line: str, position: int) -> Event:
    match = JEPSEN_LOG_LINE.match(line)
    if match is None:
        raise ValueError(f"not a Jepsen log line: {line[:80]!r}")
    process = _jepsen_process(match.group("process"))
    raw_value = match.group("value")
    if not raw_value:
        raise ValueError(
            "the line ends before the operation's value (Jepsen writes nil for none): "
            "is the line cut off?"
        )
    value: Any = edn.loads_value(raw_value)
    type_ = _check_type(match.group("type"))
    error = None
    if type_ in ("fail", "info") and isinstance(value, str) and raw_value.startswith(":"):
        error, value = value, None  # e.g. ":fail :read :timed-out": the value is the reason
    return new_event(
        position, float(position), process, type_, match.group("f"), None, value, None, error
    )


def write_edn(events: Iterable[Event], path: Path) -> Path:
    """Write events as Jepsen-style EDN, one map per line."""
    K = edn.Keyword
    with open(path, "w") as handle:
        for event in events:
            record: dict[Any, Any] = {
                K("index"): event.index,
                K("time"): event.time,
                K("process"): K(NEMESIS) if event.process == NEMESIS else event.process,
                K("type"): K(event.type),
                K("f"): K(event.f),
                K("value"): event.value,
            }
            if event.key is not None:
                record[K("key")] = event.key
            if event.node is not None:
                record[K("node")] = event.node
            if event.error is not None:
                record[K("error")] = event.error
            handle.write(edn.dumps(record) + "\n")
    return path
