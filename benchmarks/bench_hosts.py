"""Namespace hosts: setup and teardown time, and recovery from a healed partition.

Run (as root, or with CAP_NET_ADMIN): ``python benchmarks/bench_hosts.py [--repeat 5]``.

- Host setup (namespaces, veths, addresses, the per-namespace chain) and teardown for 3 and
  5 nodes, median of the repeats; the run's bridge is made once and reported apart.
- Heal to first write: a 3-node PySyncObj cluster has its leader isolated until the majority
  elects another; after the heal, a write is retried (10 ms apart) on the *old* leader's node
  until it succeeds; the figure is the time from the heal to that success. A write on the
  majority's leader right after the heal is timed too, as the baseline of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.clients.cluster_ops import wait_for_leader
from pytest_consensus.clients.history import History
from pytest_consensus.contract.errors import ConsensusError
from pytest_consensus.hosts.firewall import Firewall
from pytest_consensus.hosts.netns import NamespaceNetwork, network_faults_unavailable
from pytest_consensus.nemesis.faults import Fault, Nemesis


def host_times(network: NamespaceNetwork, nodes: int, repeat: int) -> tuple[float, float]:
    setups, teardowns = [], []
    for _ in range(repeat):
        begin = time.perf_counter()
        cluster = network.allocate(nodes)
        setups.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        network.release(cluster)
        teardowns.append(time.perf_counter() - begin)
    return statistics.median(setups), statistics.median(teardowns)


def write_until_ok(client: object, key: str, limit: float = 60.0) -> float:
    begin = time.perf_counter()
    while time.perf_counter() - begin < limit:
        try:
            client.put(key, "v", timeout=1.0)  # type: ignore[attr-defined]
            return time.perf_counter() - begin
        except ConsensusError:
            time.sleep(0.01)
    raise RuntimeError(f"no successful write within {limit}s")


def heal_to_first_write(network: NamespaceNetwork, repeat: int) -> tuple[list[float], list[float]]:
    on_old, on_new = [], []
    for number in range(repeat):
        allocation = network.allocate(3)
        try:
            with PySyncObjAdapter().start_cluster(allocation.hosts) as cluster:
                nemesis = Nemesis(cluster, History(), Firewall(network, allocation))
                old, _ = wait_for_leader(cluster)
                fault = nemesis.apply(Fault("isolate-leader", 0, 0))
                new, _ = wait_for_leader(cluster, among=[n for n in cluster.nodes if n is not old])
                nemesis.heal(fault)
                on_new.append(write_until_ok(cluster.client(new), f"new-{number}"))
                on_old.append(write_until_ok(cluster.client(old), f"old-{number}"))
        finally:
            network.release(allocation)
    return on_old, on_new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    reason = network_faults_unavailable()
    if reason is not None:
        raise SystemExit(f"cannot benchmark namespace hosts here: {reason}")
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-bench-") as scratch:
        begin = time.perf_counter()
        network = NamespaceNetwork(Path(scratch))
        bridge = time.perf_counter() - begin
        try:
            print(f"run bridge: {bridge * 1000:.0f} ms (once per run)")
            for nodes in (3, 5):
                setup, teardown = host_times(network, nodes, arguments.repeat)
                print(
                    f"{nodes} nodes: setup {setup * 1000:.0f} ms, teardown "
                    f"{teardown * 1000:.0f} ms (median of {arguments.repeat})"
                )
            on_old, on_new = heal_to_first_write(network, arguments.repeat)
            print(
                f"heal to first write on the old leader's node: median "
                f"{statistics.median(on_old) * 1000:.0f} ms (max {max(on_old) * 1000:.0f}); "
                f"on the new leader (baseline): median {statistics.median(on_new) * 1000:.0f} ms"
            )
        finally:
            network.close()


if __name__ == "__main__":
    main()
