"""The certificate: what a run established about one adapter, as a versioned JSON document
(schema in docs/certificate.md), its Markdown rendering, and the comparison of two
certificates that CI uses to catch a rule going from pass to fail."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_consensus.report.records import COUNTEREXAMPLE_PROPERTY, TestRecord, headline
from pytest_consensus.report.rules import RULES
from pytest_consensus.report.verdicts import RuleOutcome

SCHEMA = "pytest-consensus/certificate"
SCHEMA_VERSION = 1

#: How a certificate names each test outcome.
OUTCOMES = {
    "passed": "pass",
    "failed": "fail",
    "skipped": "n/a",
    "xfailed": "known failure",
    "error": "harness error",
    "not run": "not run",
}


#: Every figure of a certificate, in words.
MEASUREMENT_LABELS = {
    "operations": "client operations recorded",
    "acknowledged": "acknowledged",
    "latency_p50_ms": "latency p50 (ms)",
    "latency_p99_ms": "latency p99 (ms)",
    "latency_max_ms": "latency max (ms)",
    "throughput_per_second": "throughput (acknowledged / s)",
    "availability_during_partitions": "availability during partitions",
    "operations_during_partitions": "operations invoked during partitions",
    "recovery_median_seconds": "recovery after heal, median (s)",
    "recovery_max_seconds": "recovery after heal, max (s)",
    "heals": "heals",
}


def show_measurement(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if name == "availability_during_partitions":
        return f"{value * 100:.1f} %"
    return str(value)


class CertificateError(ValueError):
    """A certificate file that cannot be read or is not one this version understands."""


def rule_verdict(tests: Sequence[TestRecord]) -> tuple[str, str]:
    """The rule's verdict from its tests (as the terminal matrix has it), and why."""
    outcome = RuleOutcome.of(tests)
    verdict = outcome.verdict
    if verdict == "fail":
        return verdict, "\n".join(
            f"{t.nodeid.split('::')[-1]}: {headline(t.message)}"
            for t in tests
            if t.outcome == "failed"
        )
    if verdict == "harness error":
        return verdict, f"no verdict, the harness failed: {outcome.error_reason}"
    if verdict == "known failure":
        return verdict, "; ".join(t.message for t in tests if t.outcome == "xfailed")
    if verdict == "pass":
        na = f", {outcome.skipped} n/a ({outcome.reason})" if outcome.skipped else ""
        return verdict, f"{outcome.passed} tests passed{na}"
    if verdict == "n/a":
        return verdict, outcome.reason
    return verdict, "no test of this rule was selected"


def build_certificate(
    *,
    adapter: dict[str, Any],
    run: dict[str, Any],
    tests: Sequence[TestRecord],
    measurements: dict[str, Any],
    evidence: dict[str, dict[str, str]],
    suite: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The certificate document. ``evidence`` maps a test id to its files, relative to the
    certificate (history, schedule, counterexample); ``suite`` is what ran the tests (this
    process unless given: a merge passes the shards')."""
    import pytest

    import pytest_consensus

    rules = []
    for rule_id, title in RULES.items():
        rule_tests = [t for t in tests if t.rule == rule_id]
        verdict, reason = rule_verdict(rule_tests)
        rules.append(
            {
                "id": rule_id,
                "title": title,
                "verdict": verdict,
                "reason": reason,
                "tests": [_test_entry(t, evidence.get(t.nodeid, {})) for t in rule_tests],
            }
        )
    verdicts = [r["verdict"] for r in rules]
    overall = next(
        (v for v in ("fail", "harness error", "pass") if v in verdicts),
        "n/a",
    )
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "verdict": overall,
        "adapter": adapter,
        "suite": suite
        or {
            "pytest_consensus": pytest_consensus.__version__,
            "pytest": pytest.__version__,
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "platform": platform.platform(),
        },
        "run": run,
        "rules": rules,
        "measurements": measurements,
    }


def _test_entry(test: TestRecord, files: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": test.nodeid,
        "verdict": OUTCOMES.get(test.outcome, test.outcome),
        "seconds": round(test.seconds, 3),
    }
    if test.message:
        entry["message"] = test.message
    entry.update(files)
    return entry


def write_json(certificate: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(certificate, indent=2, sort_keys=False) + "\n")
    return path


def read_certificate(path: Path) -> dict[str, Any]:
    """A certificate written by this or an earlier compatible version, or a clear error."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise CertificateError(f"cannot read certificate {path}: {error.strerror}") from None
    except ValueError as error:
        raise CertificateError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise CertificateError(
            f'{path} is not a pytest-consensus certificate (no "schema": "{SCHEMA}"); '
            "pass the certificate.json a run with --consensus-report wrote"
        )
    version = document.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CertificateError(
            f"{path} has schema version {version!r}; this pytest-consensus reads versions up "
            f"to {SCHEMA_VERSION}: upgrade pytest-consensus to compare with it"
        )
    if not isinstance(document.get("adapter"), dict) or "name" not in document["adapter"]:
        raise CertificateError(f"{path}: certificate names no adapter")
    return document


@dataclass(frozen=True)
class RuleChange:
    rule: str
    old: str
    new: str
    reason: str

    @property
    def regression(self) -> bool:
        return self.old == "pass" and self.new == "fail"

    def describe(self) -> str:
        what = "REGRESSION" if self.regression else "changed"
        because = f": {self.reason}" if self.new == "fail" and self.reason else ""
        return f"{what}: {self.rule} {self.old} -> {self.new}{because}"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[RuleChange]:
    """Rules whose verdict differs between two certificates of one adapter."""
    old_rules = {r["id"]: r for r in old.get("rules", [])}
    changes = []
    for rule in new["rules"]:
        before = old_rules.get(rule["id"], {}).get("verdict", "absent")
        if before != rule["verdict"]:
            changes.append(RuleChange(rule["id"], before, rule["verdict"], rule["reason"]))
    return changes


def render_markdown(certificate: dict[str, Any]) -> str:
    """The certificate for humans: verdicts with reasons, then the run and the figures."""
    adapter, suite, run = certificate["adapter"], certificate["suite"], certificate["run"]
    lines = [
        f"# Certificate: {adapter['name']} ({adapter['version']})",
        "",
        f"**Verdict: {certificate['verdict']}** · pytest-consensus {suite['pytest_consensus']}, "
        f"pytest {suite['pytest']}, Python {suite['python']} · seed {run['seed']}, "
        f"{run['nodes']} nodes, profile {run['profile']}, host {run['host']}",
        "",
    ]
    faults = run.get("network_faults", {})  # how each network fault was made; older lack it
    lines += [f"- {kind.replace('_', ' ')}: {how}" for kind, how in faults.items()]
    lines += [""] * bool(faults) + ["| rule | verdict | why |", "|---|---|---|"]
    for rule in certificate["rules"]:
        reason = rule["reason"].replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| `{rule['id']}` | {rule['verdict']} | {reason} |")
    lines += ["", "## Measurements", ""]
    measurements = certificate["measurements"]
    for name, label in MEASUREMENT_LABELS.items():
        if name in measurements:
            lines.append(f"- {label}: {show_measurement(name, measurements[name])}")
    for extra in measurements.get("reported_by_tests", []):
        test = extra["test"].split("::")[-1]
        lines.append(f"- {extra['text']} (`{test}`)")
    lines += ["", "## Tests", ""]
    for rule in certificate["rules"]:
        for test in rule["tests"]:
            links = ", ".join(
                f"[{kind}]({test[kind]})"
                for kind in ("history", "schedule", COUNTEREXAMPLE_PROPERTY.split("_")[1])
                if kind in test
            )
            lines.append(
                f"- `{test['id']}`: {test['verdict']} ({test['seconds']} s)"
                + (f" · {links}" if links else "")
            )
            if test["verdict"] in ("fail", "harness error") and test.get("message"):
                lines.append(f"  - {headline(test['message'])}")
    return "\n".join(lines) + "\n"
