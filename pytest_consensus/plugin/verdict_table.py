"""The rules-by-backend table at the end of a run, and the exit status when only the harness
failed: the pytest side of :mod:`pytest_consensus.report.verdicts`."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_consensus.report.records import HARNESS_ERROR_PROPERTY
from pytest_consensus.report.verdicts import VerdictTable


class VerdictReporter:
    """A plugin object: collects reports and prints the rules-by-backend table at the end."""

    def __init__(self, table: VerdictTable) -> None:
        self.table = table
        self.harness_errors = 0
        self.other_failures = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.table.add(report)
        if report.failed:
            if HARNESS_ERROR_PROPERTY in dict(report.user_properties):
                self.harness_errors += 1
            else:
                self.other_failures += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A run whose only failures are the harness's exits as a usage error (4), so CI
        cannot read it as a store failing its certification."""
        if self.harness_errors and not self.other_failures and session.exitstatus == 1:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.table.empty():
            return
        terminalreporter.write_sep("=", "consensus certification")
        for line in self.table.render():
            terminalreporter.write_line(line)
        if self.harness_errors:
            terminalreporter.write_line(
                "consensus: a harness error is no verdict on the store; fix what it names "
                "and run again (the exit status is 4 when nothing else failed)"
            )
