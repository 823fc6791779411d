"""The unpaced write load (pytest_consensus/clients/load.py), on the in-process fake store:
unique keys, every acknowledgement in the history, bounded in count and stopped on exit."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_consensus.clients.history import History
from pytest_consensus.clients.load import WriteLoad
from pytest_consensus.clients.retry import RetryPolicy
from pytest_consensus.contract import Client, HostSpec, Node

from fake_store import FakeCluster

POLICY = RetryPolicy(deadline=2.0, attempt_timeout=0.5)


def fake_cluster(tmp_path: Path) -> FakeCluster:
    hosts = [
        HostSpec(f"n{i}", "127.0.0.1", tmp_path / f"n{i}" / "data", tmp_path / f"n{i}")
        for i in (1, 2, 3)
    ]
    return FakeCluster(hosts)


def test_writers_acknowledge_unique_writes_until_stopped(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    history = History()
    load = WriteLoad(cluster, history, workers=4, seed=7, policy=POLICY)
    with load.running():
        time.sleep(0.3)
    acknowledged = load.acknowledged()
    assert len(acknowledged) > 100
    assert {key.split("-")[0] for key in acknowledged} == {"w0", "w1", "w2", "w3"}
    assert all(write.value == "v" + key[1:] + "-7" for key, write in acknowledged.items())
    assert cluster.data == {key: write.value for key, write in acknowledged.items()}
    figures = load.figures()
    assert figures.acknowledged == len(acknowledged)
    assert figures.rate > 0
    assert "4 unpaced writers" in figures.describe()
    count = len(cluster.data)
    time.sleep(0.1)
    assert len(cluster.data) == count, "writers kept writing after the block"


def test_each_writer_stops_at_its_bound(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    load = WriteLoad(cluster, History(), workers=2, seed=1, policy=POLICY, max_writes_per_worker=25)
    with load.running():
        deadline = time.monotonic() + 10
        while len(load.acknowledged()) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
    assert len(load.acknowledged()) == 50


def test_shared_connections_open_one_client_per_member(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    opened = []
    make_client = cluster.client

    def counting_client(node: Node) -> Client:
        opened.append(node.name)
        return make_client(node)

    cluster.client = counting_client  # type: ignore[method-assign]
    WriteLoad(cluster, History(), workers=4, seed=1, policy=POLICY, shared_connections=True)
    assert sorted(opened) == ["n1", "n2", "n3"]
    opened.clear()
    WriteLoad(cluster, History(), workers=4, seed=1, policy=POLICY)
    assert len(opened) == 12
