"""The run's take-away: per-backend figures in the terminal summary, certificates written by
``--consensus-report=DIR``, and ``--consensus-compare=OLD.json`` failing the run when a rule
went from pass to fail.

Layout of the report directory (one folder per adapter, named after it)::

    DIR/<adapter>/certificate.json   the certificate (docs/certificate.md)
    DIR/<adapter>/certificate.md     the same for humans
    DIR/<adapter>/certificate.html   one self-contained page with plots
    DIR/<adapter>/tests/<test>/      history.jsonl, schedule.json, counterexample.html
"""

from __future__ import annotations

import re
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_consensus.clients.history import read_jsonl
from pytest_consensus.report.certificate import (
    build_certificate,
    compare,
    render_markdown,
    write_json,
)
from pytest_consensus.report.measure import (
    FaultWindow,
    HistoryFigures,
    Summary,
    figures_of,
    summarize,
)
from pytest_consensus.report.records import (
    COUNTEREXAMPLE_PROPERTY,
    HISTORY_PROPERTY,
    SCHEDULE_PROPERTY,
    RunRecords,
    TestRecord,
)
from pytest_consensus.report.verdicts import MEASUREMENTS, describe_measurement

if TYPE_CHECKING:
    from pytest_consensus.contract import Adapter
    from pytest_consensus.plugin.settings import Settings

#: Timeline plots per certificate: enough for every fault-schedule test of a thorough run.
MAX_TIMELINES = 40


def slug(text: str, limit: int = 100) -> str:
    """A file name for an adapter or test id; a long one is cut and given a hash of the whole,
    so that two ids sharing a long prefix never share a folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "test"
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}-{zlib.crc32(text.encode()):08x}"


def evidence_folder_name(nodeid: str) -> str:
    """The folder a test's evidence goes in: its id without the path before its file."""
    return slug(nodeid.split("/")[-1])


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

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_consensus.plugin.hooks import network_fault_mechanisms

        self.network_faults = network_fault_mechanisms(session.config)
        certificates = {}
        for name in self.adapters:
            tests = self.records.for_adapter(name)
            if not tests:
                continue
            figures = {t.nodeid: _figures(t) for t in tests}
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

    def _certificate(
        self, name: str, tests: list[TestRecord], figures: dict[str, HistoryFigures | None]
    ) -> dict[str, Any]:
        adapter = self.adapters[name]
        info = adapter.info()
        folder = self.report_dir / slug(name) if self.report_dir else None
        evidence = _copy_evidence(tests, folder) if folder else {}
        summary: dict[str, Any] = self.summaries[name].as_dict()
        summary["reported_by_tests"] = [
            {
                "test": t.nodeid,
                "name": key,
                "value": t.properties[key],
                "text": describe_measurement(key, t.properties[key]),
            }
            for t in tests
            for key in MEASUREMENTS
            if t.properties.get(key) is not None
        ]
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
            },
            tests=tests,
            measurements=summary,
            evidence=evidence,
        )
        if folder is not None:
            self._write(folder, certificate, tests, figures)
        return certificate

    def _write(
        self,
        folder: Path,
        certificate: dict[str, Any],
        tests: list[TestRecord],
        figures: dict[str, HistoryFigures | None],
    ) -> None:
        from pytest_consensus.report.html import render_html
        from pytest_consensus.report.plots import latency_distribution_svg, timeline_svg

        folder.mkdir(parents=True, exist_ok=True)
        self.written.append(write_json(certificate, folder / "certificate.json"))
        (folder / "certificate.md").write_text(render_markdown(certificate))
        timelines: dict[str, str] = {}
        counterexamples: dict[str, str] = {}
        faults: dict[str, list[FaultWindow]] = {}
        for test in tests:
            figure = figures.get(test.nodeid)
            if figure is not None and figure.windows:
                faults[test.nodeid] = figure.windows
                if figure.operations and len(timelines) < MAX_TIMELINES:
                    timelines[test.nodeid] = timeline_svg(figure, test.nodeid.split("::")[-1])
            counterexample = test.path(COUNTEREXAMPLE_PROPERTY)
            if counterexample is not None and counterexample.is_file():
                counterexamples[test.nodeid] = _inline_svg(counterexample.read_text())
        latencies = [
            (op.latency or 0.0) * 1000
            for figure in figures.values()
            if figure is not None
            for op in figure.operations
            if op.outcome == "ok"
        ]
        distribution = latency_distribution_svg(
            latencies, f"{certificate['adapter']['name']}: all acknowledged operations"
        )
        html = render_html(certificate, timelines, distribution, counterexamples, faults)
        (folder / "certificate.html").write_text(html)

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


def _figures(test: TestRecord) -> HistoryFigures | None:
    path = test.path(HISTORY_PROPERTY)
    if path is None or not path.is_file():
        return None
    return figures_of(read_jsonl(path))


def _copy_evidence(tests: list[TestRecord], folder: Path) -> dict[str, dict[str, str]]:
    """Copy each test's evidence into the report, so links survive the run's tmp dirs."""
    evidence: dict[str, dict[str, str]] = {}
    for test in tests:
        files = {}
        target = folder / "tests" / evidence_folder_name(test.nodeid)
        for kind, prop, name in (
            ("history", HISTORY_PROPERTY, "history.jsonl"),
            ("schedule", SCHEDULE_PROPERTY, "schedule.json"),
            ("counterexample", COUNTEREXAMPLE_PROPERTY, "counterexample.html"),
        ):
            source = test.path(prop)
            if source is not None and source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / name)
                files[kind] = str((target / name).relative_to(folder))
        evidence[test.nodeid] = files
    return evidence


def _inline_svg(page: str) -> str:
    start, end = page.find("<svg"), page.rfind("</svg>")
    return page[start : end + len("</svg>")] if start >= 0 and end > start else ""


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
