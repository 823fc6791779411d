"""Per-rule verdicts from test outcomes: pass, fail, or n/a with the reason.

A rule passes for an adapter when at least one of its tests passed and none failed; it is
n/a when every test was skipped (the reason is the first skip's); never "pass" by default.
A test the harness could not run (its own error, not the store's) makes the rule a "harness
error", which is no verdict on the store either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_consensus.report.records import RunRecords, TestRecord
from pytest_consensus.report.rules import RULES

if TYPE_CHECKING:
    from pytest import TestReport


#: Figures tests report through ``user_properties`` that the summary prints per adapter,
#: with their names in words.
MEASUREMENT_NAMES = {
    "recovery_seconds": "recovery after the last heal",
    "stale_reads": "stale reads of a member cut off",
    "power_cut": "a power cut and what it exposed",
    "disk_damage": "a damaged data file and what the member did",
    "crash_loop": "the crash loop: kills, load reached, what every member held",
    "exposure": "what a test's window exposed (reads answered, writes at stake)",
}
MEASUREMENTS = tuple(MEASUREMENT_NAMES)


def describe_measurement(name: str, value: Any) -> str:
    """A figure a test reported, in words."""
    if name == "recovery_seconds":
        return f"time from the last heal to the first acknowledged write: {value:.2f} s"
    if name == "stale_reads":
        versions, seconds = value["versions_behind"], value["seconds_behind"]
        return (
            "stale reads around a member cut off from the majority: "
            f"{value['stale_reads']} of {value['reads']} stale, up to "
            f"{versions['max']:.0f} versions and {seconds['max']:.2f} s behind"
        )
    if name == "power_cut":
        return (
            f"power cut ({value['scenario']}) of {', '.join(value['nodes'])}: "
            f"{value['exposed']} writes acknowledged {value['window']}, "
            f"{value['acknowledged']} in all; the disks lost {value['names_lost']} unsynced "
            f"name(s) and unsynced bytes of {value['files_lost']} file(s); "
            f"{value['missing']} acknowledged write(s) missing afterwards"
        )
    if name == "crash_loop":
        missing = value["missing"]
        held = "not read" if missing is None else f"{missing} acknowledged write(s) missing"
        agree = {True: "; digests agree", False: "; digests differ", None: ""}[
            value["digests_agree"]
        ]
        compared = value.get("compared_while_running")
        if compared is not None:
            diverged = value.get("diverged_while_running") or 0
            agree += f"; compared {compared} times while it ran" + (
                f", {diverged} divergence(s)" if diverged else ""
            )
        return (
            f"crash loop: {value['kills']} SIGKILLs ({value['catching_up']} while catching up) "
            f"in {value['seconds']} s under {value['acknowledged']} acknowledged writes "
            f"({value['rate']}/s); {held} on a member{agree}"
        )
    if name == "exposure":
        return f"exposure: {value}"
    if name == "disk_damage":
        return f"{value['damage']} on {value['node']}: the member {value['outcome']}"
    return f"{name}: {value}"


@dataclass
class RuleOutcome:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    known: int = 0
    errors: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error_reasons: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, tests: Iterable[TestRecord]) -> RuleOutcome:
        """The outcome of a rule from the records of its tests."""
        outcome = cls()
        for test in tests:
            if test.outcome == "failed":
                outcome.failed += 1
                outcome.failures.append(test.nodeid)
            elif test.outcome == "error":
                outcome.errors += 1
                outcome.error_reasons.append(test.message)
            elif test.outcome == "xfailed":
                outcome.known += 1
            elif test.outcome == "skipped":
                outcome.skipped += 1
                outcome.skip_reasons.append(test.message)
            elif test.outcome == "passed":
                outcome.passed += 1
        return outcome

    @property
    def verdict(self) -> str:
        if self.failed:
            return "fail"
        if self.errors:
            return "harness error"
        if self.known:
            return "known failure"
        if self.passed:
            return "pass"
        if self.skipped:
            return "n/a"
        return "not run"

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.known + self.errors

    def describe(self) -> str:
        """A short cell for the matrix: pass/FAIL/n/a with counts."""
        if self.verdict == "fail":
            return f"FAIL ({self.failed} of {self.total} failed)"
        if self.verdict == "harness error":
            return f"harness error ({self.errors} of {self.total})"
        if self.verdict == "known failure":
            return f"known failure ({self.known} xfail, {self.passed} passed)"
        if self.verdict == "pass":
            extra = f", {self.skipped} n/a" if self.skipped else ""
            return f"pass ({self.passed} passed{extra})"
        return self.verdict

    @property
    def reason(self) -> str:
        """Why a rule is n/a: the distinct skip reasons of its tests."""
        reasons = dict.fromkeys(r.removeprefix("n/a: ") for r in self.skip_reasons)
        return "; ".join(reasons) or "skipped"

    @property
    def error_reason(self) -> str:
        """What kept the harness from running the rule's tests (distinct first lines)."""
        reasons = dict.fromkeys(r.splitlines()[0] if r else "unknown" for r in self.error_reasons)
        return "; ".join(reasons)


class VerdictTable:
    """Outcomes by (rule, adapter), from the records of every test of the run (which the
    certificates are built from too)."""

    def __init__(self, adapters: Sequence[str]) -> None:
        self.adapters = list(adapters)
        self.records = RunRecords()

    def add(self, report: TestReport) -> None:
        self.records.add(report)

    def outcome(self, rule: str, adapter: str) -> RuleOutcome:
        return RuleOutcome.of(t for t in self.records.for_adapter(adapter) if t.rule == rule)

    def measured_by_test(self, adapter: str, name: str) -> list[tuple[str, Any]]:
        """(test name, value) of one figure the adapter's tests reported through
        ``user_properties``, for lines that say which test measured it."""
        return [
            (t.nodeid.split("::")[-1], t.properties[name])
            for t in self.records.for_adapter(adapter)
            if t.properties.get(name) is not None
        ]

    def empty(self) -> bool:
        return not self.records.tests

    def verdict(self, rule: str, adapter: str) -> str:
        return self.outcome(rule, adapter).verdict

    def render(self) -> list[str]:
        """Rules by adapter, then the reason for every n/a cell."""
        rules = list(RULES)
        width = max(len(rule) for rule in rules) + 2
        column = max([24, *(len(a) + 2 for a in self.adapters)])
        lines = ["rule".ljust(width) + "".join(a.ljust(column) for a in self.adapters)]
        reasons = []
        for rule in rules:
            cells = []
            for adapter in self.adapters:
                outcome = self.outcome(rule, adapter)
                cells.append(outcome.describe().ljust(column))
                if outcome.verdict == "n/a":
                    reasons.append(f"  {rule} on {adapter}: n/a because {outcome.reason}")
                elif outcome.skipped and outcome.verdict in ("pass", "fail"):
                    reasons.append(
                        f"  {rule} on {adapter}: {outcome.skipped} of {outcome.total} tests "
                        f"n/a because {outcome.reason}"
                    )
                elif outcome.verdict == "harness error":
                    reasons.append(
                        f"  {rule} on {adapter}: no verdict, the harness failed: "
                        f"{outcome.error_reason}"
                    )
            lines.append(rule.ljust(width) + "".join(cells))
        return [line.rstrip() for line in lines + reasons + self._render_measurements()]

    def _render_measurements(self) -> list[str]:
        lines = []
        for adapter in self.adapters:
            for name in MEASUREMENTS:
                for test, value in self.measured_by_test(adapter, name):
                    lines.append(f"  {adapter}: {describe_measurement(name, value)} ({test})")
        return lines
