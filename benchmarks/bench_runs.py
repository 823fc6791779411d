"""Runs of the conformance suite, repeated with different seeds: how long each profile takes
per backend, and whether every run gives the same verdicts (a correct store must pass every
time; a broken one must fail its rule every time).

Run from the repository root:

    python benchmarks/bench_runs.py --adapter pysyncobj --profile default --runs 10
    python benchmarks/bench_runs.py --adapter etcd --profile quick --runs 3
    python benchmarks/bench_runs.py --adapter pysyncobj,etcd,nats --runs 10   # one run, 3 backends
    python benchmarks/bench_runs.py --broken --runs 10       # every broken store, 10 times
    python benchmarks/bench_runs.py --adapter etcd --select disk_faults --runs 10
    python benchmarks/bench_runs.py --adapter etcd --host docker \
        --adapter-option docker_image=local/etcd:3.5.1 --runs 3   # etcd in containers
    python benchmarks/bench_runs.py --adapter zookeeper --workers 2   # pytest -n 2 (xdist)
    python3 tests/ssh_machines.py 3 -- python3 benchmarks/bench_runs.py --adapter etcd \
        --host ssh --ssh-inventory {inventory} --runs 3          # on machines reached by SSH

Each run is a separate ``pytest`` process, as a user would start it, with its certificate
written to a scratch folder; verdicts are read from the certificate, not from the output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Broken stores, the selection that exposes each, the rule it breaks, and whether it needs
#: the fixed isolate-leader schedule (as in tests/test_broken_stores.py).
BROKEN = [
    ("follower_applies_locally:Adapter", "leader_gating", "leader-gating", False),
    ("acks_before_commit:Adapter", "deposed", "leader-gating", True),
    ("minority_hangs:Adapter", "retry", "partition-retries", True),
    ("retries_without_request_ids:Adapter", "writes_through", "partition-retries", False),
    ("two_leaders_in_a_term:Adapter", "one_leader", "consensus-safety", True),
    ("strong_reads_served_locally:Adapter", "read_levels", "read-levels", True),
    ("fsm_bugs:IteratesASetAdapter", "white_box", "fsm-determinism", False),
    ("fsm_bugs:RestoreMergesAdapter", "white_box", "fsm-determinism", False),
    ("fsm_bugs:SnapshotSharesLiveStateAdapter", "white_box", "fsm-determinism", False),
    ("fsm_bugs:CrashesOnMalformedEntriesAdapter", "white_box", "fsm-determinism", False),
    ("clock_in_state_machine:Adapter", "fsm_determinism", "fsm-determinism", False),
    (
        "leader_acks_without_replicating:Adapter",
        "consensus_safety and leader",
        "consensus-safety",
        False,
    ),
    # Issue 12: flaws real stores have, each found by a fault the suite makes sure happens.
    ("restore_merges:Adapter", "kept_away", "fsm-determinism", False),
    ("leader_reads_before_applying_its_term:Adapter", "first_strong_read", "read-levels", False),
    ("put_delete_store_ignores_request_ids:Adapter", "retried_write", "partition-retries", False),
    ("read_lease_survives_a_pause:Adapter", "paused_leader", "read-levels", False),
    ("dedup_lost_on_leader_change:Adapter", "retried_write", "partition-retries", False),
    ("follower_applies_one_in_a_hundred:Adapter", "writes_to_followers", "leader-gating", False),
    ("stale_reads_serve_uncommitted_entries:Adapter", "cut_off_serves", "read-levels", False),
    ("minority_holds_writes:Adapter", "cut_off_serves", "read-levels", False),
    ("term_and_vote_in_memory:Adapter", "keeps_the_terms", "consensus-safety", False),
    # Issue 27: found only under real load, with every member read, or by a long partition.
    ("skips_last_applied_entry:Adapter", "crash_loop", "consensus-safety", False),
    ("minority_holds_until_heal:Adapter", "writes_through", "partition-retries", False),
    # Issue 29: found only through slow or one-way links (the link proxies).
    ("lease_from_ack_arrival:Adapter", "acknowledgements_arrive_late", "read-levels", False),
    ("retry_storm_client:Adapter", "writes_through", "partition-retries", False),
]
ISOLATE_LEADER = {
    "version": 1,
    "seed": 0,
    "nodes": ["n1", "n2", "n3"],
    "faults": [{"kind": "isolate-leader", "at": 1.0, "duration": 4.0, "targets": []}],
}


def pytest_seconds(output: str) -> float | None:
    """The duration pytest reports on its closing line ("... in 171.23s (0:02:51)"): the
    tests' own time, without interpreter start-up and the certificate written afterwards."""
    found = re.findall(r" in ([0-9.]+)s", output.strip().splitlines()[-1] if output.strip() else "")
    return float(found[-1]) if found else None


def run_suite(adapter: str, seed: int, scratch: Path, *extra: str) -> tuple[float, dict[str, str]]:
    """One pytest process; its seconds and the verdict of each rule from its certificate.
    ``adapter`` may list several, comma-separated: one run certifies them side by side,
    and each rule's verdict is keyed ``backend:rule``."""
    report = Path(tempfile.mkdtemp(prefix=f"report-{seed}-", dir=scratch))  # one per run
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(f"--consensus-adapter={name}" for name in adapter.split(",")),
        f"--consensus-seed={seed}",
        f"--consensus-report={report}",
        "--consensus-progress=0",
        # The slowest tests' phases, so that a kept output says where a slow run's time went.
        "--durations=15",
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    started = time.monotonic()
    cpu_before = children_cpu_seconds()
    done = subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    seconds = time.monotonic() - started
    RUN_CPU.append(children_cpu_seconds() - cpu_before)
    certificates = sorted(report.glob("*/certificate.json"))
    if len(certificates) != len(adapter.split(",")):
        tail = "\n".join(done.stdout.splitlines()[-20:])
        raise SystemExit(
            f"run with seed {seed} wrote no certificate (exit {done.returncode}):\n"
            f"{tail}\n{done.stderr[-2000:]}"
        )
    RUN_SECONDS.append(pytest_seconds(done.stdout))
    verdicts = {}
    for path in certificates:
        certificate = json.loads(path.read_text())
        # Every run's certificate is kept: each test's seconds say where a run's time went.
        kept_certificate = EVIDENCE / "certificates" / f"{path.parent.name}-seed{seed}.json"
        kept_certificate.parent.mkdir(parents=True, exist_ok=True)
        kept_certificate.write_text(path.read_text())
        prefix = f"{path.parent.name}:" if "," in adapter else ""
        verdicts.update({prefix + rule["id"]: rule["verdict"] for rule in certificate["rules"]})
        if "," in adapter:  # backends side by side: each one's share of the run
            spent = sum(test["seconds"] for rule in certificate["rules"] for test in rule["tests"])
            print(f"  seed {seed}: {path.parent.name}'s tests took {spent:.1f} s", flush=True)
    if "fail" in verdicts.values():  # keep what pytest said: the failure is the finding
        EVIDENCE.mkdir(parents=True, exist_ok=True)
        kept = EVIDENCE / f"{adapter.replace(':', '-').replace(',', '+')}-seed{seed}.txt"
        kept.write_text(done.stdout + done.stderr)
        # The failing tests' evidence (histories, node logs) lives in the report folder,
        # which goes with the scratch folder: keep it beside the output.
        evidence = kept.with_suffix("")
        shutil.rmtree(evidence, ignore_errors=True)
        shutil.copytree(report, evidence)
        print(
            f"  (seed {seed} failed a rule; pytest's output kept in {kept}, its report and "
            f"evidence in {evidence})",
            flush=True,
        )
    return seconds, verdicts


#: Where the output, report and evidence of runs that failed a rule are kept, and every
#: run's certificate (the scratch folder is removed).
EVIDENCE = Path(tempfile.gettempdir()) / "bench-runs-evidence"

#: pytest's own seconds for each run made so far (see pytest_seconds).
RUN_SECONDS: list[float | None] = []

#: CPU seconds (user and system) of each run made so far, see children_cpu_seconds.
RUN_CPU: list[float] = []


def children_cpu_seconds() -> float:
    """CPU seconds of every process this one has waited for, and of theirs: a run's pytest
    and the node processes, proxies and clients it started and reaped. How much of the
    machine a run keeps busy, beside its wall time: a run that is mostly waiting (elections,
    fault windows) leaves room for a second pytest-xdist worker."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def correct_store(arguments: argparse.Namespace, scratch: Path) -> None:
    where = f", host {arguments.host}" if arguments.host else ""
    where += f", -n {arguments.workers}" if arguments.workers > 1 else ""
    print(f"{arguments.adapter}, profile {arguments.profile}{where}, {arguments.runs} runs")
    extra = [f"--consensus-profile={arguments.profile}"]
    extra += [f"--consensus-host={arguments.host}"] if arguments.host else []
    extra += [f"--consensus-ssh-inventory={arguments.ssh_inventory}"] * bool(
        arguments.ssh_inventory
    )
    extra += [f"--consensus-nodes={arguments.nodes}"] if arguments.nodes else []
    options = [absolute_paths(option) for option in arguments.adapter_option]
    extra += [f"--consensus-adapter-option={option}" for option in options]
    extra += ["-k", arguments.select] if arguments.select else []
    extra += ["-n", str(arguments.workers)] if arguments.workers > 1 else []
    times, passing, same = [], 0, 0
    first: dict[str, str] | None = None
    for number in range(arguments.runs):
        seed = arguments.seed_base + number
        seconds, verdicts = run_suite(arguments.adapter, seed, scratch, *extra)
        times.append(seconds)
        failed = [rule for rule, verdict in verdicts.items() if verdict == "fail"]
        passing += not failed
        first = verdicts if first is None else first
        same += verdicts == first
        shown = " ".join(f"{rule}={verdict}" for rule, verdict in verdicts.items())
        own = RUN_SECONDS[-1]
        tests = f" (tests {own:.1f} s)" if own is not None else ""
        cpu = f", CPU {RUN_CPU[-1]:.0f} s ({RUN_CPU[-1] / seconds:.2f} cores)"
        print(f"  seed {seed}: {seconds:6.1f} s{tests}{cpu}  {shown}", flush=True)
    own_times = [t for t in RUN_SECONDS if t is not None]
    print(
        f"runs without a failed rule: {passing} of {arguments.runs}; runs with the first "
        f"run's verdicts: {same} of {arguments.runs}; time median "
        f"{statistics.median(times):.1f} s, max {max(times):.1f} s (whole process, with the "
        f"certificate); pytest's own median {statistics.median(own_times or [0.0]):.1f} s, "
        f"max {max(own_times or [0.0]):.1f} s"
    )


def absolute_paths(option: str) -> str:
    """KEY=VALUE with VALUE made absolute when it names an existing file or folder here:
    each run's pytest starts in a scratch folder, where a relative path names nothing."""
    key, _, value = option.partition("=")
    return f"{key}={Path(value).resolve()}" if value and Path(value).exists() else option


def broken_stores(arguments: argparse.Namespace, scratch: Path) -> None:
    schedule = scratch / "isolate-leader.json"
    schedule.write_text(json.dumps(ISOLATE_LEADER))
    for store, selection, rule, needs_schedule in BROKEN:
        if arguments.only and arguments.only not in store:
            continue
        extra = ["-k", selection, f"--consensus-profile={arguments.profile}"]
        extra += [f"--consensus-replay={schedule}"] if needs_schedule else []
        caught, times = 0, []
        for number in range(arguments.runs):
            seconds, verdicts = run_suite(
                f"broken_stores.{store}", arguments.seed_base + number, scratch, *extra
            )
            times.append(seconds)
            caught += verdicts[rule] == "fail"
        print(
            f"  {store:50} {rule:18} failed {caught} of {arguments.runs} runs "
            f"({statistics.median(times):.1f} s each)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapter", default="pysyncobj")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed-base", type=int, default=1000)
    parser.add_argument("--broken", action="store_true", help="run the broken stores instead")
    parser.add_argument("--only", default="", help="with --broken: stores whose name has this")
    parser.add_argument("--host", default="", help="--consensus-host for the runs (default: auto)")
    parser.add_argument(
        "--ssh-inventory", default="", help="with --host ssh: the machines (tests/ssh_machines.py)"
    )
    parser.add_argument("--nodes", type=int, default=0, help="--consensus-nodes (default: 3)")
    parser.add_argument("--select", default="", help="a -k expression: run only these tests")
    parser.add_argument(
        "--workers", type=int, default=1, help="pytest-xdist workers per run (-n; default: none)"
    )
    parser.add_argument(
        "--adapter-option",
        action="append",
        default=[],
        help="KEY=VALUE passed as --consensus-adapter-option (repeatable)",
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        if arguments.broken:
            broken_stores(arguments, Path(scratch))
        else:
            correct_store(arguments, Path(scratch))


if __name__ == "__main__":
    main()
