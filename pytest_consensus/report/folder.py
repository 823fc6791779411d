"""A report folder: one adapter's certificate and its evidence, written the same way by a run
(``--consensus-report``) and by ``consensus-merge`` (shards of one certification).

Layout (one folder per adapter, named after it)::

    DIR/<adapter>/certificate.json   the certificate (docs/certificate.md)
    DIR/<adapter>/certificate.md     the same for humans
    DIR/<adapter>/certificate.html   one self-contained page with plots
    DIR/<adapter>/tests/<test>/      history.jsonl, schedule.json, counterexample.html
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_consensus.clients.history import read_jsonl
from pytest_consensus.report.certificate import render_markdown, write_json
from pytest_consensus.report.measure import FaultWindow, HistoryFigures, figures_of
from pytest_consensus.report.records import (
    COUNTEREXAMPLE_PROPERTY,
    HISTORY_PROPERTY,
    SCHEDULE_PROPERTY,
    TestRecord,
)
from pytest_consensus.report.verdicts import MEASUREMENTS, describe_measurement

#: Timeline plots per certificate: enough for every fault-schedule test of a thorough run.
MAX_TIMELINES = 40
#: Each kind of evidence file: (certificate key, the record's property, the file's name).
EVIDENCE_FILES = (
    ("history", HISTORY_PROPERTY, "history.jsonl"),
    ("schedule", SCHEDULE_PROPERTY, "schedule.json"),
    ("counterexample", COUNTEREXAMPLE_PROPERTY, "counterexample.html"),
)


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


def figures_of_test(test: TestRecord) -> HistoryFigures | None:
    """The figures of the test's recorded history, if it kept one."""
    path = test.path(HISTORY_PROPERTY)
    if path is None or not path.is_file():
        return None
    return figures_of(read_jsonl(path))


def copy_evidence(tests: Sequence[TestRecord], folder: Path) -> dict[str, dict[str, str]]:
    """Copy each test's evidence into the report, so links survive the run's tmp dirs; per
    test id, each file's path relative to ``folder``."""
    evidence: dict[str, dict[str, str]] = {}
    for test in tests:
        files = {}
        target = folder / "tests" / evidence_folder_name(test.nodeid)
        for kind, prop, name in EVIDENCE_FILES:
            source = test.path(prop)
            if source is not None and source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                if source.resolve() != (target / name).resolve():
                    shutil.copyfile(source, target / name)
                files[kind] = str((target / name).relative_to(folder))
        evidence[test.nodeid] = files
    return evidence


def reported_by_tests(tests: Sequence[TestRecord]) -> list[dict[str, Any]]:
    """The figures tests reported through ``user_properties``, for the certificate."""
    return [
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


def write_report_folder(
    folder: Path,
    certificate: dict[str, Any],
    tests: Sequence[TestRecord],
    figures: dict[str, HistoryFigures | None],
) -> Path:
    """Write the certificate as JSON, Markdown and HTML (with its plots) into ``folder``;
    the JSON file's path."""
    from pytest_consensus.report.html import render_html
    from pytest_consensus.report.plots import latency_distribution_svg, timeline_svg

    folder.mkdir(parents=True, exist_ok=True)
    written = write_json(certificate, folder / "certificate.json")
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
    return written


def _inline_svg(page: str) -> str:
    start, end = page.find("<svg"), page.rfind("</svg>")
    return page[start : end + len("</svg>")] if start >= 0 and end > start else ""
