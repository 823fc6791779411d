"""Checker speed against Porcupine's figures, and a 100,000-operation history.

Run: ``python benchmarks/bench_checkers.py [--data ../shared/data] [--repeat 5]``.

Per reference data set: our total and slowest-file checking time (median of ``--repeat``
runs per file, parsing excluded, verdict only, as Porcupine's figures are) and their ratio
to the ``porcupine_seconds`` in expected.json; parsing and counterexample time are shown
apart. Then a linearizable kv history of 100,000 operations (1,000 keys, 50 clients),
generated from a sequential store with overlapping timing, checked in a child process so
its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_consensus.checkers.formats import read_history
from pytest_consensus.checkers.linearizability import check_operations
from pytest_consensus.checkers.models import model_named
from pytest_consensus.checkers.operations import pair_operations
from pytest_consensus.clients.history import Event, write_events

DATA_SETS = (("porcupine-etcd", "cas-register"), ("porcupine-kv", "kv"))


def bench_data_set(folder: Path, model_name: str, repeat: int) -> dict[str, Any]:
    expected = json.loads((folder / "expected.json").read_text())
    totals = {"ours": 0.0, "porcupine": 0.0, "parse": 0.0, "with_counterexample": 0.0}
    slowest = ("", 0.0)
    wrong = []
    medians: dict[str, float] = {}
    for name, known in sorted(expected.items()):
        begin = time.perf_counter()
        operations = pair_operations(read_history(folder / name))
        totals["parse"] += time.perf_counter() - begin
        model = model_named(model_name)
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
    }


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


CHILD = """
import json, resource, sys, time
from pytest_consensus.checkers.formats import read_history
from pytest_consensus.checkers.linearizability import check_operations
from pytest_consensus.checkers.models import model_named
from pytest_consensus.checkers.operations import pair_operations
begin = time.perf_counter()
events = read_history(sys.argv[1])
operations = pair_operations(events)
parsed = time.perf_counter()
result = check_operations(operations, model_named("kv"), counterexample=False)
done = time.perf_counter()
print(json.dumps({"linearizable": result.linearizable, "ops": result.operations,
                  "parse_s": parsed - begin, "check_s": done - parsed, "total_s": done - begin,
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_large_history(operations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        path = Path(scratch) / "large.jsonl"
        write_events(generate_kv_history(operations, 1000, 50, seed=1), path)
        baseline = subprocess.run(
            [
                sys.executable,
                "-c",
                "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
        )
        figures: dict[str, Any] = json.loads(done.stdout)
        figures["interpreter_baseline_rss_mib"] = float(baseline.stdout)
        figures["file_mib"] = path.stat().st_size / 2**20
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--large-ops", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    results: dict[str, Any] = {}
    for folder, model in DATA_SETS:
        row = bench_data_set(arguments.data / folder, model, arguments.repeat)
        results[folder] = row
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
    large = bench_large_history(arguments.large_ops)
    results["large_kv_history"] = large
    print(
        f"large kv history: {large['ops']} ops (1000 keys, 50 clients, "
        f"{large['file_mib']:.1f} MiB JSONL): linearizable={large['linearizable']}, parse "
        f"{large['parse_s']:.2f} s + check {large['check_s']:.2f} s = {large['total_s']:.2f} s; "
        f"peak RSS {large['max_rss_mib']:.0f} MiB (bare interpreter "
        f"{large['interpreter_baseline_rss_mib']:.0f} MiB)"
    )
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
