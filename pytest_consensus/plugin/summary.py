"""The run's take-away: per-backend figures in the terminal summary, certificates written by
``--consensus-report=DIR`` (layout: report/folder.py), and ``--consensus-compare=OLD.json``
failing the run when a rule went from pass to fail."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_consensus.report.certificate import build_certificate, compare
from pytest_consensus.report.folder import (
    copy_evidence,
    evidence_folder_name,
    figures_of_test,
    reported_by_tests,
    slug,
    write_report_folder,
)
from pytest_consensus.report.measure import HistoryFigures, Summary, summarize
from pytest_consensus.report.records import RunRecords, TestRecord

if TYPE_CHECKING:
    from pytest_consensus.contract import Adapter
    from pytest_consensus.plugin.settings import Settings

__all__ = ["ReportPlugin", "evidence_folder_name", "render_figures", "slug"]


class ReportPlugin:
    """At the end of the session, from every conformance test's record: computes each
    backend's figures from the histories, and writes and compares certificates."""

    def __init__(
        self,
        settings: Settings,
        adapters: dict[str, Adapter],
        records: RunRecords,
        report_dir: Path | None,
        baselines: list[dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        #: The verdict table's records: one collection of reports serves both.
        self.records = records
        self.report_dir = report_dir
        self.baselines = baselines
        self.started = time.time()
        self.summaries: dict[str, Summary] = {}
        self.written: list[Path] = []
        self.changes: list[str] = []
        self.regressions = 0
        self.network_faults: dict[str, str] = {}
        #: Tests per adapter in the unsplit selection, when this run is a shard of it.
        self.unsplit: dict[str, int] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_consensus.plugin.hooks import network_fault_mechanisms

        self.network_faults = network_fault_mechanisms(session.config)
        sharding = session.config.pluginmanager.get_plugin("consensus-shard")
        self.unsplit = dict(sharding.unsplit) if sharding is not None else {}
        certificates = {}
        for name in self.adapters:
            tests = self.records.for_adapter(name)
            if not tests:
                continue
            figures = {t.nodeid: figures_of_test(t) for t in tests}
            self.summaries[name] = summarize(f for f in figures.values() if f is not None)
            certificate = self._certificate(name, tests, figures)
            certificates[name] = certificate
        for old in self.baselines:
            name = old["adapter"]["name"]
            if name not in certificates and len(certificates) == 1:
                # One backend certified under another name (a renamed module, a patched
                # build): compare with it, and say so.
                (current,) = certificates
                self.changes.append(f"comparing {current} with the certificate of {name}")
                name_now = current
            elif name not in certificates:
                self.changes.append(f"{name}: not certified in this run; nothing to compare")
                continue
            else:
                name_now = name
            for change in compare(old, certificates[name_now]):
                self.changes.append(f"{name_now}: {change.describe()}")
                self.regressions += change.regression
        if self.regressions and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _shard(self, name: str) -> dict[str, Any]:
        """The shard this run made of the certification, for consensus-merge: which, and how
        many of the adapter's tests the unsplit run has (so a missing shard shows)."""
        if self.settings.shard is None:
            return {}
        shard, unsplit = self.settings.shard, self.unsplit.get(name, 0)
        return {"shard": {"index": shard.index, "total": shard.total, "unsplit_tests": unsplit}}

    def _certificate(
        self, name: str, tests: list[TestRecord], figures: dict[str, HistoryFigures | None]
    ) -> dict[str, Any]:
        adapter = self.adapters[name]
        info = adapter.info()
        folder = self.report_dir / slug(name) if self.report_dir else None
        evidence = copy_evidence(tests, folder) if folder else {}
        summary: dict[str, Any] = self.summaries[name].as_dict()
        summary["reported_by_tests"] = reported_by_tests(tests)
        certificate = build_certificate(
            adapter={
                "name": name,
                "class": f"{type(adapter).__module__}:{type(adapter).__qualname__}",
                "version": info.version,
                "capabilities": sorted(c.value for c in info.capabilities),
            },
            run={
                "seed": self.settings.seed,
                "nodes": self.settings.nodes,
                "profile": self.settings.profile.name,
                "host": self.settings.host,
                "network_faults": self.network_faults,
                "replay": self.settings.replay,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "seconds": round(time.time() - self.started, 1),
                "command": self.settings.command(name),
                **self._shard(name),
            },
            tests=tests,
            measurements=summary,
            evidence=evidence,
        )
        if folder is not None:
            self.written.append(write_report_folder(folder, certificate, tests, figures))
        return certificate

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summaries:
            for line in render_figures(self.summaries):
                terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"consensus certificate: {path} (.md, .html beside it)")
        if self.baselines:
            terminalreporter.write_sep("-", "consensus compare")
            for line in self.changes or ["no rule changed its verdict"]:
                terminalreporter.write_line(line)
            if self.regressions:
                terminalreporter.write_line(
                    f"{self.regressions} rule(s) went from pass to fail: the run fails",
                    red=True,
                    bold=True,
                )


def _availability(s: Summary) -> str:
    if s.availability_during_partitions is None:
        return "n/a (no partition)"
    return f"{s.availability_during_partitions * 100:.1f} % of {s.operations_during_partitions}"


def _recovery(s: Summary) -> str:
    if s.recovery_median_seconds is None or s.recovery_max_seconds is None:
        return "n/a (no heal)"
    return f"{s.recovery_median_seconds:.2f} s median, {s.recovery_max_seconds:.2f} s max"


FIGURE_ROWS: tuple[tuple[str, Callable[[Summary], str]], ...] = (
    ("latency p50 / p99", lambda s: _pair(s.latency_p50_ms, s.latency_p99_ms, "ms")),
    ("throughput", lambda s: _unit(s.throughput_per_second, "acknowledged/s")),
    ("availability in partitions", _availability),
    ("recovery after heal", _recovery),
    ("operations", lambda s: f"{s.acknowledged} of {s.operations} acknowledged"),
)


def _pair(a: float | None, b: float | None, unit: str) -> str:
    return "n/a" if a is None or b is None else f"{a:.1f} / {b:.1f} {unit}"


def _unit(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f} {unit}"


def render_figures(summaries: dict[str, Summary]) -> list[str]:
    """Figures by backend, aligned under the verdict matrix."""
    names = list(summaries)
    width = max(len(label) for label, _ in FIGURE_ROWS) + 2
    column = max([24, *(len(n) + 2 for n in names)])
    cells = {n: [render(summaries[n]) for _, render in FIGURE_ROWS] for n in names}
    column = max([column, *(len(c) + 2 for n in names for c in cells[n])])
    lines = ["figure".ljust(width) + "".join(n.ljust(column) for n in names)]
    for row, (label, _) in enumerate(FIGURE_ROWS):
        lines.append(label.ljust(width) + "".join(cells[n][row].ljust(column) for n in names))
    return [line.rstrip() for line in lines]
