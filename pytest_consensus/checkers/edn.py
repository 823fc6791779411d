"""A small reader and writer for the EDN subset Jepsen histories use, one map per line.

Maps, vectors, lists, sets, keywords, strings, integers, floats, nil, true and false.
Keywords read as :class:`Keyword` so a writer can round-trip them.
"""

from __future__ import annotations

import functools
import re
from typing import Any


class Keyword(str):
    """An EDN keyword such as ``:invoke``; compares equal to its name without the colon."""

    def __repr__(self) -> str:
        return f":{str(self)}"


class EdnError(ValueError):
    pass


TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>[\[{(]|\#\{) |
        (?P<close>[\]})]) |
        "(?P<string>(?:[^"\\]|\\.)*)" |
        :(?P<keyword>[^\s,\[\]{}()"]+) |
        (?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?=[\s,\]})]|$) |
        (?P<symbol>[^\s,\[\]{}()"]+)
    )""",
    re.VERBOSE,
)
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
SYMBOLS: dict[str, Any] = {"nil": None, "true": True, "false": False}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), text)


def loads(text: str) -> Any:
    """Parse one EDN value; trailing text other than whitespace and commas is an error."""
    position = 0
    stack: list[tuple[str, list[Any]]] = []
    result: list[Any] = []
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            break
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise EdnError(
                f"unexpected text at column {position + 1}: {text[position : position + 20]!r}"
            )
        position = match.end()
        kind = match.lastgroup
        value: Any
        if kind == "open":
            stack.append((match.group("open"), []))
            continue
        if kind == "close":
            if not stack:
                raise EdnError(f"unbalanced {match.group('close')!r} at column {position}")
            opener, items = stack.pop()
            closer = match.group("close")
            if {"[": "]", "(": ")", "{": "}", "#{": "}"}[opener] != closer:
                raise EdnError(f"{opener!r} closed by {closer!r} at column {position}")
            if opener == "{":
                if len(items) % 2:
                    raise EdnError(f"map with an odd number of forms, ending at column {position}")
                value = dict(zip(items[0::2], items[1::2], strict=True))
            elif opener == "#{":
                value = frozenset(items)
            else:
                value = items
        elif kind == "string":
            value = _unescape(match.group("string"))
        elif kind == "keyword":
            value = Keyword(match.group("keyword"))
        elif kind == "number":
            number = match.group("number")
            value = float(number) if any(c in number for c in ".eE") else int(number)
        else:
            symbol = match.group("symbol")
            if symbol not in SYMBOLS:
                raise EdnError(f"unknown symbol {symbol!r}")
            value = SYMBOLS[symbol]
        if stack:
            stack[-1][1].append(value)
        else:
            result.append(value)
    if stack:
        raise EdnError("unclosed form at end of line")
    if len(result) != 1:
        raise EdnError(f"expected one form, found {len(result)}")
    return result[0]


#: A scalar or a vector of scalars: what Jepsen's events hold, read by a fast path.
#: Strings as an unrolled loop (runs of plain characters, then an escape), which Python's
#: regex engine matches several times faster than a per-character alternation.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_PLAIN_VALUE = rf"""{_STRING}|\[[^\[\]{{}}()"#]*\]|[^\s,\[\]{{}}()"#;]+"""
_PAIR = re.compile(rf":([^\s,\[\]{{}}()\"#;]+)[\s,]+({_PLAIN_VALUE})")
_VECTOR_ITEM = re.compile(rf"""{_STRING}|[^\s,"]+""")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")
_NUMBER_START = frozenset("0123456789-+")
_SEPARATORS = " \t\r\n,"
_CACHE_LIMIT = 10_000
#: Values already read, by their text: Jepsen histories repeat a few keywords, processes
#: and values on every line. Lists are never cached (callers may change them).
_SCALARS: dict[str, Any] = {}


def _scalar(text: str) -> Any:
    value = _SCALARS.get(text, _SCALARS)
    if value is not _SCALARS:
        return value
    first = text[0]
    if first == '"':
        body = text[1:-1]
        return _unescape(body) if "\\" in body else body
    if first in _NUMBER_START:
        if _INTEGER.fullmatch(text):
            value = int(text)
            if len(_SCALARS) < _CACHE_LIMIT and -1000 < value < 1000:
                _SCALARS[text] = value  # process ids and small values repeat
            return value
        if _NUMBER.fullmatch(text):
            return float(text)
        raise EdnError(f"unknown symbol {text!r}")
    if first == ":":
        value = text[1:]
    elif text in SYMBOLS:
        value = SYMBOLS[text]
    else:
        raise EdnError(f"unknown symbol {text!r}")
    if len(_SCALARS) < _CACHE_LIMIT:
        _SCALARS[text] = value  # keywords and symbols repeat on every line
    return value


def _vector(text: str) -> list[Any]:
    return [_scalar(item) for item in _VECTOR_ITEM.findall(text, 1, len(text) - 1)]


def _plain_value(text: str) -> Any:
    return _vector(text) if text[0] == "[" else _scalar(text)


def loads_flat_map(text: str) -> dict[str, Any] | None:
    """A map of keywords to scalars or vectors of scalars, read several times faster than
    :func:`loads`, with keywords as plain strings (as the history readers want them); None
    when the text is anything else, for :func:`loads` to read or reject."""
    # One split gives the separators, keys and values interleaved; the text is a flat map
    # exactly when the first separator is the opening brace, the last the closing one, and
    # the others only commas and whitespace.
    parts = _PAIR.split(text)
    if len(parts) == 1:  # no pair: an empty map, or for the full reader
        inner = text.strip(_SEPARATORS)
        empty = inner[:1] == "{" and inner[-1:] == "}" and not inner[1:-1].strip(_SEPARATORS)
        return {} if empty else None
    if (
        parts[0].strip(_SEPARATORS) != "{"
        or parts[-1].strip(_SEPARATORS) != "}"
        or "".join(parts[3:-1:3]).strip(_SEPARATORS)
    ):
        return None
    return {
        key: _vector(value) if value[0] == "[" else _scalar(value)
        for key, value in zip(parts[1::3], parts[2::3], strict=True)
    }


#: The same values, never crossing a line end: for reading a whole file at once.
_LINE_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_LINE_VALUE = rf"""{_LINE_STRING}|\[[^\[\]{{}}()"#\n]*\]|[^\s,\[\]{{}}()"#;]+"""
#: Numbers that EDN reads as floats: a fraction or an exponent on every one.
_FLOAT = r"[-+]?[0-9]+(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
_FLOAT_COLUMN = re.compile(rf"{_FLOAT}(?:\n{_FLOAT})*")
#: Characters left of a column of integers once its digits and line ends are taken out.
_NOT_DIGITS = str.maketrans("", "", "0123456789\n")


@functools.lru_cache(maxsize=16)
def _rows_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    """Lines that are flat maps of exactly these keys in this order, one group per value."""
    pairs = "[ \t,]+".join(f":{re.escape(key)}[ \t,]+({_LINE_VALUE})" for key in keys)
    return re.compile(rf"^[ \t,]*\{{[ \t,]*{pairs}[ \t,]*\}}[ \t,\r]*$", re.MULTILINE)


def _column(texts: tuple[str, ...]) -> list[Any]:
    """One key's values on every line, converted as a column when all are of one simple
    kind, else one by one.

    Each text is one token of ``_LINE_VALUE``: a string (quotes at both ends, none inside
    unescaped, no line end), a vector (no quote, no line end) or a bare token (no quote, no
    whitespace). So in the column joined with line ends, counts decide the kind exactly: a
    quote count of twice the lines that are not nil, without a backslash, means plain
    strings (or nil), and ``"\n:"``
    between every two lines means keywords; then one C-level split converts them all."""
    joined = "\n".join(texts)
    count = len(texts)
    if joined[:1] == ":" and joined.count("\n:") == count - 1:
        return joined[1:].split("\n:")
    nils = texts.count("nil")
    if joined.count('"') == 2 * (count - nils) and "\\" not in joined:  # strings, or nil
        if not nils:
            return joined[1:-1].split('"\n"')
        return [None if text == "nil" else text[1:-1] for text in texts]
    if not joined.translate(_NOT_DIGITS).strip("-+"):
        try:
            return list(map(int, texts))  # int() takes what EDN does, signs included
        except ValueError:
            pass  # a sign out of place ("1-2"): one by one, for the error
    if _FLOAT_COLUMN.fullmatch(joined):
        return list(map(float, texts))
    return [_vector(text) if text[0] == "[" else _scalar(text) for text in texts]


def flat_map_columns(text: str, first: str, lines: int) -> dict[str, list[Any]] | None:
    """The values of every line of ``text``, by key, read in one regex pass when all
    ``lines`` non-blank lines are flat maps of the keys of the ``first`` in the same order
    (as Jepsen writes them) and converted a column at a time; None otherwise, for a reader
    that goes line by line."""
    record = loads_flat_map(first)
    if not record:
        return None
    keys = tuple(record)
    rows = _rows_pattern(keys).findall(text)
    if len(rows) != lines:
        return None
    if len(keys) == 1:
        return {keys[0]: _column(tuple(rows))}  # findall gives strings for a single group
    columns = zip(*rows, strict=True)
    return {key: _column(column) for key, column in zip(keys, columns, strict=True)}


def loads_value(text: str) -> Any:
    """One value with keywords as plain strings: the fast path for scalars and vectors of
    scalars, :func:`loads` for anything else."""
    stripped = text.strip(" \t\r\n,")
    if stripped and (
        (stripped[0] == "[" and _FLAT_VECTOR.fullmatch(stripped)) or _SCALAR.fullmatch(stripped)
    ):
        return _plain_value(stripped)
    return _keywords_as_strings(loads(text))


_FLAT_VECTOR = re.compile(r"""\[[^\[\]{}()"#]*\]""")
_SCALAR = re.compile(rf"""{_STRING}|[^\s,\[\]{{}}()"#;]+""")


def _keywords_as_strings(value: Any) -> Any:
    if isinstance(value, Keyword):
        return str(value)
    if isinstance(value, list):
        return [_keywords_as_strings(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Write a value as EDN; Keyword values are written as keywords, str as strings."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Keyword):
        return f":{value}"
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
        return f'"{escaped}"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(k)} {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, frozenset | set):
        return "#{" + " ".join(dumps(v) for v in value) + "}"
    if isinstance(value, list | tuple):
        return "[" + " ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as EDN")
