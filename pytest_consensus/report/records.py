"""What each conformance test did, gathered from pytest's reports for the certificate: its
outcome, why, and where its evidence is (history, fault schedule, counterexample)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest import TestReport

#: user_properties through which fixtures and tests point at their evidence files.
HISTORY_PROPERTY = "consensus_history"
SCHEDULE_PROPERTY = "consensus_schedule"
COUNTEREXAMPLE_PROPERTY = "consensus_counterexample"
#: user_property the plugin sets on a report whose error was the harness's, not the store's.
HARNESS_ERROR_PROPERTY = "consensus_harness_error"
#: How much of a failure's text a certificate keeps.
MESSAGE_LIMIT = 4000


#: How the plugin's xdist group names start (plugin/xdist_groups.py); under ``-n`` with
#: ``loadgroup``, xdist appends ``@<group>`` to a grouped test's id.
GROUP_PREFIX = "consensus-"


def without_group(nodeid: str) -> str:
    """``nodeid`` without the ``@<group>`` suffix of the plugin's xdist groups: reports,
    certificates and replay commands name the test as pytest does without ``-n`` (an id
    with the suffix selects nothing)."""
    return nodeid.split(f"@{GROUP_PREFIX}", 1)[0]


@dataclass
class TestRecord:
    nodeid: str
    rule: str
    adapter: str
    #: passed, failed, skipped (n/a), xfailed (known failure), error (the harness's own)
    outcome: str = "not run"
    message: str = ""
    seconds: float = 0.0
    properties: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> Path | None:
        value = self.properties.get(name)
        return Path(value) if value else None


class RunRecords:
    """Test records by node id, fed with every report (setup, call, teardown)."""

    def __init__(self) -> None:
        self.tests: dict[str, TestRecord] = {}

    def add(self, report: TestReport) -> None:
        properties = dict(report.user_properties)
        rule, adapter = properties.get("consensus_rule"), properties.get("consensus_adapter")
        if rule is None or adapter is None:
            return
        nodeid = without_group(report.nodeid)
        record = self.tests.setdefault(nodeid, TestRecord(nodeid, str(rule), str(adapter)))
        record.properties.update(properties)
        record.seconds += report.duration
        if record.outcome == "failed":
            return  # a failure in any phase wins
        harness_error = properties.get(HARNESS_ERROR_PROPERTY)
        if report.failed and harness_error is not None:
            record.outcome, record.message = "error", str(harness_error)[:MESSAGE_LIMIT]
        elif record.outcome == "error":
            return  # a harness error is not undone by a later phase
        elif report.failed:
            record.outcome = "failed"
            record.message = _failure_text(report)
        elif report.skipped and getattr(report, "wasxfail", None) is not None:
            record.outcome, record.message = "xfailed", str(report.wasxfail)
        elif report.skipped:
            longrepr = report.longrepr
            reason = str(longrepr[2]) if isinstance(longrepr, tuple) else "skipped"
            record.outcome = "skipped"
            record.message = reason.removeprefix("Skipped: ").removeprefix("n/a: ")
        elif report.passed and report.when == "call":
            record.outcome = "passed"

    def for_adapter(self, adapter: str) -> list[TestRecord]:
        return [record for record in self.tests.values() if record.adapter == adapter]


#: The line pytest-xdist puts before a worker's failure ("[gw1] linux -- Python 3.11.7
#: /usr/bin/python3"): where it ran, not why it failed.
XDIST_WORKER_LINE = re.compile(r"^\[gw\d+\] \S+ -- Python \S+")


def _failure_text(report: TestReport) -> str:
    """The failure's own message: for ``pytest.fail(..., pytrace=False)`` the whole text, for
    an assertion the ``E`` lines of the traceback."""
    text = "\n".join(
        line for line in report.longreprtext.splitlines() if not XDIST_WORKER_LINE.match(line)
    )
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    message = "\n".join(lines) if lines else text.strip()
    if report.when != "call":
        message = f"in {report.when}: {message}"
    return message[:MESSAGE_LIMIT]


TRACEBACK = "Traceback (most recent call last):"


def headline(message: str, limit: int = 300) -> str:
    """The one line that says why a test failed: the message's first line or, where the
    message quotes a traceback (a child process's, say), the text before it and the
    exception line that ends it; at most ``limit`` characters."""
    text = message.strip()
    if TRACEBACK in text:
        before, _, after = text.partition(TRACEBACK)
        ends = [line.strip() for line in after.splitlines() if line.strip() and line[0] != " "]
        text = f"{before.strip()} {ends[-1] if ends else ''}".strip()
    first = text.splitlines()[0] if text else "failed"
    return first if len(first) <= limit else first[: limit - 1] + "…"
