"""Checker speed against Porcupine's figures, on easy and hard histories, and at scale.

Run: ``python benchmarks/bench_checkers.py [--data ../shared/data] [--repeat 3]``.

Per reference data set (porcupine-etcd, porcupine-kv, hard): our total and slowest-file
checking time (median of ``--repeat`` runs per file, parsing excluded, verdict only, as
Porcupine's figures are), their ratio to the ``porcupine_seconds`` in expected.json, the
files where we are slower than Porcupine, and the whole process as a user runs it
(``consensus-check --json`` on the folder: start-up, parsing, checking). Then generated
histories of the hard shapes at larger sizes (cas-register Jepsen logs with 10% of writes
and cas timing out, open to the end; multi-key kv EDN), up to 50,000 operations and 50
clients; start-up (``consensus-check --help`` against a bare interpreter, same run); and
``consensus-check`` on a linearizable kv history of 100,000 operations (1,000 keys, 50
clients) as JSON Lines and as EDN: wall time and peak memory, on one core and on all.
``--baseline DIR`` runs the whole-process figures with another checkout's code too.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_consensus.checkers.forked import usable_cores
from pytest_consensus.checkers.formats import (
    gc_paused,
    read_history,
    read_history_columns,
    write_edn,
)
from pytest_consensus.checkers.linearizability import check_operations
from pytest_consensus.checkers.models import model_named
from pytest_consensus.checkers.operations import pair_columns, pair_operations
from pytest_consensus.clients.history import Event, write_events

#: This checkout: the code measured unless ``--baseline`` names another.
ROOT = Path(__file__).resolve().parents[1]

#: Folder and model; hard/ names each file's model in its expected.json.
DATA_SETS = (("porcupine-etcd", "cas-register"), ("porcupine-kv", "kv"), ("hard", ""))


def bench_data_set(
    folder: Path, model_name: str, repeat: int, baseline: Path | None = None
) -> dict[str, Any]:
    expected = json.loads((folder / "expected.json").read_text())
    totals = {"ours": 0.0, "porcupine": 0.0, "parse": 0.0, "with_counterexample": 0.0}
    slowest = ("", 0.0)
    wrong = []
    medians: dict[str, float] = {}
    slower_than_porcupine: dict[str, tuple[float, float]] = {}
    for name, known in sorted(expected.items()):
        begin = time.perf_counter()
        operations = pair_operations(read_history(folder / name))
        totals["parse"] += time.perf_counter() - begin
        model = model_named(model_name or known["model"])
        samples = []
        for _ in range(repeat):
            begin = time.perf_counter()
            result = check_operations(operations, model, counterexample=False)
            samples.append(time.perf_counter() - begin)
        if result.linearizable is not known["linearizable"]:
            wrong.append(name)
        begin = time.perf_counter()
        check_operations(operations, model, counterexample=True)
        totals["with_counterexample"] += time.perf_counter() - begin
        median = statistics.median(samples)
        medians[name] = median
        if median > known["porcupine_seconds"]:
            slower_than_porcupine[name] = (median, known["porcupine_seconds"])
        totals["ours"] += median
        totals["porcupine"] += known["porcupine_seconds"]
        if median > slowest[1]:
            slowest = (name, median)
    porcupine_slowest = max(expected.items(), key=lambda item: item[1]["porcupine_seconds"])
    return {
        "files": len(expected),
        "wrong_verdicts": wrong,
        "total_s": totals["ours"],
        "porcupine_total_s": totals["porcupine"],
        "ratio_total": totals["ours"] / totals["porcupine"],
        "slowest_file": slowest[0],
        "slowest_s": slowest[1],
        "porcupine_slowest_file": porcupine_slowest[0],
        "porcupine_slowest_s": porcupine_slowest[1]["porcupine_seconds"],
        "ratio_slowest": slowest[1] / porcupine_slowest[1]["porcupine_seconds"],
        "ours_on_porcupine_slowest_s": medians[porcupine_slowest[0]],
        "parse_total_s": totals["parse"],
        "with_counterexample_total_s": totals["with_counterexample"],
        "slower_than_porcupine": slower_than_porcupine,
        "whole_process_s": whole_process(folder, model_name, expected, ROOT),
        "baseline_whole_process_s": None
        if baseline is None
        else whole_process(folder, model_name, expected, baseline),
    }


def code_at(code: Path) -> dict[str, str]:
    """The environment for a child that must import the pytest_consensus at ``code``, run
    with ``code`` as its working folder: ``python -m`` and ``-c`` put the working folder
    first on sys.path, so PYTHONPATH alone lost to the checkout the benchmark was started
    in (a baseline measured from this checkout's root was this checkout's code)."""
    _check_imports_from(code)
    return _environment(code)


def _environment(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code)}


@functools.cache
def _check_imports_from(code: Path) -> None:
    """Once per folder: a benchmark that silently measures the wrong code is worse than none."""
    found = subprocess.run(
        [sys.executable, "-c", "import pytest_consensus; print(pytest_consensus.__file__)"],
        cwd=code,
        env=_environment(code),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not found or not Path(found).resolve().is_relative_to(code.resolve()):
        raise SystemExit(f"{code}: a child process there imports {found or 'nothing'}")


def whole_process(folder: Path, model_name: str, expected: dict[str, Any], code: Path) -> float:
    """``consensus-check --json`` over the folder's files, as a user runs it, with the code
    at ``code``: one process per model, the median wall time of 3 runs, summed over models
    (start-up, reading, checking; no counterexamples)."""
    env = code_at(code)
    by_model: dict[str, list[str]] = {}
    for name, known in sorted(expected.items()):
        by_model.setdefault(model_name or known["model"], []).append(str(folder / name))
    seconds = 0.0
    for model, files in by_model.items():
        samples = []
        for _ in range(3):
            begin = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pytest_consensus.checkers.cli", "--json", "--model"]
                + [model, *files],
                capture_output=True,
                check=False,
                env=env,
                cwd=code,
            )
            samples.append(time.perf_counter() - begin)
        seconds += statistics.median(samples)
    return seconds


def generate_register_log(operations: int, clients: int, seed: int) -> str:
    """A Jepsen log of a cas register (values 0-4) that ran linearizably: each operation takes
    effect at a random point of its interval; 10% of writes and cas time out (``:info``) and
    then took effect or not, at random; a read of a nil register logs ``nil``."""
    rng = random.Random(seed)
    clock = [0.0] * clients
    planned = []
    for number in range(operations):
        client = number % clients
        call = clock[client] + rng.uniform(0.0, 0.002)
        ret = call + rng.uniform(0.001, 0.02)
        clock[client] = ret
        f = rng.choice(["read", "write", "cas"])
        value: Any = rng.randrange(5) if f == "write" else [rng.randrange(5), rng.randrange(5)]
        timed_out = f != "read" and rng.random() < 0.1
        planned.append((rng.uniform(call, ret), number, client, call, ret, f, value, timed_out))
    planned.sort()
    register: int | None = None
    lines = []
    for _point, _number, client, call, ret, f, value, timed_out in planned:
        applies = not timed_out or rng.random() < 0.5
        if f == "read":
            outcome, shown = "ok", "nil" if register is None else str(register)
        elif f == "write":
            outcome, shown = "ok", str(value)
            register = value if applies else register
        else:
            matches = register == value[0]
            outcome, shown = ("ok" if matches else "fail"), f"[{value[0]} {value[1]}]"
            register = value[1] if matches and applies else register
        invoked = "nil" if f == "read" else shown
        if timed_out:
            outcome, shown = "info", ":timed-out"
        lines.append((call, f"{client}\t:invoke\t:{f}\t{invoked}"))
        lines.append((ret, f"{client}\t:{outcome}\t:{f}\t{shown}"))
    lines.sort(key=lambda item: item[0])
    return "".join(f"INFO  jepsen.util - {text}\n" for _, text in lines)


def bench_generated(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """Hard shapes at larger sizes: parse and check times (median of ``repeat``)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        for operations in sizes:
            register = Path(scratch) / f"register-{operations}.log"
            register.write_text(generate_register_log(operations, 50, seed=operations))
            kv = Path(scratch) / f"kv-{operations}.edn"
            write_edn(generate_kv_history(operations, max(10, operations // 100), 50, 7), kv)
            for path, model in ((register, "cas-register"), (kv, "kv")):
                begin = time.perf_counter()
                ops = pair_columns(read_history_columns(path)[0])  # one process
                parsed = time.perf_counter() - begin
                samples, verdict = [], None
                for _ in range(repeat):
                    begin = time.perf_counter()
                    verdict = check_operations(
                        ops, model_named(model), counterexample=False, budget=300
                    ).linearizable
                    samples.append(time.perf_counter() - begin)
                rows.append(
                    {
                        "history": path.name,
                        "ops": len(ops),
                        "model": model,
                        "linearizable": verdict,
                        "parse_s": parsed,
                        "check_s": statistics.median(samples),
                    }
                )
    return rows


def bench_start_up(repeat: int) -> dict[str, float]:
    """``consensus-check --help`` against ``python -c pass``, medians of the same run."""

    def median_of(command: list[str]) -> float:
        samples = []
        for _ in range(repeat):
            begin = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            samples.append(time.perf_counter() - begin)
        return statistics.median(samples)

    bare = median_of([sys.executable, "-c", "pass"])
    help_ = median_of([sys.executable, "-m", "pytest_consensus.checkers.cli", "--help"])
    return {"bare_interpreter_s": bare, "help_s": help_, "help_over_bare_s": help_ - bare}


def generate_kv_history(operations: int, keys: int, clients: int, seed: int) -> list[Event]:
    """A linearizable history: clients run one operation at a time with random durations;
    each takes effect at a random point inside its interval, applied to a dict in that order."""
    rng = random.Random(seed)
    planned = []
    clock = [0.0] * clients
    for number in range(operations):
        client = number % clients
        call = clock[client] + rng.uniform(0.0, 0.002)
        ret = call + rng.uniform(0.001, 0.02)
        clock[client] = ret
        point = rng.uniform(call, ret)
        key = f"k{rng.randrange(keys)}"
        f = rng.choices(["get", "put", "append"], weights=[5, 1, 4])[0]
        planned.append((point, number, client, call, ret, key, f))
    planned.sort()
    store: dict[str, str] = {}
    timed = []
    for _point, number, client, call, ret, key, f in planned:
        if f == "get":
            value, shown = None, store.get(key, "")
        elif f == "put":
            value = shown = f"p{number}."
            store[key] = value
        else:
            value = shown = f"a{number}."
            store[key] = store.get(key, "") + value
        timed.append((call, client, "invoke", f, key, value))
        timed.append((ret, client, "ok", f, key, shown))
    timed.sort(key=lambda item: item[0])
    return [
        Event(i, round(t, 6), client, kind, f, key, value)  # type: ignore[arg-type]
        for i, (t, client, kind, f, key, value) in enumerate(timed)
    ]


#: Runs one command and prints its wall time and the peak RSS of the biggest process it
#: and its forked children had (RUSAGE_CHILDREN of a fresh helper: only theirs).
MEASURE = """
import json, resource, subprocess, sys, time
begin = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - begin
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(
    resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "status": done.returncode,
    "stdout": done.stdout}))
"""


def run_measured(command: list[str], code: Path = ROOT) -> dict[str, Any]:
    """``command`` under MEASURE, importing the code at ``code`` (see code_at)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        env=code_at(code),
        cwd=code,
    )
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def bench_large_history(operations: int, repeat: int, baseline: Path | None) -> dict[str, Any]:
    """``consensus-check --json --model kv`` on a linearizable kv history of ``operations``
    operations (1,000 keys, 50 clients) as JSON Lines and as EDN, as a user runs it: wall
    time and peak memory (median of ``repeat``), with ``--jobs 1`` and the default (one
    process per core); and with the code at ``baseline`` (its own default), same run."""
    figures: dict[str, Any] = {"ops": operations}
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        events = generate_kv_history(operations, 1000, 50, seed=1)
        paths = {"jsonl": Path(scratch) / "large.jsonl", "edn": Path(scratch) / "large.edn"}
        write_events(events, paths["jsonl"])
        write_edn(events, paths["edn"])
        figures["jsonl_mib"] = paths["jsonl"].stat().st_size / 2**20
        figures["edn_mib"] = paths["edn"].stat().st_size / 2**20
        runs: list[tuple[str, list[str], Path]] = [
            ("jobs 1", ["--jobs", "1"], ROOT),
            ("default jobs", [], ROOT),
        ]
        if baseline is not None:
            runs.append(("baseline", [], baseline))
        for format_name, path in paths.items():
            for label, options, code in runs:
                command = [sys.executable, "-m", "pytest_consensus.checkers.cli", "--json"]
                samples = [
                    run_measured([*command, *options, "--model", "kv", str(path)], code)
                    for _ in range(repeat)
                ]
                verdicts = {json.loads(sample["stdout"])["linearizable"] for sample in samples}
                figures[f"{format_name}, {label}"] = {
                    "seconds": statistics.median(sample["seconds"] for sample in samples),
                    "peak_rss_mib": max(sample["peak_rss_mib"] for sample in samples),
                    "linearizable": verdicts.pop() if len(verdicts) == 1 else None,
                }
        figures["bare_interpreter"] = statistics.median(
            run_measured([sys.executable, "-c", "pass"])["seconds"] for _ in range(repeat)
        )
        begin = time.perf_counter()
        columns, _ = read_history_columns(paths["edn"], workers=usable_cores())
        read = time.perf_counter()
        with gc_paused():  # as consensus-check pairs
            operations_read = pair_columns(columns)
        paired = time.perf_counter()
        check_operations(
            operations_read, model_named("kv"), counterexample=False, workers=usable_cores()
        )
        figures["edn_in_process"] = {
            "read_s": read - begin,
            "pair_s": paired - read,
            "check_s": time.perf_counter() - paired,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large-ops", type=int, default=100_000)
    parser.add_argument(
        "--sizes",
        default="2000,10000,50000",
        help="operations in the generated hard histories (comma-separated)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout's folder of pytest_consensus to run the whole-process figures "
        "with as well, in the same run (e.g. a git worktree of an earlier commit)",
    )
    arguments = parser.parse_args()
    arguments.data = arguments.data.resolve()  # children run in the measured code's folder
    if arguments.baseline is not None:
        arguments.baseline = arguments.baseline.resolve()
    results: dict[str, Any] = {}
    start_up = bench_start_up(7)
    results["start_up"] = start_up
    print(
        f"start-up: consensus-check --help {start_up['help_s']:.3f} s, a bare interpreter "
        f"{start_up['bare_interpreter_s']:.3f} s "
        f"(ours on top: {start_up['help_over_bare_s']:.3f} s)"
    )
    for folder, model in DATA_SETS:
        row = bench_data_set(arguments.data / folder, model, arguments.repeat, arguments.baseline)
        results[folder] = row
        slower = row["slower_than_porcupine"]
        shown = ", ".join(
            f"{name} {ours:.3f} s vs {theirs:.3f} s"
            for name, (ours, theirs) in sorted(slower.items())
            if theirs >= 0.01  # below 10 ms the figures are mostly start-up noise
        )
        print(
            f"{folder}: whole process (consensus-check --json) {row['whole_process_s']:.2f} s"
            + (
                ""
                if row["baseline_whole_process_s"] is None
                else f" (baseline {row['baseline_whole_process_s']:.2f} s)"
            )
            + "; "
            f"files slower than Porcupine: {len(slower)} of {row['files']}"
            f"{'; of those Porcupine takes 10 ms or more on: ' + shown if shown else ''}"
        )
        print(
            f"{folder}: {row['files']} files, total {row['total_s']:.3f} s vs Porcupine "
            f"{row['porcupine_total_s']:.3f} s (ratio {row['ratio_total']:.2f}); slowest "
            f"{row['slowest_file']} {row['slowest_s']:.4f} s vs Porcupine's slowest "
            f"{row['porcupine_slowest_file']} {row['porcupine_slowest_s']:.4f} s (ratio "
            f"{row['ratio_slowest']:.2f}; ours on that file "
            f"{row['ours_on_porcupine_slowest_s']:.4f} s); "
            f"parsing {row['parse_total_s']:.3f} s; with "
            f"counterexamples {row['with_counterexample_total_s']:.3f} s; wrong verdicts: "
            f"{row['wrong_verdicts'] or 'none'}"
        )
    generated = bench_generated([int(size) for size in arguments.sizes.split(",")], 1)
    results["generated"] = generated
    for row in generated:
        print(
            f"generated {row['history']}: {row['ops']} ops, linearizable={row['linearizable']}, "
            f"parse {row['parse_s']:.2f} s, check {row['check_s']:.2f} s"
        )
    large = bench_large_history(arguments.large_ops, arguments.repeat, arguments.baseline)
    results["large_kv_history"] = large
    print(
        f"large kv history: {large['ops']} ops, 1000 keys, 50 clients "
        f"({large['jsonl_mib']:.1f} MiB JSONL, {large['edn_mib']:.1f} MiB EDN); "
        f"a bare interpreter {large['bare_interpreter']:.3f} s"
    )
    for label, row in large.items():
        if isinstance(row, dict) and "seconds" in row:
            print(
                f"  consensus-check, {label}: {row['seconds']:.2f} s, peak RSS "
                f"{row['peak_rss_mib']:.0f} MiB, linearizable={row['linearizable']}"
            )
    inside = large["edn_in_process"]
    print(
        f"  EDN in one process, {usable_cores()} workers: read {inside['read_s']:.2f} s, "
        f"pair {inside['pair_s']:.2f} s, check {inside['check_s']:.2f} s"
    )
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
