"""etcd through the harness: time to a healthy cluster, and the harness's cost per operation.

Run: ``python benchmarks/bench_etcd.py [--repeat 5] [--ops 500] [--host netns|loopback]``.

- Time to a healthy 3-member cluster: from starting the processes to a leader followed by a
  majority (median of the repeats; target under 1 s).
- Throughput and latency of puts on the leader through the recording client against the bare
  etcd3-based client, interleaved in blocks of 50 in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_cluster import latencies, summarise

from pytest_consensus.adapters.etcd import EtcdAdapter
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.clients.history import History, RecordingClient
from pytest_consensus.hosts.providers import make_provider, resolve_host_choice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--host", default="auto")
    arguments = parser.parse_args()
    host, _ = resolve_host_choice(arguments.host)
    adapter = EtcdAdapter()
    print(f"{adapter.version()}, host {host}")
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        provider = make_provider(host, Path(scratch), "main")
        try:
            healthy = []
            for _ in range(arguments.repeat):
                allocation = provider.allocate(3, adapter.ports)
                try:
                    begin = time.perf_counter()
                    with adapter.start_cluster(allocation.hosts) as cluster:
                        wait_for_leader(cluster, timeout=60)
                        healthy.append(time.perf_counter() - begin)
                finally:
                    allocation.release()
            print(
                f"healthy 3-member cluster: median {statistics.median(healthy):.2f} s "
                f"(min {min(healthy):.2f}, max {max(healthy):.2f}; {arguments.repeat} runs)"
            )
            allocation = provider.allocate(3, adapter.ports)
            try:
                with adapter.start_cluster(allocation.hosts) as cluster:
                    leader, _ = wait_for_leader(cluster, timeout=60)
                    bare = cluster.client(leader)
                    recorded = RecordingClient(cluster.client(leader), History())
                    latencies(bare, 50, "warm")
                    bare_samples: list[float] = []
                    recorded_samples: list[float] = []
                    for _ in range(max(1, arguments.ops // 50)):
                        bare_samples += latencies(bare, 50, "bare")
                        recorded_samples += latencies(recorded, 50, "rec")
            finally:
                allocation.release()
        finally:
            provider.close()
    b, r = summarise(bare_samples), summarise(recorded_samples)
    for name, stats in (("bare", b), ("recorded", r)):
        print(
            f"put via {name:8}: p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
            f"{stats['throughput_ops_s']:.0f} ops/s ({len(bare_samples)} ops)"
        )
    print(
        f"recorded/bare: throughput x{r['throughput_ops_s'] / b['throughput_ops_s']:.3f}, "
        f"p50 x{r['p50_ms'] / b['p50_ms']:.3f}, p99 x{r['p99_ms'] / b['p99_ms']:.3f}"
    )


if __name__ == "__main__":
    main()
