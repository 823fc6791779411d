"""The certificate as one self-contained HTML page: verdicts first, then the evidence (fault
schedules, plots, counterexamples, links to the histories beside the page). No scripts and no
external resources, so it opens anywhere, including from a CI artifact."""

from __future__ import annotations

import html
from typing import Any

from pytest_consensus.report.certificate import MEASUREMENT_LABELS, show_measurement
from pytest_consensus.report.measure import FaultWindow
from pytest_consensus.report.verdicts import MEASUREMENT_NAMES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc;
       padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } code { font-size: 0.92em; }
.pass { color: #1b7f3b; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.na, .not-run, .known-failure, .harness-error { color: #8a6d00; font-weight: bold; }
.badge { display: inline-block; padding: 0.2em 0.8em; border-radius: 0.3em; color: white; }
.badge.pass { background: #1b7f3b; } .badge.fail { background: #b00020; }
.badge.na, .badge.harness-error { background: #8a6d00; }
pre { background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; overflow-wrap: anywhere; }
td { overflow-wrap: anywhere; } td:first-child { min-width: 12em; }
figure { margin: 1em 0; } .plot svg { max-width: 100%; height: auto; }
.counterexample { overflow-x: auto; border: 1px solid #eee; }
"""


def _css_class(verdict: str) -> str:
    return {
        "n/a": "na",
        "not run": "not-run",
        "known failure": "known-failure",
        "harness error": "harness-error",
    }.get(verdict, verdict)


def _verdict(verdict: str) -> str:
    return f'<span class="{_css_class(verdict)}">{html.escape(verdict)}</span>'


def _row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render_html(
    certificate: dict[str, Any],
    timelines: dict[str, str],
    distribution: str | None,
    counterexamples: dict[str, str],
    faults: dict[str, list[FaultWindow]],
) -> str:
    """The page. ``timelines`` and ``counterexamples`` map test ids to inline SVG;
    ``faults`` maps test ids to the faults their histories recorded."""
    e = html.escape
    adapter, suite, run = certificate["adapter"], certificate["suite"], certificate["run"]
    verdict = certificate["verdict"]
    parts = [
        f"<h1>Certificate: {e(adapter['name'])} ({e(adapter['version'])})</h1>",
        f'<p><span class="badge {_css_class(verdict)}">{e(verdict)}</span> '
        f"certified by pytest-consensus {e(suite['pytest_consensus'])} (schema "
        f"{certificate['schema_version']}), pytest {e(suite['pytest'])}, Python "
        f"{e(suite['python'])} on {e(suite['platform'])}</p>",
        '<h2 id="rules">Rules</h2><table><tr><th>rule</th><th>verdict</th><th>why</th></tr>',
    ]
    for rule in certificate["rules"]:
        parts.append(
            _row(
                f'<code id="rule-{e(rule["id"])}">{e(rule["id"])}</code><br>{e(rule["title"])}',
                _verdict(rule["verdict"]),
                f"<pre>{e(rule['reason'])}</pre>" if "\n" in rule["reason"] else e(rule["reason"]),
            )
        )
    parts.append("</table>")
    parts.append("<h2>Run</h2><table>")
    for key in ("seed", "nodes", "profile", "host", "started", "seconds", "command"):
        if key in run:
            parts.append(_row(e(key), f"<code>{e(str(run[key]))}</code>"))
    capabilities = ", ".join(adapter.get("capabilities", [])) or "none"
    parts.append(_row("capabilities", e(capabilities)))
    parts.append("</table>")
    parts.append(_measurements(certificate["measurements"]))
    if distribution:
        parts.append(f'<figure class="plot">{distribution}</figure>')
    parts.append("<h2>Tests</h2>")
    for rule in certificate["rules"]:
        for test in rule["tests"]:
            parts.append(_test_section(rule["id"], test, timelines, counterexamples, faults))
    title = f"pytest-consensus certificate: {adapter['name']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def _measurements(measurements: dict[str, Any]) -> str:
    rows = []
    for key, label in MEASUREMENT_LABELS.items():
        shown = show_measurement(key, measurements.get(key))
        rows.append(_row(html.escape(label), html.escape(shown)))
    for extra in measurements.get("reported_by_tests", []):
        test = extra["test"].split("::")[-1]
        label = MEASUREMENT_NAMES.get(extra["name"], extra["name"])
        rows.append(_row(html.escape(label), html.escape(f"{extra['text']} ({test})")))
    return "<h2>Measurements</h2><table>" + "".join(rows) + "</table>"


def _test_section(
    rule: str,
    test: dict[str, Any],
    timelines: dict[str, str],
    counterexamples: dict[str, str],
    faults: dict[str, list[FaultWindow]],
) -> str:
    e = html.escape
    test_id = test["id"]
    links = " · ".join(
        f'<a href="{e(test[kind])}">{kind}</a>'
        for kind in ("history", "schedule", "counterexample")
        if kind in test
    )
    parts = [
        f"<h3>{_verdict(test['verdict'])} <code>{e(test_id)}</code></h3>",
        f"<p>rule <code>{e(rule)}</code> · {test['seconds']} s" + (f" · {links}" if links else ""),
    ]
    if test.get("message"):
        parts.append(f"<pre>{e(test['message'])}</pre>")
    windows = faults.get(test_id)
    if windows:
        parts.append(
            "<p>Faults as they happened, in seconds since the test's history began (the "
            "plot's time axis):</p><table><tr><th>fault</th><th>from (s)</th><th>to (s)</th>"
            "<th>for (s)</th><th>targets</th></tr>"
        )
        for window in windows:
            end = window.end
            parts.append(
                _row(
                    e(window.kind),
                    f"{window.start:.2f}",
                    "not healed" if end is None else f"{end:.2f}",
                    "" if end is None else f"{end - window.start:.2f}",
                    e(window.targets or "chosen at start"),
                )
            )
        parts.append("</table>")
    if test_id in counterexamples:
        parts.append(
            "<p>Counterexample (the checker's timeline; the red outlines are the minimal "
            f'set of operations that cannot be linearized):</p><div class="counterexample">'
            f"{counterexamples[test_id]}</div>"
        )
    if test_id in timelines:
        parts.append(f'<figure class="plot">{timelines[test_id]}</figure>')
    return "\n".join(parts)
