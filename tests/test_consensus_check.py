"""The consensus-check command: verdicts, exit codes, JSON, timelines, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_consensus.checkers import edn
from pytest_consensus.checkers.cli import main, read_operations
from pytest_consensus.checkers.formats import HistoryFormatError, read_history, write_edn
from pytest_consensus.clients.history import Event, write_events

from history_strategies import random_register_histories

GOOD = [
    Event(0, 0.0, 0, "invoke", "put", "k", "a"),
    Event(1, 1.0, 0, "ok", "put", "k", "a"),
    Event(2, 2.0, 1, "invoke", "get", "k"),
    Event(3, 3.0, 1, "ok", "get", "k", "a"),
]
BAD = GOOD[:2] + [
    Event(2, 2.0, 0, "invoke", "put", "k", "b"),
    Event(3, 3.0, 0, "ok", "put", "k", "b"),
    Event(4, 4.0, 1, "invoke", "get", "k"),
    Event(5, 5.0, 1, "ok", "get", "k", "a"),
]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    write_events(GOOD, path)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.edn"
    write_edn(BAD, path)
    return path


def test_linearizable_files_exit_0(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "cas-register", str(good)]) == 0
    assert f"{good}: linearizable (2 ops, 1 key," in capsys.readouterr().out


def test_a_non_linearizable_file_exits_1_with_its_counterexample(
    good: Path, bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model", "cas-register", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: NOT linearizable" in out
    assert "cannot place: p1 get k 'a'" in out
    assert "minimal non-linearizable subset (3 operations)" in out


def test_json_prints_one_object_per_file(
    good: Path, bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--model", "kv", "--json", str(good), str(bad)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["file"], r["linearizable"], r["ops"]) for r in lines] == [
        (str(good), True, 2),
        (str(bad), False, 3),
    ]
    assert all(isinstance(r["seconds"], float) for r in lines)


def test_unreadable_input_exits_2_naming_file_and_line(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text().splitlines()[0] + "\n{not json\n")
    assert main(["--model", "kv", str(good), str(broken)]) == 2
    assert f"{broken}:2:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content", ["", "\n\n", '{"process": "nemesis", "type": "info", "f": "kill", "value": "n1"}\n']
)
def test_a_file_with_no_operations_exits_2_not_linearizable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    assert main(["--model", "kv", str(empty)]) == 2
    captured = capsys.readouterr()
    assert f"{empty}: no operations to check" in captured.err
    assert "linearizable" not in captured.out


def test_a_jepsen_log_whose_last_value_was_cut_off_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = tmp_path / "cut.log"
    cut.write_text(
        "INFO  jepsen.util - 18\t:invoke\t:read\tnil\nINFO  jepsen.util - 18\t:ok\t:read\t"
    )
    assert main(["--model", "register", str(cut)]) == 2
    assert f"{cut}:2: the last line has no newline" in capsys.readouterr().err
    cut.write_text(cut.read_text() + "\n")
    assert main(["--model", "register", str(cut)]) == 2
    assert f"{cut}:2: the line ends before the operation's value" in capsys.readouterr().err


def test_events_that_cannot_be_paired_are_named_by_line_not_event_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = tmp_path / "orphan.jsonl"
    write_events([*GOOD, Event(78, 9.0, 5, "ok", "get", "k", "a")], orphan)
    orphan.write_text("\n" + orphan.read_text())  # a blank first line: lines are not indexes
    assert main(["--model", "kv", str(orphan)]) == 2
    assert f"{orphan}:6: ok get by process 5 has no invocation" in capsys.readouterr().err


def jepsen_log(events: list[Event]) -> str:
    return "".join(
        f"INFO  jepsen.util - {e.process}\t:{e.type}\t:{e.f}\t{edn.dumps(e.value)}\n"
        for e in events
    )


def widen(value: Any) -> Any:
    """Values of several digits, so that a value cut short is still a value."""
    if isinstance(value, list):
        return [widen(v) for v in value]
    return value if value is None else 1000 + value * 111


def history_text(events: list[Event], format: str, directory: Path) -> str:  # noqa: A002
    events = [dataclasses.replace(e, value=widen(e.value)) for e in events]
    path = directory / f"whole.{format}"
    if format == "jsonl":
        write_events(events, path)
    elif format == "edn":
        write_edn(events, path)
    else:
        path.write_text(jepsen_log(events))
    return path.read_text()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=random_register_histories(max_ops=4),
    format=st.sampled_from(["jsonl", "edn", "jepsen-log"]),
)
def test_every_truncation_is_a_complete_prefix_or_exit_2(
    tmp_path: Path,
    events: list[Event],
    format: str,  # noqa: A002
) -> None:
    """A file cut anywhere (every cut is tried) either reads as the events of its complete
    lines, so its verdict is the verdict on that prefix, or is unreadable (exit 2): never a
    verdict on a cut-short event."""
    text = history_text(events, format, tmp_path)
    whole = read_history(tmp_path / f"whole.{format}", format)
    model = ["--model", "cas-register"]
    for cut in range(len(text)):
        truncated = tmp_path / f"cut.{format}"
        truncated.write_text(text[:cut])
        try:
            operations = read_operations(truncated, "auto")
        except HistoryFormatError:
            continue
        read = read_history(truncated, "auto")
        assert read == whole[: len(read)], f"a cut line was read as an event: {text[:cut]!r}"
        prefix = tmp_path / f"prefix.{format}"
        prefix.write_text("".join(text.splitlines(keepends=True)[: len(read)]))
        assert operations == read_operations(prefix, "auto")
        assert main([*model, str(truncated)]) == main([*model, str(prefix)])
    truncated.write_text(text[:1])
    assert main([*model, str(truncated)]) == 2


def test_an_exhausted_budget_exits_3(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "kv", "--budget", "0", str(good)]) == 3
    assert "unknown (time budget ran out)" in capsys.readouterr().out


def test_html_timeline_for_a_failing_file(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages"
    main(["--model", "kv", "--html", str(out), str(bad)])
    page = (out / "bad.edn.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert page.count('class="ok culprit"') == 2  # the two puts
    assert 'class="ok culprit blocked"' in page  # the stale get
    assert "not linearizable" in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # self-contained: loads nothing


def test_a_users_own_model_by_module_and_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "counter_model.py").write_text(
        "from pytest_consensus.checkers.models import ILLEGAL, Model\n"
        "class Counter(Model):\n"
        "    name = 'counter'\n"
        "    operations = frozenset({'incr', 'read'})\n"
        "    def init(self):\n"
        "        return 0\n"
        "    def step(self, state, op):\n"
        "        if op.f == 'incr':\n"
        "            return state + 1\n"
        "        return state if op.output == state else ILLEGAL\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    history = tmp_path / "h.jsonl"
    write_events(
        [
            Event(0, 0, 0, "invoke", "incr"),
            Event(1, 1, 0, "ok", "incr"),
            Event(2, 2, 1, "invoke", "read"),
            Event(3, 3, 1, "ok", "read", value=1),
        ],
        history,
    )
    assert main(["--model", "counter_model:Counter", str(history)]) == 0


def test_unknown_model_lists_the_valid_ones(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "queue", str(good)]) == 2
    assert "unknown model 'queue'; valid: register, cas-register, kv" in capsys.readouterr().err


def test_the_installed_command_runs(good: Path) -> None:
    done = subprocess.run(
        ["consensus-check", "--model", "kv", "--json", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["linearizable"] is True


def test_the_readmes_examples_run_as_written_and_write_nothing_into_the_clone(
    tmp_path: Path,
) -> None:
    """The README's consensus-check lines, from the clone's root: the first linearizable,
    the second not, with its timeline page under a new temporary folder."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("## Checking histories without a cluster", 1)[1]
    lines = block.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split()[0] for line in lines] == ["consensus-check", "consensus-check"]
    before = sorted(p.name for p in root.iterdir())
    statuses = []
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=root,
            env={**os.environ, "TMPDIR": str(tmp_path)},
            capture_output=True,
            text=True,
        )
        statuses.append(done.returncode)
    assert statuses == [0, 1], done.stdout + done.stderr
    assert "timeline: " + str(tmp_path) in done.stdout
    assert list(tmp_path.glob("*/stale-read.log.html"))
    assert sorted(p.name for p in root.iterdir()) == before


def test_jobs_must_be_a_number_of_processes(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "kv", "--jobs", "-1", str(good)])
    assert exit_info.value.code == 2
    assert "'-1' is not a number of processes: give 0 (one per core) or more" in (
        capsys.readouterr().err
    )


def test_a_big_file_split_over_processes_gets_the_verdict_of_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the thresholds down to this small file, it is read in parts and its keys are
    checked in other processes; the verdict, count and counterexample are those of -j 1."""
    from pytest_consensus.checkers import formats, linearizability

    monkeypatch.setattr(formats, "PARALLEL_MIN_LINES", 4)
    monkeypatch.setattr(linearizability, "PARALLEL_MIN_OPERATIONS", 2)
    path = tmp_path / "many.edn"
    copies = [
        dataclasses.replace(event, key=f"k{n}", process=n * 2 + int(event.process))
        for n in range(6)
        for event in GOOD
    ]
    write_edn(copies + BAD, path)
    outputs = []
    for jobs in ("1", "3"):
        assert main(["--model", "kv", "--jobs", jobs, str(path)]) == 1
        outputs.append(re.sub(r"[0-9.]+ s\)", "", capsys.readouterr().out))
    assert "NOT linearizable (15 ops, 7 keys, " in outputs[0]
    assert "cannot place: p1 get k 'a'" in outputs[0]
    assert outputs[0] == outputs[1]
