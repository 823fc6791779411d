"""Reading and writing histories in JSON Lines, EDN and the Jepsen log format."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_consensus.checkers import edn
from pytest_consensus.checkers.formats import HistoryFormatError, read_history, write_edn
from pytest_consensus.clients.history import Event, write_events

EVENTS = [
    Event(0, 0.5, 1, "invoke", "cas", "k1", ["a", "b"], "n2"),
    Event(1, 0.75, 1, "fail", "cas", "k1", ["a", "b"], "n2", "mismatch"),
    Event(2, 1.0, "nemesis", "info", "kill", None, ["n1"]),
    Event(3, 1.5, 2, "invoke", "put", 'k"2', 'quote " and \\ back', None),
    Event(4, 2.0, 2, "info", "put", 'k"2', 'quote " and \\ back', None, "timeout: slow"),
]


def test_jsonl_and_edn_round_trip(tmp_path: Path) -> None:
    jsonl = tmp_path / "h.jsonl"
    write_events(EVENTS, jsonl)
    assert read_history(jsonl) == EVENTS
    as_edn = write_edn(EVENTS, tmp_path / "h.edn")
    assert read_history(as_edn) == EVENTS
    assert (
        as_edn.read_text()
        .splitlines()[2]
        .startswith("{:index 2, :time 1.0, :process :nemesis, :type :info, :f :kill")
    )


def test_jepsen_log_lines_with_tabs_or_spaces(tmp_path: Path) -> None:
    path = tmp_path / "etcd.log"
    path.write_text(
        "INFO  jepsen.util - 4\t:invoke\t:cas\t[1 2]\n"
        "INFO  jepsen.util - 4   :fail :cas    [1 2]\n"
        "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n"
    )
    events = read_history(path)
    assert [(e.process, e.type, e.f, e.value, e.error) for e in events] == [
        (4, "invoke", "cas", [1, 2], None),
        (4, "fail", "cas", [1, 2], None),
        (3, "invoke", "read", None, None),
        (3, "fail", "read", None, "timed-out"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"index": 0, "process": 1, "type": "invoke", "f": "put"}\n{"process": 1}\n',
            r"h.txt:2: 'type'",
        ),
        (
            '{"index": 0, "process": 1, "type": "begun", "f": "put"}\n',
            r"h.txt:1: event type 'begun' is not one of invoke, ok, fail, info",
        ),
        (
            "{:process 1, :type :invoke, :f :put}\n{:process 1, :type :ok, :f\n",
            r"h.txt:2: unclosed form",
        ),
        (
            "INFO  jepsen.util - 1\t:invoke\t:read\tnil\nsomething else\n",
            r"h.txt:2: not a Jepsen log line",
        ),
        ("hello\n", r"h.txt:1: cannot tell the format.*--format"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "h.txt"
    path.write_text(content)
    with pytest.raises(HistoryFormatError, match=message):
        read_history(path)


def test_an_empty_file_is_an_empty_history(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("")
    assert read_history(path) == []


def test_edn_values() -> None:
    assert edn.loads('[1 -2 3.5 nil true "s\\"q" :kw #{1} (1 2) {:a [1]}]') == [
        1,
        -2,
        3.5,
        None,
        True,
        's"q',
        "kw",
        frozenset({1}),
        [1, 2],
        {"a": [1]},
    ]
    with pytest.raises(edn.EdnError, match="unknown symbol"):
        edn.loads("[foo]")
