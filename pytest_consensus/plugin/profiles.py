"""Run profiles: how hard the suite pushes, traded against how long it takes.

``quick`` is for development (one backend in about two minutes), ``default`` certifies one
backend in under four minutes on a 2-core machine with both cores (``-n 2``; on one lane the
backends with slow elections take about five), ``thorough`` runs
longer schedules, more schedules per test, more searched examples and a long crash loop,
for nightly CI. The figures are measured in benchmarks/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """What a profile changes; everything else (timeouts, checks) is the same in all."""

    name: str
    #: Faults in each generated schedule (and at most this many in a searched one).
    faults: int
    #: The shortest and longest a generated fault lasts, in seconds.
    fault_seconds: tuple[float, float]
    #: The shortest and longest quiet time before each fault, in seconds.
    gap_seconds: tuple[float, float]
    #: Schedules each Hypothesis search of fault schedules tries.
    search_examples: int
    #: Generated command logs per white-box state-machine test.
    fsm_examples: int
    #: Times each fault-schedule test runs, each round with its own schedule and seed.
    rounds: int
    #: The crashes the fixed crash tests run: a few in quick, all otherwise.
    crashes: tuple[str, ...]
    #: Whole-cluster crashes, each followed by restarts in a random order with random gaps.
    restart_cycles: int = 2
    #: The power-cut scenarios of the disk-fault tests (conformance/test_disk_faults.py).
    power_cuts: tuple[str, ...] = ()
    #: The damages done to a stopped member's data file.
    damages: tuple[str, ...] = ()
    #: Seconds the crash loop kills and restarts members under load (a kill every 1-3 s).
    crash_loop_seconds: float = 30.0
    #: Rounds a test whose exposure may not happen (a resumed old leader that answers no
    #: read) runs before it is n/a; it stops at the first round that exposed something.
    exposure_rounds: int = 3


ALL_POWER_CUTS = (
    "whole-cluster",
    "minority",
    "one-while-another-is-cut-off",
    "one-while-another-is-paused",
)
ALL_DAMAGES = ("flip", "truncate", "zero")


ALL_CRASHES = ("kill-minority", "kill-all", "rolling-restart")

PROFILES = {
    "quick": Profile(
        "quick",
        faults=1,
        fault_seconds=(0.8, 1.5),
        gap_seconds=(0.2, 0.5),
        search_examples=1,
        fsm_examples=20,
        rounds=1,
        crashes=("kill-minority",),
        restart_cycles=1,
        power_cuts=("whole-cluster", "one-while-another-is-cut-off"),
        damages=("flip",),
        crash_loop_seconds=15.0,
        exposure_rounds=2,
    ),
    "default": Profile(
        "default",
        faults=3,
        fault_seconds=(1.5, 2.5),
        gap_seconds=(0.3, 1.0),
        search_examples=1,
        fsm_examples=60,
        rounds=1,
        # A whole-cluster crash is covered by the uneven-restart cycles, and the kill of one
        # member (a minority of 3) by the crash loop, under heavier load.
        crashes=("rolling-restart",),
        # The paused variant, the minority's cut and the zeroed block run in thorough: they
        # found nothing the others did not in any store so far (docs/decisions.md).
        power_cuts=("whole-cluster", "one-while-another-is-cut-off"),
        damages=("flip", "truncate"),
        # One uneven-restart cycle, a 20 s loop, one searched schedule and two exposure
        # rounds keep a run near four minutes (docs/decisions.md, "The default profile's
        # budget"); thorough has more of each.
        restart_cycles=1,
        crash_loop_seconds=20.0,
        exposure_rounds=2,
    ),
    "thorough": Profile(
        "thorough",
        faults=6,
        fault_seconds=(1.5, 5.0),
        gap_seconds=(0.5, 1.5),
        search_examples=10,
        fsm_examples=300,
        rounds=3,
        crashes=ALL_CRASHES,
        restart_cycles=4,
        power_cuts=ALL_POWER_CUTS,
        damages=ALL_DAMAGES,
        crash_loop_seconds=300.0,
    ),
}
DEFAULT_PROFILE = "default"

_active = PROFILES[DEFAULT_PROFILE]
_seed = 0


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name is an error listing the known ones."""
    try:
        return PROFILES[name.strip()]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def activate(profile: Profile, seed: int = 0) -> None:
    """Make ``profile`` and ``seed`` the run's. The white-box tests read them when their
    module is imported (Hypothesis settings and seeds are fixed when a test is decorated),
    which is after the plugin has configured the run."""
    global _active, _seed
    _active, _seed = profile, seed


def active_profile() -> Profile:
    return _active


def active_seed() -> int:
    """The run's seed, for Hypothesis tests: the same seed draws the same examples."""
    return _seed
