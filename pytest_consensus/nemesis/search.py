"""Searching fault schedules with Hypothesis, shrinking a failing one to a minimal reproducer.

``search_schedules`` draws schedules (which faults, in what order, how long, how far apart,
on which nodes), runs a scenario against each on a fresh cluster, and when one fails lets
Hypothesis shrink it (fewer faults, shorter, simpler kinds) while it still fails, within a
time budget. The minimal schedule is written to a file that ``--consensus-replay`` accepts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, NoSuchExample

from pytest_consensus.nemesis.faults import (
    LEADER_DEPENDENT,
    Fault,
    Schedule,
    meaningful_kinds,
    static_targets,
)


def schedules(
    nodes: Sequence[str], kinds: Sequence[str], max_faults: int = 3, seed: int = 0
) -> st.SearchStrategy[Schedule]:
    """Schedules of up to ``max_faults`` non-overlapping faults; shrinks toward fewer,
    shorter faults of the first kinds listed."""

    choices = meaningful_kinds(kinds, len(nodes))

    @st.composite
    def build(draw: st.DrawFn) -> Schedule:
        count = draw(st.integers(1, max_faults))
        faults = []
        clock = 0.0
        for _ in range(count):
            kind = draw(st.sampled_from(choices))
            gap = draw(st.sampled_from([0.5, 1.0, 1.5]))
            duration = draw(st.sampled_from([1.0, 2.0, 3.0]))
            target_seed = draw(st.integers(0, 7))
            targets = (
                ()
                if kind in LEADER_DEPENDENT
                else static_targets(kind, list(nodes), random.Random(target_seed))
            )
            clock += gap
            faults.append(Fault(kind, clock, duration, targets))
            clock += duration
        return Schedule(seed, list(nodes), faults)

    return build()


@dataclass
class SearchResult:
    examples: int
    failure: str | None = None
    minimal: Schedule | None = None
    path: Path | None = None
    shrunk_fully: bool = True
    #: The first schedule that failed, and whether a re-run of it failed again.
    first_failing: Schedule | None = None
    reproduced: bool = True


def search_schedules(
    scenario: Callable[[Schedule], str | None],
    strategy: st.SearchStrategy[Schedule],
    *,
    examples: int,
    budget: float,
    save_to: Path,
    seed: int | None = None,
) -> SearchResult:
    """Run ``scenario`` (a failure message, or None) on drawn schedules.

    Stops at the first failing schedule and shrinks it while it still fails, until
    ``budget`` seconds have passed; the smallest failing schedule is saved to ``save_to``.
    With a ``seed``, the same schedules are drawn every time.
    """
    deadline = time.monotonic() + budget
    result = SearchResult(examples=0)
    messages: dict[int, str] = {}

    def fails(schedule: Schedule) -> bool:
        if result.failure is not None and time.monotonic() > deadline:
            result.shrunk_fully = False
            return False  # out of time: keep the smallest failure found so far
        result.examples += 1
        message = scenario(schedule)
        if message is not None:
            messages[id(schedule)] = message
            result.failure = message
            if result.first_failing is None:
                result.first_failing = schedule
        return message is not None

    try:
        minimal = find(
            strategy,
            fails,
            random=None if seed is None else random.Random(seed),
            settings=settings(
                max_examples=examples,
                deadline=None,
                database=None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            ),
        )
    except NoSuchExample:
        return result
    except Flaky:
        # It failed once and passed when Hypothesis ran it again: still a failure to report
        # (a correct store never fails), with the schedule that failed, not a shrunk one.
        result.reproduced = False
        assert result.first_failing is not None
        result.minimal = result.first_failing
        result.path = result.first_failing.write(save_to)
        return result
    result.minimal = minimal
    result.failure = messages.get(id(minimal), result.failure)
    result.path = minimal.write(save_to)
    return result
