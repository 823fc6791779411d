"""map_forked: work in forked children gives what one process gives, errors included, and
leaves no child behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_consensus.checkers.edn import Keyword
from pytest_consensus.checkers.forked import map_forked, usable_cores


def no_child_left() -> bool:
    """No child process of this one but the run's node reaper (contract.reaper), which
    earlier tests of the same session may have started: map_forked reaps its own."""
    from pytest_consensus.contract import reaper

    keep = {reaper._reaper.pid} if reaper._reaper is not None else set()
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return not children - keep


def test_results_come_back_in_order_from_other_processes() -> None:
    """Run in a fresh interpreter: the test process may have threads of its own, and
    then nothing is forked (the next test)."""
    program = (
        "import os; from pytest_consensus.checkers.forked import map_forked; parent = os.getpid()\n"
        "print(map_forked(lambda n: (n * n, os.getpid() != parent), [3, 4, 5]))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.stdout.strip() == "[(9, False), (16, True), (25, True)]", done.stderr


def test_with_another_thread_running_nothing_is_forked() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        parent = os.getpid()
        assert map_forked(lambda n: os.getpid() == parent, [1, 2, 3]) == [True, True, True]
    finally:
        stop.set()
        thread.join()


def test_results_marshal_cannot_carry_come_back_by_pickle() -> None:
    results = map_forked(lambda n: {Keyword("k"): n, "set": frozenset({n})}, [1, 2])
    assert results == [{"k": 1, "set": frozenset({1})}, {"k": 2, "set": frozenset({2})}]
    assert isinstance(next(iter(results[1])), Keyword)


def test_an_error_in_a_child_is_raised_here_as_in_one_process() -> None:
    def fails_on_two(n: int) -> int:
        if n == 2:
            raise ValueError(f"bad item {n}")
        return n

    with pytest.raises(ValueError, match="bad item 2"):
        map_forked(fails_on_two, [1, 2, 3])
    assert no_child_left()


def test_a_child_that_dies_has_its_item_done_here() -> None:
    parent = os.getpid()

    def dies_in_a_child(n: int) -> int:
        if os.getpid() != parent:
            os._exit(9)  # as if killed: nothing sent
        return n + 100

    assert map_forked(dies_in_a_child, [1, 2, 3]) == [101, 102, 103]
    assert no_child_left()


def test_an_interrupt_here_kills_and_reaps_the_children() -> None:
    parent = os.getpid()

    def slow_child_failing_parent(n: int) -> int:
        if os.getpid() == parent:
            raise KeyboardInterrupt
        os.pause()  # a child that would wait forever
        return n

    with pytest.raises(KeyboardInterrupt):
        map_forked(slow_child_failing_parent, [1, 2])
    assert no_child_left()


def test_usable_cores_is_what_this_process_may_use() -> None:
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
