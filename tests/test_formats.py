"""Reading and writing histories in JSON Lines, EDN and the Jepsen log format."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


edn_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12),
    st.from_regex(r"[a-z][a-z0-9\-]{0,8}", fullmatch=True).map(edn.Keyword),
)
edn_flat_maps = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9\-?]{0,8}", fullmatch=True).map(edn.Keyword),
    st.one_of(edn_scalars, st.lists(edn_scalars, max_size=4)),
    max_size=8,
)


def plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return str(value) if isinstance(value, edn.Keyword) else value


@settings(max_examples=500)
@given(edn_flat_maps)
def test_the_fast_path_reads_what_the_full_reader_reads(record: dict[edn.Keyword, object]) -> None:
    """The fast path reads every flat map the full reader reads, to the same values, or
    leaves it to the full reader (a vector holding strings, say); never a different value."""
    text = edn.dumps(record)
    fast = edn.loads_flat_map(text)
    assert fast is None or fast == plain(edn.loads(text))
    if all(not isinstance(value, list) for value in record.values()):
        assert fast == plain(record)


@settings(max_examples=300)
@given(st.one_of(edn_scalars, st.lists(edn_scalars, max_size=4)))
def test_jepsen_log_values_read_as_the_full_reader_reads_them(value: object) -> None:
    text = edn.dumps(value)
    assert edn.loads_value(text) == plain(edn.loads(text))


def test_a_bad_line_among_good_json_lines_is_named(tmp_path: Path) -> None:
    good = '{"index": 0, "process": 1, "type": "invoke", "f": "put"}\n'
    path = tmp_path / "h.jsonl"
    path.write_text(good * 500 + '{"index": 1, "process": 1, "type": "ok", "f": put}\n' + good)
    with pytest.raises(HistoryFormatError, match=r"h.jsonl:501: Expecting value"):
        read_history(path)


def test_a_jepsen_log_read_at_once_is_read_as_line_by_line(tmp_path: Path) -> None:
    from pytest_consensus.checkers.formats import _jepsen_log_event

    lines = [
        "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
        "INFO  jepsen.util - 0\t:info\t:cas\t:timed-out",
        "INFO  jepsen.util - 1 :ok :read 3  ",
        "INFO  jepsen.util - -2\t:fail\t:cas\t[1 2]",
        'INFO  jepsen.util - 0\t:invoke\t:write\t"a b"',
    ]
    path = tmp_path / "h.log"
    path.write_text("\n".join(lines) + "\n")
    events = read_history(path)
    assert events == [_jepsen_log_event(line, number) for number, line in enumerate(lines)]
    assert events[0].value == [1, 2] and events[0].value is not events[5].value
    assert events[3].error == "timed-out" and events[2].process == "nemesis"


history_events = st.lists(
    st.builds(
        Event,
        index=st.integers(0, 10**6),
        time=st.floats(0, 1e6, allow_nan=False),
        process=st.one_of(st.integers(-5, 60), st.just("nemesis")),
        type=st.sampled_from(["invoke", "ok", "fail", "info"]),
        f=st.sampled_from(["read", "write", "cas", "append", "start"]),
        key=st.one_of(st.none(), st.sampled_from(["k1", "k 2"]), st.integers(0, 3)),
        value=st.one_of(
            st.none(), st.integers(-3, 3), st.text(max_size=6), st.lists(st.integers(0, 4))
        ),
        error=st.one_of(st.none(), st.sampled_from(["timed-out", "no leader"])),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(history_events)
def test_an_edn_file_read_at_once_is_read_as_line_by_line(events: list[Event]) -> None:
    """Whichever way the reader takes (one pass over the file when every line has the first
    line's shape, else line by line), the events are those each line gives on its own."""
    from pytest_consensus.checkers.formats import _edn_event

    with tempfile.TemporaryDirectory() as folder:
        path = write_edn(events, Path(folder) / "h.edn")
        lines = [line for line in path.read_text().split("\n") if line.strip()]
        assert read_history(path) == [_edn_event(line, n) for n, line in enumerate(lines)]


def test_a_jepsen_edn_history_of_one_shape_is_read_at_once(tmp_path: Path) -> None:
    """The shape every Jepsen history has takes the one-pass reader (not the fallback)."""
    from pytest_consensus.checkers import edn as edn_module

    events = [
        Event(i, i / 10, i % 3, "invoke" if i % 2 == 0 else "ok", "append", "k", f"x{i}")
        for i in range(50)
    ]
    text = write_edn(events, tmp_path / "h.edn").read_text()
    columns = edn_module.flat_map_columns(text, text.splitlines()[0], 50)
    assert columns is not None and columns["value"][3] == "x3"
    assert read_history(tmp_path / "h.edn") == events


one_kind_columns = st.one_of(
    st.lists(st.integers(-(10**12), 10**12), min_size=1),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1),
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8), min_size=1
    ),
    st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=1),
    st.lists(st.from_regex(r"[a-z][a-z0-9\-:]{0,8}", fullmatch=True).map(edn.Keyword), min_size=1),
    st.lists(st.one_of(edn_scalars, st.lists(st.integers(0, 4), max_size=3)), min_size=1),
)


@settings(max_examples=500)
@given(one_kind_columns)
def test_a_column_is_read_as_each_of_its_values_alone(values: list[object]) -> None:
    """A column converted at once (by counts of quotes, colons and digits) holds what the
    full reader reads from each value on its own, whatever mix of kinds it has."""
    from pytest_consensus.checkers.edn import _column

    texts = tuple(edn.dumps(value) for value in values)
    assert _column(texts) == [plain(edn.loads(text)) for text in texts]


@pytest.mark.parametrize("format", ["jsonl", "edn", "jepsen-log"])
def test_a_file_read_in_parts_at_once_is_the_file_read_whole(
    tmp_path: Path, format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in three forked parts, a history is the same events, with the same default
    indexes and times (each event's position in the file), and the same line numbers, as
    read in one process."""
    from pytest_consensus.checkers import formats

    monkeypatch.setattr(formats, "PARALLEL_MIN_LINES", 10)
    path = tmp_path / f"h.{format}"
    kinds = ["invoke", "ok"]
    if format == "jepsen-log":
        lines = [
            f"INFO  jepsen.util - {i % 4}\t:{kinds[i // 4 % 2]}\t:write\t{i}" for i in range(40)
        ]
    elif format == "edn":
        lines = [
            f'{{:process {i % 3}, :type :{kinds[i // 3 % 2]}, :f :put, :value "x{i}"}}'
            for i in range(40)
        ]
    else:
        lines = [
            f'{{"process": {i % 3}, "type": "{kinds[i // 3 % 2]}", "f": "put"}}' for i in range(40)
        ]
    lines.insert(20, "")  # a blank line: the line numbers after it move on by one
    path.write_text("\n".join(lines) + "\n")
    whole, whole_lines = formats.read_history_columns(path, workers=1)
    parts, parts_lines = formats.read_history_columns(path, workers=3)
    assert parts == whole and parts_lines == whole_lines
    assert whole.index == list(range(40)) and whole.time == [float(i) for i in range(40)]
    assert whole_lines[19:21] == [20, 22]


def test_a_bad_line_in_a_later_part_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_consensus.checkers import formats

    monkeypatch.setattr(formats, "PARALLEL_MIN_LINES", 10)
    good = '{"index": 0, "process": 1, "type": "invoke", "f": "put"}\n'
    path = tmp_path / "h.jsonl"
    bad = '{"index": 1, "process": 1, "type": "ok", "f": put}\n'
    path.write_text(good * 30 + "\n" + bad + good * 9)
    with pytest.raises(HistoryFormatError, match=r"h.jsonl:32: Expecting value"):
        formats.read_history_columns(path, workers=2)


def test_a_time_that_is_no_number_in_a_one_shape_edn_file_is_named(tmp_path: Path) -> None:
    """The whole-file reader gives such a file to the line-by-line one, which names the
    line, rather than failing with a bare conversion error."""
    lines = [f"{{:process {i % 2}, :type :invoke, :f :put, :time {i}.5}}" for i in range(6)]
    lines[4] = '{:process 0, :type :invoke, :f :put, :time "noon"}'
    path = tmp_path / "h.edn"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryFormatError, match=r"h.edn:5: could not convert string to float"):
        read_history(path)
