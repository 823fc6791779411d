"""What the lossy filesystem costs: a cluster's puts per second and latency with every node's
data directory on it, against the same cluster on the plain disk, in the same run.

Run (as root, with /dev/fuse and fuse3): ``python benchmarks/bench_disks.py [--adapters
pysyncobj,etcd] [--seconds 10] [--writers 8] [--repeat 3] [--json FILE]``. Blocks of the two
set-ups alternate, so drift in the machine's load hits both alike; figures are medians.
Also: how long a power cut takes (report, kill, detach, mount again) per node.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.contract import Adapter, Cluster
from pytest_consensus.contract.errors import ConsensusError
from pytest_consensus.hosts.base import LoopbackHosts
from pytest_consensus.hosts.disks import LossyDisks, lossy_disks_unavailable
from pytest_consensus.plugin.registry import load_adapter


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load(cluster: Cluster, writers: int, seconds: float) -> dict[str, float]:
    """Unpaced writers of unique keys, each on the leader's client, for ``seconds``."""
    leader, _ = wait_for_leader(cluster, timeout=60)
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def write(index: int) -> None:
        client = cluster.client(leader)
        mine = []
        number = 0
        while time.monotonic() < deadline:
            begin = time.perf_counter()
            try:
                client.put(f"bench-{index}-{number}", f"value-{number}", timeout=5.0)
            except ConsensusError:
                continue
            mine.append(time.perf_counter() - begin)
            number += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "puts_per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def one_block(
    adapter: Adapter, hosts: LoopbackHosts, lossy: bool, writers: int, seconds: float
) -> dict[str, float]:
    specs = hosts.allocate(3, adapter.ports)
    disks = LossyDisks(specs).mount() if lossy else None
    try:
        with adapter.start_cluster(specs) as cluster:
            wait_for_leader(cluster, timeout=60)
            if disks is not None:
                disks.checkpoint()
            figures = load(cluster, writers, seconds)
            if disks is not None:
                cluster.nodes[0].kill()
                begin = time.perf_counter()
                disks.power_cut([cluster.nodes[0].name])
                figures["power_cut_s"] = time.perf_counter() - begin
            return figures
    finally:
        if disks is not None:
            disks.close()


def measure(name: str, writers: int, seconds: float, repeat: int, run_dir: Path) -> dict[str, Any]:
    adapter = load_adapter(name, {})
    hosts = LoopbackHosts(run_dir)
    plain: list[dict[str, float]] = []
    lossy: list[dict[str, float]] = []
    for _ in range(repeat):
        plain.append(one_block(adapter, hosts, False, writers, seconds))
        lossy.append(one_block(adapter, hosts, True, writers, seconds))

    def median(blocks: list[dict[str, float]], key: str) -> float:
        return statistics.median(b[key] for b in blocks)

    result: dict[str, Any] = {"adapter": name, "version": adapter.version(), "runs": repeat}
    for key in ("puts_per_s", "p50_ms", "p99_ms"):
        result[f"plain_{key}"] = median(plain, key)
        result[f"lossy_{key}"] = median(lossy, key)
    result["throughput_ratio"] = result["lossy_puts_per_s"] / result["plain_puts_per_s"]
    result["p50_added_ms"] = result["lossy_p50_ms"] - result["plain_p50_ms"]
    result["power_cut_s"] = median(lossy, "power_cut_s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapters", default="pysyncobj,etcd")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    reason = lossy_disks_unavailable()
    if reason is not None:
        sys.exit(f"cannot measure: {reason}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-disks-") as run_dir:
        for name in arguments.adapters.split(","):
            found = measure(
                name, arguments.writers, arguments.seconds, arguments.repeat, Path(run_dir)
            )
            results.append(found)
            print(
                f"{name} ({found['version']}): plain {found['plain_puts_per_s']:.0f} puts/s "
                f"p50 {found['plain_p50_ms']:.2f} ms p99 {found['plain_p99_ms']:.2f} ms; "
                f"lossy {found['lossy_puts_per_s']:.0f} puts/s p50 {found['lossy_p50_ms']:.2f} ms "
                f"p99 {found['lossy_p99_ms']:.2f} ms; throughput x{found['throughput_ratio']:.2f}, "
                f"p50 +{found['p50_added_ms']:.2f} ms; a power cut of one node "
                f"{found['power_cut_s']:.2f} s",
                flush=True,
            )
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
