"""Harness benchmarks: time to a first leader, and what recording costs per operation.

Run: ``python benchmarks/bench_cluster.py [--repeat 5] [--ops 500] [--json FILE]``.
Figures are reported with the baseline measured in the same run (bare client calls), as
ratios; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.hosts.base import LoopbackHosts


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_to_first_leader(nodes: int, repeat: int, hosts: LoopbackHosts) -> dict[str, Any]:
    adapter = PySyncObjAdapter()
    started, elected = [], []
    for _ in range(repeat):
        specs = hosts.allocate(nodes, adapter.ports)
        begin = time.perf_counter()
        with adapter.start_cluster(specs) as cluster:
            started.append(time.perf_counter() - begin)
            wait_for_leader(cluster, timeout=60)
            elected.append(time.perf_counter() - begin)
    return {
        "nodes": nodes,
        "runs": repeat,
        "processes_serving_median_s": statistics.median(started),
        "first_leader_median_s": statistics.median(elected),
        "first_leader_min_s": min(elected),
        "first_leader_max_s": max(elected),
    }


def latencies(client: Client, operations: int, prefix: str) -> list[float]:
    samples = []
    for number in range(operations):
        begin = time.perf_counter()
        client.put(f"{prefix}-{number % 50}", str(number), timeout=5)
        samples.append(time.perf_counter() - begin)
    return samples


def summarise(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(samples, 0.50) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
        "throughput_ops_s": len(samples) / sum(samples),
    }


def recording_cost(operations: int, hosts: LoopbackHosts) -> dict[str, Any]:
    """Puts through the bare client and through the recorder, interleaved in blocks so
    drift in the machine's load affects both alike."""
    adapter = PySyncObjAdapter()
    with adapter.start_cluster(hosts.allocate(3, adapter.ports)) as cluster:
        leader, _ = wait_for_leader(cluster, timeout=60)
        bare = cluster.client(leader)
        recorded = RecordingClient(cluster.client(leader), History())
        latencies(bare, 50, "warm")
        bare_samples: list[float] = []
        recorded_samples: list[float] = []
        block = 50
        for _ in range(max(1, operations // block)):
            bare_samples += latencies(bare, block, "bare")
            recorded_samples += latencies(recorded, block, "rec")
        bare_stats, recorded_stats = summarise(bare_samples), summarise(recorded_samples)
        stale: list[float] = []
        for _ in range(200):
            begin = time.perf_counter()
            bare.get("bare-1", level=ReadLevel.STALE, timeout=5)
            stale.append(time.perf_counter() - begin)
    overhead = recorder_overhead_us()
    return {
        "operations_each": len(bare_samples),
        "bare": bare_stats,
        "recorded": recorded_stats,
        "ratio_p50_recorded_over_bare": recorded_stats["p50_ms"] / bare_stats["p50_ms"],
        "ratio_p99_recorded_over_bare": recorded_stats["p99_ms"] / bare_stats["p99_ms"],
        "recorder_cost_us_per_op": overhead,
        "recorder_cost_share_of_p50": overhead / 1e3 / bare_stats["p50_ms"],
        "stale_read_p50_ms": percentile(stale, 0.5) * 1e3,
    }


class NullClient(Client):
    node = "null"

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        return None

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        return None


def recorder_overhead_us(operations: int = 20_000) -> float:
    """The recorder's own cost per operation, against a client that does nothing."""
    bare, recorded = NullClient(), RecordingClient(NullClient(), History())
    begin = time.perf_counter()
    for number in range(operations):
        bare.put("k", str(number), timeout=1)
    baseline = time.perf_counter() - begin
    begin = time.perf_counter()
    for number in range(operations):
        recorded.put("k", str(number), timeout=1)
    return (time.perf_counter() - begin - baseline) / operations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        hosts = LoopbackHosts(Path(scratch))
        results = {
            "first_leader": [time_to_first_leader(n, arguments.repeat, hosts) for n in (3, 5)],
            "recording": recording_cost(arguments.ops, hosts),
        }
    for row in results["first_leader"]:
        print(
            f"first leader, {row['nodes']} nodes: median {row['first_leader_median_s']:.2f}s "
            f"(min {row['first_leader_min_s']:.2f}, max {row['first_leader_max_s']:.2f}; "
            f"processes serving after {row['processes_serving_median_s']:.2f}s; "
            f"{row['runs']} runs)"
        )
    rec = results["recording"]
    for name in ("bare", "recorded"):
        stats = rec[name]
        print(
            f"put via {name:8}: p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
            f"{stats['throughput_ops_s']:.0f} ops/s ({rec['operations_each']} ops)"
        )
    print(
        f"recorded/bare: p50 x{rec['ratio_p50_recorded_over_bare']:.3f}, "
        f"p99 x{rec['ratio_p99_recorded_over_bare']:.3f}; recorder's own cost "
        f"{rec['recorder_cost_us_per_op']:.1f} us/op = "
        f"{rec['recorder_cost_share_of_p50'] * 100:.2f}% of the bare p50"
    )
    print(f"stale read p50: {rec['stale_read_p50_ms']:.2f} ms")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
