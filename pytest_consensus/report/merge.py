"""``consensus-merge``: one certificate from the certificates of the shards of a run
(``--consensus-shard=K/N``), as if the unsplit run had written it.

    consensus-merge OUT SHARD [SHARD ...]

Each SHARD is a shard's report folder (``--consensus-report``), one adapter's folder in it,
or a ``certificate.json``. For each adapter the shards certified, OUT/<adapter>/ gets the
merged certificate (.json, .md, .html) and every test's evidence: each rule's verdict from
all of its tests, the figures recomputed from every test's history. The merge refuses
shards that do not make one run: a missing or repeated shard, different seeds, options,
profiles, hosts, versions of the store or of the suite, or a test in two shards.

Exit status: 0 when every merged rule passes or is n/a, 1 when a rule fails or the harness
failed in a test, 2 when the shards cannot be merged (the message says why).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_consensus.report.certificate import (
    OUTCOMES,
    CertificateError,
    build_certificate,
    read_certificate,
)
from pytest_consensus.report.folder import (
    EVIDENCE_FILES,
    copy_evidence,
    figures_of_test,
    reported_by_tests,
    slug,
    write_report_folder,
)
from pytest_consensus.report.measure import summarize
from pytest_consensus.report.records import TestRecord

EXIT_PASS, EXIT_FAIL, EXIT_UNUSABLE = 0, 1, 2
#: What the shards of one run share; a difference means they are not one certification.
SAME_RUN = ("seed", "nodes", "profile", "host", "replay")
#: A certificate's test verdict back to the outcome its record had.
OUTCOME_OF_VERDICT = {verdict: outcome for outcome, verdict in OUTCOMES.items()}


class MergeError(ValueError):
    """Shards that do not make one run, or files that are not shards' certificates."""


@dataclass(frozen=True)
class ShardCertificate:
    path: Path
    document: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.document["run"]
        return run

    @property
    def shard(self) -> dict[str, Any]:
        shard: dict[str, Any] = self.run["shard"]
        return shard


def certificate_paths(inputs: Sequence[Path]) -> list[Path]:
    """The certificate files an input names: itself, or those in a report or adapter folder."""
    paths: list[Path] = []
    for given in inputs:
        if given.is_file():
            paths.append(given)
        elif (given / "certificate.json").is_file():
            paths.append(given / "certificate.json")
        elif given.is_dir() and sorted(given.glob("*/certificate.json")):
            paths += sorted(given.glob("*/certificate.json"))
        else:
            raise MergeError(
                f"{given}: no certificate.json there; give a shard's --consensus-report "
                "folder, an adapter's folder in it, or a certificate.json"
            )
    return paths


def read_shards(paths: Sequence[Path]) -> dict[str, list[ShardCertificate]]:
    """The shards' certificates by adapter name, each checked to be a shard's."""
    by_adapter: dict[str, list[ShardCertificate]] = {}
    for path in paths:
        try:
            document = read_certificate(path)
        except CertificateError as error:
            raise MergeError(str(error)) from None
        if "shard" not in document.get("run", {}):
            raise MergeError(
                f"{path} is not a shard's certificate: its run had no --consensus-shard, so "
                "it is whole already"
            )
        name = document["adapter"]["name"]
        by_adapter.setdefault(name, []).append(ShardCertificate(path.resolve(), document))
    return by_adapter


def check_one_run(name: str, shards: list[ShardCertificate]) -> list[ShardCertificate]:
    """The shards in order, once each check passed that they are the N shares of one run."""
    totals = {s.shard["total"] for s in shards}
    if len(totals) != 1:
        raise MergeError(f"{name}: shards of different splits ({sorted(totals)} shares)")
    (total,) = totals
    indexes = sorted(s.shard["index"] for s in shards)
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if repeated:
        raise MergeError(f"{name}: shard(s) {repeated} of {total} given more than once")
    missing = sorted(set(range(1, total + 1)) - set(indexes))
    if missing:
        raise MergeError(
            f"{name}: shard(s) {', '.join(f'{i}/{total}' for i in missing)} missing; merge "
            f"all {total} shards of the run"
        )
    ordered = sorted(shards, key=lambda s: int(s.shard["index"]))
    first = ordered[0]
    differs = []
    for shard in ordered[1:]:
        for key in SAME_RUN:
            if shard.run.get(key) != first.run.get(key):
                differs.append(
                    f"{key} {first.run.get(key)!r} in {first.path}, "
                    f"{shard.run.get(key)!r} in {shard.path}"
                )
        for part, key in (
            ("adapter", "version"),
            ("adapter", "class"),
            ("suite", "pytest_consensus"),
        ):
            if shard.document[part].get(key) != first.document[part].get(key):
                differs.append(
                    f"{part} {key} {first.document[part].get(key)!r} in "
                    f"{first.path}, {shard.document[part].get(key)!r} in {shard.path}"
                )
        if unsplit(shard.run["command"]) != unsplit(first.run["command"]):
            differs.append(
                f"command {first.run['command']!r} in {first.path}, "
                f"{shard.run['command']!r} in {shard.path}"
            )
    if differs:
        raise MergeError(f"{name}: the shards are not one run: " + "; ".join(differs))
    seen: dict[str, Path] = {}
    for shard in ordered:
        for test in tests_of(shard):
            if test in seen:
                raise MergeError(f"{name}: {test} ran in two shards ({seen[test]}, {shard.path})")
            seen[test] = shard.path
    expected = first.shard.get("unsplit_tests")
    if expected is not None and len(seen) != expected:
        raise MergeError(
            f"{name}: the shards hold {len(seen)} tests, the unsplit run {expected}: a shard "
            "ran another selection (the same -k, -m and test paths are needed in every job)"
        )
    return ordered


def tests_of(shard: ShardCertificate) -> list[str]:
    return [test["id"] for rule in shard.document["rules"] for test in rule["tests"]]


def unsplit(command: str) -> str:
    """A shard's command without its --consensus-shard: the unsplit run's."""
    return shlex.join(p for p in shlex.split(command) if not p.startswith("--consensus-shard="))


def records_of(name: str, shard: ShardCertificate) -> list[TestRecord]:
    """The shard's tests as the records a run keeps, evidence paths pointing into its
    folder, and the figures each test reported."""
    reported: dict[str, dict[str, Any]] = {}
    for figure in shard.document["measurements"].get("reported_by_tests", []):
        reported.setdefault(figure["test"], {})[figure["name"]] = figure["value"]
    records = []
    for rule in shard.document["rules"]:
        for test in rule["tests"]:
            properties: dict[str, Any] = dict(reported.get(test["id"], {}))
            for kind, prop, _ in EVIDENCE_FILES:
                if kind in test:
                    properties[prop] = str(shard.folder / test[kind])
            records.append(
                TestRecord(
                    nodeid=test["id"],
                    rule=rule["id"],
                    adapter=name,
                    outcome=OUTCOME_OF_VERDICT.get(test["verdict"], test["verdict"]),
                    message=test.get("message", ""),
                    seconds=float(test["seconds"]),
                    properties=properties,
                )
            )
    return records


def merged_run(shards: list[ShardCertificate]) -> dict[str, Any]:
    """The unsplit run's description: the shared settings, the shards' time added up, how
    each shard made network faults, and each shard's own record."""
    first = shards[0].run
    faults = [s.run.get("network_faults", {}) for s in shards]
    network_faults = faults[0]
    if any(f != faults[0] for f in faults):
        kinds = dict.fromkeys(kind for f in faults for kind in f)
        network_faults = {
            kind: "; ".join(
                f"shard {s.shard['index']}: {f.get(kind, 'not recorded')}"
                for s, f in zip(shards, faults, strict=True)
            )
            for kind in kinds
        }
    return {
        **{key: first.get(key) for key in SAME_RUN},
        "network_faults": network_faults,
        "started": min(s.run.get("started", "") for s in shards),
        "seconds": round(sum(float(s.run.get("seconds", 0.0)) for s in shards), 1),
        "command": unsplit(first["command"]),
        "shards": [
            {
                "index": s.shard["index"],
                "total": s.shard["total"],
                "certificate": str(s.path),
                "started": s.run.get("started"),
                "seconds": s.run.get("seconds"),
                "platform": s.document["suite"].get("platform"),
                "verdict": s.document["verdict"],
            }
            for s in shards
        ],
    }


def merge_adapter(name: str, shards: list[ShardCertificate], out: Path) -> dict[str, Any]:
    """Write the merged certificate of one adapter into OUT/<adapter>/; the certificate."""
    ordered = check_one_run(name, shards)
    records = [record for shard in ordered for record in records_of(name, shard)]
    records.sort(key=lambda r: r.nodeid)  # one order whatever the split
    folder = out / slug(name)
    evidence = copy_evidence(records, folder)
    for record in records:  # the copies, not the shards' files, from now on
        for kind, prop, _ in EVIDENCE_FILES:
            if kind in evidence[record.nodeid]:
                record.properties[prop] = str(folder / evidence[record.nodeid][kind])
    figures = {r.nodeid: figures_of_test(r) for r in records}
    measurements: dict[str, Any] = summarize(f for f in figures.values() if f).as_dict()
    measurements["reported_by_tests"] = reported_by_tests(records)
    first = ordered[0].document
    certificate = build_certificate(
        adapter=first["adapter"],
        run=merged_run(ordered),
        tests=records,
        measurements=measurements,
        evidence=evidence,
        suite=first["suite"],
    )
    write_report_folder(folder, certificate, records, figures)
    return certificate


def merge(out: Path, inputs: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Merged certificates by adapter; raises MergeError before writing anything when the
    shards of any adapter do not make one run."""
    by_adapter = read_shards(certificate_paths(inputs))
    for name, shards in by_adapter.items():
        check_one_run(name, shards)
    return {name: merge_adapter(name, shards, out) for name, shards in by_adapter.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="consensus-merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="folder for the merged report")
    parser.add_argument("shards", nargs="+", type=Path, metavar="SHARD")
    arguments = parser.parse_args(argv)
    try:
        certificates = merge(arguments.out, arguments.shards)
    except MergeError as error:
        print(f"consensus-merge: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    failing = False
    for name, certificate in certificates.items():
        total = certificate["run"]["shards"][0]["total"]
        print(f"{name}: {certificate['verdict']} (merged from {total} shards)")
        for rule in certificate["rules"]:
            print(f"  {rule['id']:<20} {rule['verdict']}")
            failing |= rule["verdict"] in ("fail", "harness error")
        print(f"  certificate: {arguments.out / slug(name) / 'certificate.json'}")
    return EXIT_FAIL if failing else EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
