"""A small reader and writer for the EDN subset Jepsen histories use, one map per line.

Maps, vectors, lists, sets, keywords, strings, integers, floats, nil, true and false.
Keywords read as :class:`Keyword` so a writer can round-trip them.
"""

from __future__ import annotations

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
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
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
