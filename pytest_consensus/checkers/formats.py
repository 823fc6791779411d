"""Reading and writing histories: JSON Lines, Jepsen-style EDN, and the Jepsen log format.

Every reader returns :class:`~pytest_consensus.clients.history.Event` objects in file order and
raises :class:`HistoryFormatError` naming the file and line of anything it cannot read.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from pytest_consensus.checkers import edn
from pytest_consensus.clients.events import (
    NEMESIS,
    Event,
    EventColumns,
    EventType,
    event_of_fields,
    new_event,
)

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
    """The events of a history file and the line each came from (for messages about them)."""
    columns, lines = read_history_columns(path, format)
    return columns.events(), lines


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a history is read: the hundreds of thousands
    of containers a big file makes would set it off again and again (a quarter of the time
    of reading and pairing 100,000 operations) with nothing to collect."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_history_columns(
    path: Path,
    format: str = "auto",  # noqa: A002
    *,
    workers: int = 1,
) -> tuple[EventColumns, list[int]]:
    """A history file's events as columns, and the line each came from.

    Each format has a reader of the whole text at once (one C-level pass, then whole
    columns converted and checked); a file it does not take is read line by line, which
    names the line that is wrong. With ``workers`` above 1, a file of at least
    PARALLEL_MIN_LINES lines is read in that many parts at once, in forked processes (see
    checkers.forked: only where no other thread runs). A Jepsen log's lines always end
    with a value and a newline
    (Jepsen writes ``nil`` for none), so a last line without its newline was cut off: a
    value cut short (``12`` to ``1``) would still parse, as a different operation. JSON
    Lines and EDN events end with a closing brace, so a cut one never parses.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryFormatError(f"{path}: cannot read: {error}") from error
    # Lines end at "\n" only (a "\r" before it is whitespace to every reader): splitlines
    # would also break a line at a U+2028 or a form feed inside a string.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line
    if len(list(filter(None, map(str.strip, lines)))) == len(lines):  # no blank line
        content, numbers = lines, list(range(1, len(lines) + 1))
    else:
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        content = [line for _, line in numbered]
        numbers = [number for number, _ in numbered]
    if not content:
        return EventColumns.of_events([]), []
    if format == "auto":
        format = detect_format(path, content[0])
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
    with gc_paused():
        parts = workers if len(content) >= PARALLEL_MIN_LINES else 1
        bounds = [len(content) * part // parts for part in range(parts + 1)]
        chunks = [(format, content[start:end], start) for start, end in itertools.pairwise(bounds)]
        if parts > 1:  # each part's columns as a tuple of lists: quick through a pipe
            from pytest_consensus.checkers.forked import map_forked  # only for big files

            read = map_forked(_read_at_once_as_lists, chunks)
            parts_read = [None if lists is None else EventColumns(*lists) for lists in read]
        else:
            parts_read = [_read_at_once(chunks[0])]
        if all(columns is not None for columns in parts_read):
            return _concatenated(cast(list[EventColumns], parts_read)), numbers
        events: list[Event] = []
        for number, line in zip(numbers, content, strict=True):
            try:
                events.append(parse(line, len(events)))
            except (ValueError, TypeError, KeyError) as error:
                raise HistoryFormatError(f"{path}:{number}: {error}") from None
        return EventColumns.of_events(events), numbers


#: Files shorter than this are read in one process: a fork and the result's trip back
#: through a pipe cost more than the half of a read of a few thousand lines they save.
PARALLEL_MIN_LINES = 40_000


def _read_at_once(chunk: tuple[str, list[str], int]) -> EventColumns | None:
    """Lines of a file, at most all, by the format's whole-text reader; ``offset`` is the
    first one's position in the file (the default index and time of an event)."""
    format, lines, offset = chunk  # noqa: A001
    if format == "jsonl":
        return _jsonl_columns(lines, offset)
    text = "\n".join(lines) + "\n"
    if format == "jepsen-log":
        return _jepsen_log_columns(text, len(lines), offset)
    return _edn_columns(text, lines[0], len(lines), offset)


def _read_at_once_as_lists(chunk: tuple[str, list[str], int]) -> tuple[list[Any], ...] | None:
    columns = _read_at_once(chunk)
    return None if columns is None else tuple(getattr(columns, name) for name in columns.FIELDS)


def _concatenated(parts: list[EventColumns]) -> EventColumns:
    if len(parts) == 1:
        return parts[0]
    return EventColumns(
        *(
            list(itertools.chain.from_iterable(getattr(part, name) for part in parts))
            for name in EventColumns.FIELDS
        )
    )


def _check_type(type_: Any) -> EventType:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"event type {type_!r} is not one of invoke, ok, fail, info")
    return cast(EventType, str(type_))


def _jsonl_columns(lines: list[str], offset: int = 0) -> EventColumns | None:
    """Every line's event from one call of the C JSON decoder over the whole file, checked
    a column at a time; None when any line is not exactly one event whose fields need no
    conversion, so the line-by-line reader reads it (and names any line that is wrong)."""
    try:
        records = json.loads("[" + ",".join(lines) + "]")
        if len(records) != len(lines) or set(map(type, records)) != {dict}:
            return None  # a line held two values ("{...}, {...}"), or not an object
        if not JSONL_FIELDS.issuperset(set().union(*records)):
            return None
        types = [record["type"] for record in records]
        processes = [record["process"] for record in records]
        fs = [record["f"] for record in records]
        if not EVENT_TYPES.issuperset(types) or set(map(type, fs)) != {str}:
            return None
        positions = _indexes_and_times(
            [record.get("index", at) for at, record in enumerate(records, offset)],
            [record.get("time", at) for at, record in enumerate(records, offset)],
        )
        if positions is None:
            return None
        return EventColumns(
            *positions,
            processes,
            types,
            fs,
            [record.get("key") for record in records],
            [record.get("value") for record in records],
            [record.get("node") for record in records],
            [record.get("error") for record in records],
        )
    except (ValueError, TypeError, KeyError):
        return None


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


def _edn_columns(text: str, first: str, lines: int, offset: int = 0) -> EventColumns | None:
    """Every line's event when the file reads as maps of one shape at once, checked a
    column at a time; None otherwise, so the line-by-line reader reads it (and names any
    line that is wrong)."""
    columns = edn.flat_map_columns(text, first, lines)
    if columns is None or not JSONL_FIELDS.issuperset(columns):
        return None
    types, fs, processes = columns.get("type"), columns.get("f"), columns.get("process")
    if types is None or fs is None or processes is None or not EVENT_TYPES.issuperset(types):
        return None
    if set(map(type, fs)) != {str}:
        return None
    positions = _indexes_and_times(
        columns.get("index") or list(range(offset, offset + lines)),
        columns.get("time") or list(map(float, range(offset, offset + lines))),
    )
    if positions is None:
        return None
    absent = [None] * lines  # one list for every absent column: never changed
    return EventColumns(
        *positions,
        processes,
        types,
        fs,
        columns.get("key", absent),
        columns.get("value", absent),
        columns.get("node", absent),
        columns.get("error", absent),
    )


def _indexes_and_times(
    indexes: list[Any], times: list[Any]
) -> tuple[list[int], list[float]] | None:
    """A whole file's indexes (integers as written) and times (made floats); None when any
    is not, for the line-by-line reader to convert or to name the line that is wrong."""
    if set(map(type, indexes)) != {int}:
        return None
    if set(map(type, times)) != {float}:
        try:
            times = list(map(float, times))
        except (ValueError, TypeError):
            return None  # ":time \"noon\"": the line-by-line reader names the line
    return indexes, times


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


def _jepsen_log_columns(text: str, lines: int, offset: int = 0) -> EventColumns | None:
    """The events of a whole Jepsen log from one regex pass, values read once per distinct
    text (a log repeats a few values on every line); None when any line is not a regular
    one, so the line-by-line reader can name it."""
    rows = JEPSEN_LOG_LINES.findall(text)
    if len(rows) != lines:
        return None
    raw_processes, types, fs, raw_values = (list(column) for column in zip(*rows, strict=True))
    if not EVENT_TYPES.issuperset(types) or not all(raw_values):
        return None
    try:
        known = {raw: _jepsen_process(raw) for raw in set(raw_processes)}
        processes = list(map(known.__getitem__, raw_processes))
        values: list[Any] = []
        errors: list[str | None] = [None] * lines
        read: dict[str, Any] = {}
        for position, raw_value in enumerate(raw_values):
            if raw_value[0] == "[":
                values.append(edn.loads_value(raw_value))  # a list: never shared
                continue
            value = read.get(raw_value, read)
            if value is read:
                value = read[raw_value] = edn.loads_value(raw_value)
            if raw_value[0] == ":" and types[position] in ("fail", "info"):
                if isinstance(value, str):  # ":fail :read :timed-out": the value is the reason
                    errors[position], value = value, None
            values.append(value)
    except (ValueError, TypeError):
        return None
    return EventColumns(
        list(range(offset, offset + lines)),
        list(map(float, range(offset, offset + lines))),
        processes,
        types,  # checked against EVENT_TYPES above
        fs,
        [None] * lines,
        values,
        [None] * lines,
        errors,
    )


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
