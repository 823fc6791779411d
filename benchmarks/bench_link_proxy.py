"""What the link proxies cost: a 3-node cluster's puts per second and latency with every
peer and client connection passing through idle link proxies, against the same cluster on
direct links, in the same run, on the namespace host.

Run (as root): ``python benchmarks/bench_link_proxy.py [--adapters etcd,pysyncobj]
[--seconds 10] [--repeat 3] [--json FILE]``. Two loads: one writer (latency of a quiet
cluster) and eight unpaced writers (etcd reaches about 1000 puts/s here). Blocks of the two
set-ups alternate, so drift in the machine's load hits both alike; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_disks import load

from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.contract import Adapter
from pytest_consensus.hosts.links import LinkProxies
from pytest_consensus.hosts.netns import NamespaceNetwork, network_faults_unavailable
from pytest_consensus.plugin.registry import load_adapter

LOADS = {"one writer": 1, "eight writers": 8}


def one_block(
    adapter: Adapter, network: NamespaceNetwork, proxied: bool, seconds: float
) -> dict[str, dict[str, float]]:
    allocation = network.allocate(3)
    proxies = LinkProxies(network, allocation).start() if proxied else None
    try:
        with adapter.start_cluster(allocation.hosts) as cluster:
            wait_for_leader(cluster, timeout=60)
            return {name: load(cluster, writers, seconds) for name, writers in LOADS.items()}
    finally:
        if proxies is not None:
            proxies.close()
        network.release(allocation)


def measure(name: str, seconds: float, repeat: int, network: NamespaceNetwork) -> dict[str, Any]:
    adapter = load_adapter(name, {})
    blocks: dict[bool, list[dict[str, dict[str, float]]]] = {False: [], True: []}
    for _ in range(repeat):
        for proxied in (False, True):
            blocks[proxied].append(one_block(adapter, network, proxied, seconds))
    result: dict[str, Any] = {"adapter": name, "version": adapter.version(), "runs": repeat}
    for load_name in LOADS:
        figures = {}
        for proxied, label in ((False, "direct"), (True, "proxied")):
            for key in ("puts_per_s", "p50_ms", "p99_ms"):
                samples = [block[load_name][key] for block in blocks[proxied]]
                figures[f"{label}_{key}"] = statistics.median(samples)
        figures["throughput_ratio"] = figures["proxied_puts_per_s"] / figures["direct_puts_per_s"]
        figures["p50_added_ms"] = figures["proxied_p50_ms"] - figures["direct_p50_ms"]
        result[load_name] = figures
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapters", default="etcd,pysyncobj")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    reason = network_faults_unavailable()
    if reason is not None:
        sys.exit(f"cannot measure: {reason}")
    results = []
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-links-") as run_dir:
        network = NamespaceNetwork(Path(run_dir))
        try:
            for name in arguments.adapters.split(","):
                found = measure(name, arguments.seconds, arguments.repeat, network)
                results.append(found)
                for load_name in LOADS:
                    f = found[load_name]
                    print(
                        f"{name} ({found['version']}), {load_name}: direct "
                        f"{f['direct_puts_per_s']:.0f} puts/s p50 {f['direct_p50_ms']:.2f} ms "
                        f"p99 {f['direct_p99_ms']:.2f} ms; proxied {f['proxied_puts_per_s']:.0f} "
                        f"puts/s p50 {f['proxied_p50_ms']:.2f} ms p99 {f['proxied_p99_ms']:.2f} "
                        f"ms; throughput x{f['throughput_ratio']:.2f}, p50 "
                        f"+{f['p50_added_ms']:.2f} ms",
                        flush=True,
                    )
        finally:
            network.close()
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
