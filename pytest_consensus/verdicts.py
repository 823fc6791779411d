"""Per-rule verdicts from test outcomes: pass, fail, or n/a with the reason.

A rule passes for an adapter when at least one of its tests passed and none failed; it is
n/a when every test was skipped (the reason is the first skip's); never "pass" by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_consensus.rules import RULES

if TYPE_CHECKING:
    from pytest import TestReport


#: Figures tests report through ``user_properties`` that the summary prints per adapter.
MEASUREMENTS = ("recovery_seconds", "stale_reads")


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
    return f"{name}: {value}"


@dataclass
class RuleOutcome:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    known: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.failed:
            return "fail"
        if self.known:
            return "known failure"
        if self.passed:
            return "pass"
        if self.skipped:
            return "n/a"
        return "not run"

    def describe(self) -> str:
        """A short cell for the matrix: pass/FAIL/n/a with counts."""
        if self.verdict == "fail":
            return f"FAIL ({self.failed} of {self.passed + self.failed + self.skipped} failed)"
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


class VerdictTable:
    """Outcomes by (rule, adapter), fed with every test report of the run."""

    def __init__(self, adapters: Sequence[str]) -> None:
        self.adapters = list(adapters)
        #: (rule, adapter) -> test id -> ("passed" | "failed" | "skipped", skip reason)
        self.results: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        #: (adapter, measurement) -> values reported by tests through user_properties
        self.measurements: dict[tuple[str, str], list[Any]] = {}

    def add(self, report: TestReport) -> None:
        properties = dict(report.user_properties)
        rule, adapter = properties.get("consensus_rule"), properties.get("consensus_adapter")
        if rule is None or adapter is None:
            return
        for name, value in properties.items():
            if name in MEASUREMENTS and value is not None and report.when == "call":
                self.measurements.setdefault((str(adapter), name), []).append(value)
        tests = self.results.setdefault((str(rule), str(adapter)), {})
        previous = tests.get(report.nodeid, ("", ""))[0]
        if report.failed:
            tests[report.nodeid] = ("failed", "")  # a failure in any phase wins
        elif getattr(report, "wasxfail", None) is not None and report.skipped:
            tests[report.nodeid] = ("xfailed", str(report.wasxfail))
        elif report.skipped and previous != "failed":
            longrepr = report.longrepr
            reason = str(longrepr[2]) if isinstance(longrepr, tuple) else "skipped"
            tests[report.nodeid] = ("skipped", reason.removeprefix("Skipped: "))
        elif report.passed and report.when == "call" and not previous:
            tests[report.nodeid] = ("passed", "")

    def outcome(self, rule: str, adapter: str) -> RuleOutcome:
        outcome = RuleOutcome()
        for test_id, (status, reason) in self.results.get((rule, adapter), {}).items():
            if status == "failed":
                outcome.failed += 1
                outcome.failures.append(test_id)
            elif status == "xfailed":
                outcome.known += 1
            elif status == "skipped":
                outcome.skipped += 1
                outcome.skip_reasons.append(reason)
            else:
                outcome.passed += 1
        return outcome

    def empty(self) -> bool:
        return not self.results

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
            lines.append(rule.ljust(width) + "".join(cells))
        return [line.rstrip() for line in lines + reasons + self._render_measurements()]

    def _render_measurements(self) -> list[str]:
        lines = []
        for adapter in self.adapters:
            for name in MEASUREMENTS:
                for value in self.measurements.get((adapter, name), []):
                    lines.append(f"  {adapter}: {describe_measurement(name, value)}")
        return lines


class VerdictReporter:
    """A plugin object: collects reports and prints the rules-by-backend table at the end."""

    def __init__(self, table: VerdictTable) -> None:
        self.table = table

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        self.table.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.table.empty():
            return
        terminalreporter.write_sep("=", "consensus certification")
        for line in self.table.render():
            terminalreporter.write_line(line)
