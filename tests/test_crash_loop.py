"""The crash loop's own logic, on the in-process fake store: who is killed, when, and what is
recorded. (The loop against real stores is conformance/test_crash_loop.py, and the broken
store it must fail is in tests/test_broken_stores.py.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_consensus.clients.history import History
from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import NodeStartError
from pytest_consensus.nemesis.crash_loop import CrashLoop, CrashLoopPlan, Kill, kills_around

from fake_store import FakeCluster, FakeNode

pytestmark = pytest.mark.usefixtures("tests_on_path")

FAST = CrashLoopPlan(seconds=0.6, interval=(0.02, 0.04), down=(0.005, 0.01), max_kills=200)


def fake_cluster() -> FakeCluster:
    return FakeCluster([HostSpec(f"n{i}", "127.0.0.1", Path("d"), Path("l")) for i in (1, 2, 3)])


class WatchedNode(FakeNode):
    """Counts how many members are down whenever one is killed."""

    down_at_kills: list[int] = []

    def kill(self) -> None:
        WatchedNode.down_at_kills.append(sum(not n.running for n in self.store.nodes))
        super().kill()


def test_the_loop_kills_and_restarts_one_member_at_a_time_and_records_each() -> None:
    cluster = fake_cluster()
    cluster.nodes = [WatchedNode(node.host, cluster) for node in cluster.nodes]
    for node in cluster.nodes:
        node.start()
    history = History()
    kills = CrashLoop(cluster, history, FAST, random.Random(7)).run()

    assert len(kills) >= 10
    assert all(node.is_running() for node in cluster.nodes), "every member is up at the end"
    assert set(WatchedNode.down_at_kills) == {0}, "never two members down at once"
    assert all(k.at < k.restarted_at for k in kills)
    nemesis = [(e.f, e.value) for e in history.events]
    assert nemesis[:2] == [("kill", [kills[0].node]), ("restart", [kills[0].node])]
    assert len(nemesis) == 2 * len(kills)
    assert {k.node for k in kills} == {"n1", "n2", "n3"}


def test_about_a_third_of_kills_go_to_the_member_restarted_last() -> None:
    plan = CrashLoopPlan(seconds=5.0, interval=(0.0, 0.0), down=(0.0, 0.0), max_kills=600)
    kills = CrashLoop(fake_cluster(), History(), plan, random.Random(3)).run()
    assert len(kills) == 600  # the bound on kills holds whatever the clock does
    again = [k for k in kills[1:] if k.catching_up]
    pairs = zip(kills, kills[1:], strict=False)
    assert all(k.node == previous.node for previous, k in pairs if k.catching_up)
    assert 0.25 < len(again) / len(kills) < 0.42


def test_the_same_seed_gives_the_same_kills() -> None:
    plan = CrashLoopPlan(seconds=5.0, interval=(0.0, 0.0), down=(0.0, 0.0), max_kills=50)
    first = [k.node for k in CrashLoop(fake_cluster(), History(), plan, random.Random(5)).run()]
    again = [k.node for k in CrashLoop(fake_cluster(), History(), plan, random.Random(5)).run()]
    assert first == again


def test_a_member_that_does_not_come_back_stops_the_loop_with_its_start_error() -> None:
    class NeverBack(FakeNode):
        def start(self) -> None:
            if getattr(self, "started_once", False):
                raise NodeStartError(self.name, "it exited", "panic: bad snapshot")
            self.started_once = True
            super().start()

    cluster = fake_cluster()
    cluster.nodes = [NeverBack(node.host, cluster) for node in cluster.nodes]
    for node in cluster.nodes:
        node.start()
    loop = CrashLoop(cluster, History(), FAST, random.Random(1))
    with pytest.raises(NodeStartError, match="bad snapshot"):
        loop.run()
    assert loop.kills == [], "a kill counts once its member is back"


def test_kills_around_a_write_are_those_from_five_seconds_before_to_two_after() -> None:
    kills = [Kill("n1", at, at + 0.5, False) for at in (1.0, 6.0, 9.0, 12.5)]
    assert [k.at for k in kills_around(kills, 10.5)] == [6.0, 9.0, 12.5]
    assert kills_around(kills, 30.0) == []
