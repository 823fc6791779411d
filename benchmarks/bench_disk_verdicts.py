"""How often the disk-fault tests give each store its expected verdict, over seeds.

Run from the repository's root (the broken stores are imported from tests/):
``python benchmarks/bench_disk_verdicts.py [--runs 10] [--first-seed 1] [--only NAME,...]``.
Each case runs its selection of conformance/test_disk_faults.py once per seed (``--runs``
seeds from ``--first-seed``) in a fresh pytest, and counts the runs whose consensus-safety
verdict, and failure message, are the expected ones; the output of the others is kept.
Figures, not assertions: benchmarks/README.md keeps them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    name: str
    adapter: str
    selection: str
    expected: str  # "pass" or "FAIL"
    message: str = ""  # a regex the failure must match
    options: tuple[str, ...] = ()


CASES = (
    Case(
        "acks-before-fsync (PySyncObj as shipped)",
        "broken_stores.acks_before_fsync:Adapter",
        "power_cut and whole",
        "FAIL",
        r"acknowledged writes lost after a power cut \(whole-cluster\).*raft\.journal: ",
    ),
    Case(
        "directory-never-synced",
        "broken_stores.directory_never_synced:Adapter",
        "power_cut and whole",
        "FAIL",
        r"acknowledged writes lost after a power cut.*\(created or renamed\)",
    ),
    Case(
        "trusts-a-damaged-journal",
        "broken_stores.trusts_a_damaged_journal:Adapter",
        "refused_or_repaired and flip",
        "FAIL",
        r"flipped on every copy of the acknowledged value .* which then started",
    ),
    Case(
        "syncs-before-acknowledging (fixed)",
        "broken_stores.syncs_before_acknowledging:Adapter",
        "power_cut",
        "pass",
    ),
    Case(
        "checksums-its-journal (fixed)",
        "broken_stores.checksums_its_journal:Adapter",
        "refused_or_repaired",
        "pass",
    ),
    Case(
        "nats (default sync)",
        "nats",
        "power_cut and whole",
        "FAIL",
        r"acknowledged writes lost after a power cut \(whole-cluster\).*msgs/.*\.blk",
    ),
    Case("nats sync=always", "nats", "disk_faults", "pass", options=("sync=always",)),
    Case("etcd", "etcd", "disk_faults", "pass"),
)


def run(case: Case, seed: int, folder: Path, evidence: Path) -> tuple[bool, str, float]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"--consensus-adapter={case.adapter}",
        *(f"--consensus-adapter-option={option}" for option in case.options),
        f"--consensus-seed={seed}",
        "-k",
        case.selection,
        "-p",
        "no:cacheprovider",
        "--pyargs",
        "pytest_consensus.conformance",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    began = time.monotonic()
    done = subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, timeout=1800
    )
    seconds = time.monotonic() - began
    verdict = re.search(r"^consensus-safety +(\S+)", done.stdout, re.MULTILINE)
    found = verdict.group(1) if verdict else "none"
    as_expected = found == case.expected and (
        not case.message or re.search(case.message, done.stdout) is not None
    )
    if not as_expected:
        evidence.mkdir(parents=True, exist_ok=True)
        kept = evidence / f"{re.sub(r'[^a-z0-9]+', '-', case.name.lower())}-seed{seed}.txt"
        kept.write_text(done.stdout + done.stderr)
        print(f"  seed {seed}: {found}, output kept in {kept}", flush=True)
    return as_expected, found, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1, help="seeds run from here on")
    parser.add_argument("--only", default="", help="comma-separated case names (prefixes)")
    parser.add_argument(
        "--evidence",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-disk-verdicts-evidence",
        help="where the output of a run without the expected verdict is kept",
    )
    arguments = parser.parse_args()
    wanted = [w for w in arguments.only.split(",") if w]
    for case in CASES:
        if wanted and not any(case.name.startswith(w) for w in wanted):
            continue
        results = []
        with tempfile.TemporaryDirectory(prefix="bench-disk-verdicts-") as folder:
            for seed in range(arguments.first_seed, arguments.first_seed + arguments.runs):
                results.append(run(case, seed, Path(folder), arguments.evidence))
        good = sum(1 for ok, _, _ in results if ok)
        others = sorted({found for ok, found, _ in results if not ok})
        median = sorted(s for _, _, s in results)[len(results) // 2]
        print(
            f"{case.name}: expected {case.expected} in {good} of {len(results)} runs"
            + (f" (otherwise: {', '.join(others)})" if others else "")
            + f"; median {median:.0f} s per run",
            flush=True,
        )


if __name__ == "__main__":
    main()
