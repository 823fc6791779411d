"""Fault schedules, partition shapes, the namespace host and the nemesis on real clusters."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.clients.cluster_ops import majority, wait_for_leader
from pytest_consensus.clients.history import NEMESIS, History
from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import (
    CapabilityMissing,
    ConsensusError,
    HarnessError,
    NoAnswer,
    NodeStartError,
    Timeout,
)
from pytest_consensus.contract.waiting import WaitTimeout, wait_for
from pytest_consensus.hosts.firewall import CLIENT
from pytest_consensus.hosts.netns import (
    NAMESPACE_PREFIX,
    USER_NAMESPACE_COMMAND,
    NamespaceNetwork,
    base36,
    has_namespace_capabilities,
    sweep_stale_network,
)
from pytest_consensus.nemesis.faults import (
    Fault,
    Firewall,
    Nemesis,
    Schedule,
    generate_schedule,
    restart_offsets,
)

from conftest import node_processes_of, start_inner_run
from fake_store import FakeAdapter

NODES5 = ["n1", "n2", "n3", "n4", "n5"]


def reachable(blocked: set[tuple[str, ...]], node: str, nodes: list[str]) -> set[str]:
    return {
        other
        for other in nodes
        if other == node or ((node, other) not in blocked and (other, node) not in blocked)
    }


def test_a_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    kinds = ("random-halves", "kill-one", "majority-ring", "pause-one")
    first = generate_schedule(7, NODES5, kinds, faults=5)
    assert first == generate_schedule(7, NODES5, kinds, faults=5)
    assert first != generate_schedule(8, NODES5, kinds, faults=5)
    starts = [(f.at, f.at + f.duration) for f in first.faults]
    pairs = zip(starts, starts[1:], strict=False)
    assert all(end <= next_start for (_, end), (next_start, _) in pairs)


def test_majority_ring_gives_every_node_a_different_majority() -> None:
    (fault,) = generate_schedule(1, NODES5, ("majority-ring",), faults=1).faults
    views = [frozenset(reachable(set(fault.targets), n, NODES5)) for n in NODES5]
    assert all(len(view) >= majority(5) for view in views)
    assert len(set(views)) == 5


def test_bridge_connects_two_halves_through_one_node() -> None:
    (fault,) = generate_schedule(1, NODES5, ("bridge",), faults=1).faults
    blocked = set(fault.targets)
    assert reachable(blocked, "n3", NODES5) == set(NODES5)
    assert reachable(blocked, "n1", NODES5) == {"n1", "n2", "n3"}
    assert reachable(blocked, "n5", NODES5) == {"n3", "n4", "n5"}


def test_shapes_that_block_nothing_on_three_nodes_are_not_drawn_there() -> None:
    nodes = ["n1", "n2", "n3"]
    schedule = generate_schedule(1, nodes, ("majority-ring", "bridge", "kill-one"), faults=6)
    assert {f.kind for f in schedule.faults} == {"kill-one"}
    with pytest.raises(ValueError, match="does anything on 3 nodes"):
        generate_schedule(1, nodes, ("majority-ring", "bridge"), faults=1)


def test_every_required_kind_is_in_the_schedule_even_with_fewer_faults() -> None:
    for seed in range(20):
        schedule = generate_schedule(
            seed,
            ["n1", "n2", "n3"],
            ("pause-one",),
            faults=1,
            required=("lost-replies", "kill-all"),
        )
        assert {"lost-replies", "kill-all"} <= {f.kind for f in schedule.faults}


@given(
    seed=st.integers(0, 2**32 - 1),
    faults=st.integers(1, 5),
    required=st.lists(st.sampled_from(["lost-replies", "isolate-leader", "kill-one"]), max_size=3),
)
def test_a_required_kind_that_was_also_drawn_is_never_replaced(
    seed: int, faults: int, required: list[str]
) -> None:
    """Found by CI: with "lost-replies" drawn and "isolate-leader" missing, the missing kind
    took the drawn one's place, and the retry test ran without lost replies."""
    kinds = ("isolate-leader", "pause-one", "client-from-node", "lost-replies", "kill-one")
    schedule = generate_schedule(seed, ["n1", "n2", "n3"], kinds, faults=faults, required=required)
    drawn = [f.kind for f in schedule.faults]
    assert set(required) <= set(drawn)
    assert len(drawn) == max(faults, len(set(required)))


def test_uneven_restarts_start_each_node_a_gap_after_the_previous() -> None:
    (fault,) = generate_schedule(4, NODES5, ("kill-all-restart-unevenly",), faults=1).faults
    order, gaps = fault.targets
    assert sorted(order) == NODES5
    offsets = restart_offsets(fault)
    assert offsets == pytest.approx([sum(float(g) for g in gaps[: i + 1]) for i in range(5)])
    assert all(0.0 <= float(gap) <= 3.0 for gap in gaps)


def test_random_halves_leave_exactly_one_majority() -> None:
    for seed in range(20):
        (fault,) = generate_schedule(seed, NODES5, ("random-halves",), faults=1).faults
        sides = {frozenset(reachable(set(fault.targets), n, NODES5)) for n in NODES5}
        assert sorted(len(s) for s in sides) == [2, 3]


def test_schedules_round_trip_and_bad_files_say_why(tmp_path: Path) -> None:
    schedule = generate_schedule(3, NODES5, ("client-from-node", "kill-minority"), faults=4)
    path = schedule.write(tmp_path / "schedule.json")
    assert Schedule.read(path) == schedule
    assert (CLIENT in json.dumps(json.loads(path.read_text()))) == any(
        f.kind == "client-from-node" for f in schedule.faults
    )
    path.write_text('{"version": 1, "seed": 1, "nodes": [], "faults": [{"kind": "meteor"}]}')
    with pytest.raises(HarnessError, match="unknown fault kind 'meteor'"):
        Schedule.read(path)


# -- on real namespaces ------------------------------------------------------------------


def our_namespaces(pid: int) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    prefix = f"{NAMESPACE_PREFIX}{base36(pid)}"
    return [line.split()[0] for line in listing.splitlines() if line.startswith(prefix)]


def our_links(pid: int) -> list[str]:
    listing = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    tag = base36(pid)
    return [line for line in listing.splitlines() if f" pcb{tag}" in line or f" pcv{tag}" in line]


def host_rules_mention_us() -> bool:
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    return "PCONS" in saved or "PCONS" in ruleset.stdout


def test_namespaces_partition_and_heal(network: NamespaceNetwork) -> None:
    adapter = PySyncObjAdapter()
    cluster_hosts = network.allocate(3)
    history = History()
    try:
        with adapter.start_cluster(cluster_hosts.hosts) as cluster:
            nemesis = Nemesis(cluster, history, Firewall(network, cluster_hosts))
            old, old_status = wait_for_leader(cluster)
            fault = nemesis.apply(Fault("isolate-leader", 0, 0))
            majority_side = [n for n in cluster.nodes if n is not old]
            new, new_status = wait_for_leader(cluster, among=majority_side)
            assert new is not old and new_status.term > old_status.term
            with pytest.raises(ConsensusError):
                cluster.client(old).put("k", "from-minority", timeout=1.5)
            cluster.client(new).put("k", "from-majority", timeout=5)
            nemesis.heal(fault)
            wait_for(
                lambda: cluster.client(old).get("k", timeout=5) == "from-majority",
                timeout=30,
                what="the old leader to rejoin and read the majority's write",
                ignore=(ConsensusError,),
            )
    finally:
        network.release(cluster_hosts)
    assert [e.f for e in history.events if e.process == NEMESIS] == [
        "start-isolate-leader",
        "heal-isolate-leader",
    ]
    assert not host_rules_mention_us()


def run_schedule(network: NamespaceNetwork, schedule: Schedule) -> tuple[list[object], Schedule]:
    allocation = network.allocate(3)
    history = History()
    try:
        with PySyncObjAdapter().start_cluster(allocation.hosts) as cluster:
            wait_for_leader(cluster)
            nemesis = Nemesis(cluster, history, Firewall(network, allocation))
            applied = nemesis.run(schedule)
            assert not nemesis.errors
    finally:
        network.release(allocation)
    events = [(e.f, e.value) for e in history.events if e.process == NEMESIS]
    return events, Schedule(schedule.seed, schedule.nodes, applied)


def test_a_replayed_schedule_produces_the_same_fault_events(
    network: NamespaceNetwork, tmp_path: Path
) -> None:
    kinds = ("isolate-leader", "random-halves", "kill-one", "pause-one", "client-from-node")
    schedule = generate_schedule(
        11, ["n1", "n2", "n3"], kinds, faults=3, fault_duration=(0.3, 0.6), gap=(0.1, 0.3)
    )
    first_events, applied = run_schedule(network, schedule)
    path = applied.write(tmp_path / "schedule.json")
    replayed_events, _ = run_schedule(network, Schedule.read(path))
    assert len(first_events) == 6
    assert replayed_events == first_events


SLOW_PARTITIONED_TEST = """
import time
from pathlib import Path
from pytest_consensus.nemesis.faults import Fault

def test_partitioned(consensus_cluster, consensus_nemesis):
    consensus_nemesis.apply(Fault("isolate-leader", 0, 0))
    Path("{marker}").write_text("partitioned")
    time.sleep(60)
"""


def start_partitioned_run(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    process = start_inner_run(pytester, SLOW_PARTITIONED_TEST, "the inner run's partition")
    assert our_namespaces(process.pid) and our_links(process.pid)
    return process


def test_ctrl_c_mid_partition_removes_namespaces_links_and_nodes(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    process = start_partitioned_run(pytester)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == pytest.ExitCode.INTERRUPTED
    assert node_processes_of(process.pid) == []
    assert our_namespaces(process.pid) == [] and our_links(process.pid) == []
    assert not host_rules_mention_us()


@pytest.mark.parametrize("signals", [["SIGTERM"], ["SIGINT", "SIGINT"], ["SIGTERM", "SIGINT"]])
def test_sigterm_or_a_second_ctrl_c_mid_partition_still_tears_everything_down_quietly(
    pytester: pytest.Pytester, needs_network_faults: None, signals: list[str]
) -> None:
    """SIGTERM (timeout, CI cancellation, container stops) tears down as Ctrl-C does; a
    second signal during that teardown neither interrupts it nor prints a traceback."""
    process = start_partitioned_run(pytester)
    for name in signals:
        process.send_signal(getattr(signal, name))
        time.sleep(0.2)
    assert process.wait(60) == pytest.ExitCode.INTERRUPTED
    output = (pytester.path / "inner-run.out").read_text()
    assert "Traceback" not in output, output[-3000:]
    if signals[0] == "SIGTERM":
        assert "SIGTERM received: tearing down" in output
    if len(signals) > 1:
        assert "consensus: still removing this run's nodes and namespaces" in output
    assert node_processes_of(process.pid) == []
    assert our_namespaces(process.pid) == [] and our_links(process.pid) == []
    assert not host_rules_mention_us()


def test_ctrl_c_works_when_the_suite_itself_was_started_with_sigint_ignored(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """As in a background job (`pytest &`), whose processes inherit SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = start_partitioned_run(pytester)
    finally:
        signal.signal(signal.SIGINT, previous)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == pytest.ExitCode.INTERRUPTED
    assert our_namespaces(process.pid) == []


def test_after_kill_9_mid_partition_the_next_run_starts_clean(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    process = start_partitioned_run(pytester)
    process.kill()
    process.wait(10)
    wait_for(
        lambda: not node_processes_of(process.pid), timeout=10, what="the orphaned nodes to exit"
    )
    assert our_namespaces(process.pid), "a SIGKILLed run cannot clean up after itself"
    next_run = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--co", "-q", "-p", "no:cacheprovider"
    )
    assert next_run.ret == pytest.ExitCode.OK
    next_run.stdout.fnmatch_lines(
        [
            "consensus: removed * leftovers of runs that died without cleaning up: "
            f"*pcons-{base36(process.pid)}*"
        ]
    )
    assert our_namespaces(process.pid) == [] and our_links(process.pid) == []
    assert not host_rules_mention_us()


USER_NAMESPACE_SUITE = """
import pytest
from pytest_consensus.nemesis.faults import Fault

@pytest.mark.consensus_rule("leader-gating")
@pytest.mark.consensus_requires("network")
def test_a_partition_in_a_user_namespace(consensus_cluster, consensus_nemesis, consensus_clients):
    applied = consensus_nemesis.apply(Fault("isolate-leader", 0, 0))
    consensus_nemesis.heal(applied)
    consensus_clients[0].put("after", "heal", timeout=10)
"""


def test_without_root_a_user_namespace_gives_real_network_faults(
    pytester: pytest.Pytester,
) -> None:
    """The README's advice for users without root, as written: in a user namespace the run
    is root over its own network, so namespaces, the bridge and firewall rules are real."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are disabled here: {probe.stderr.strip()}")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert USER_NAMESPACE_COMMAND in readme
    pytester.makepyfile(test_net=USER_NAMESPACE_SUITE)
    command = USER_NAMESPACE_COMMAND.replace(
        "exec pytest --consensus-adapter=...",
        f"exec {sys.executable} -m pytest --consensus-adapter=pysyncobj -p no:cacheprovider "
        "-rs test_net.py",
    )
    done = subprocess.run(
        ["bash", "-c", command], cwd=pytester.path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "consensus host: netns" in done.stdout
    assert "1 passed" in done.stdout


def test_without_root_network_faults_are_na_with_advice_that_works() -> None:
    net_admin_only = "CapEff:\t0000000000001000\n"  # CAP_NET_ADMIN without CAP_SYS_ADMIN
    assert not has_namespace_capabilities(net_admin_only)
    assert has_namespace_capabilities("CapEff:\t0000000000201000\n")
    assert "setcap" not in USER_NAMESPACE_COMMAND


def test_sweeping_spares_live_runs(network: NamespaceNetwork) -> None:
    allocation = network.allocate(1)
    try:
        sweep_stale_network()
        assert our_namespaces(os.getpid())
    finally:
        network.release(allocation)


def test_on_loopback_network_faults_are_na_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_net="""
        import pytest

        @pytest.mark.consensus_rule("leader-gating")
        @pytest.mark.consensus_requires("network")
        def test_needs_partitions(consensus_cluster):
            raise AssertionError("must not run")
    """
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-host=loopback", "-rs", "test_net.py"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "consensus host: loopback (no network faults: --consensus-host=loopback was chosen)",
            "*n/a: network faults unavailable: --consensus-host=loopback was chosen",
        ]
    )


def test_a_partition_without_the_namespace_host_is_refused_not_weakened(tmp_path: Path) -> None:
    hosts = [HostSpec("n1", "127.0.0.1", tmp_path, tmp_path)]
    nemesis = Nemesis(FakeAdapter().start_cluster(hosts), History(), None)
    with pytest.raises(CapabilityMissing, match="needs the namespace host"):
        nemesis.apply(Fault("client-from-node", 0, 0, (("client", "n1"), ("n1", "client"))))
    assert nemesis.history.events == []


def test_crash_of_every_node_and_a_rolling_restart_keep_acknowledged_data(
    network: NamespaceNetwork,
) -> None:
    allocation = network.allocate(3)
    history = History()
    try:
        with PySyncObjAdapter().start_cluster(allocation.hosts) as cluster:
            wait_for_leader(cluster)
            nemesis = Nemesis(cluster, history, Firewall(network, allocation))
            cluster.client(cluster.nodes[0]).put("k", "before", timeout=5)
            for kind in ("kill-all", "rolling-restart"):
                fault = nemesis.apply(Fault(kind, 0, 0, (("n1", "n2", "n3"),)))
                nemesis.heal(fault)
                wait_for_leader(cluster)
                read = wait_for(
                    lambda: cluster.client(cluster.nodes[1]).get("k", timeout=5),
                    timeout=30,
                    what="a read after the restart",
                    ignore=(ConsensusError,),
                )
                assert read == "before", kind
    finally:
        network.release(allocation)
    assert [e.f for e in history.events if e.process == NEMESIS] == [
        "start-kill-all",
        "heal-kill-all",
        "start-rolling-restart",
        "heal-rolling-restart",
    ]


def test_a_failing_test_leaves_no_namespace_behind(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    pytester.makepyfile(
        test_fails="""
        import os
        from pathlib import Path
        from pytest_consensus.nemesis.faults import Fault

        def test_fails_mid_partition(consensus_cluster, consensus_nemesis):
            consensus_nemesis.apply(Fault("isolate-leader", 0, 0))
            Path("pid").write_text(str(os.getpid()))
            assert False, "the store did something wrong"
    """
    )
    result = pytester.runpytest_subprocess("--consensus-adapter=pysyncobj", "test_fails.py")
    result.assert_outcomes(failed=1)
    pid = int((pytester.path / "pid").read_text())
    assert our_namespaces(pid) == [] and our_links(pid) == []
    assert node_processes_of(pid) == []


def test_a_bridge_that_cannot_be_made_stops_the_run_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_consensus.hosts.netns as netns

    real = netns.ip_command

    def refuse_bridges(*arguments: str, **options: object) -> str:
        if arguments[:1] == ("link",) and "bridge" in arguments:
            raise HarnessError("ip link add ... type bridge failed: Operation not permitted")
        return real(*arguments, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(netns, "ip_command", refuse_bridges)
    monkeypatch.setattr(netns, "network_faults_unavailable", lambda: None)
    with pytest.raises(HarnessError, match=r"cannot create the run's bridge .*no traffic was sent"):
        NamespaceNetwork(tmp_path)
    assert our_links(os.getpid()) == []


class ReportingNode:
    """A node stand-in that reports a fixed status (for the observer's own logic)."""

    def __init__(self, status: object) -> None:
        self.name = status.node  # type: ignore[attr-defined]
        self._status = status

    def is_running(self) -> bool:
        return True

    def status(self, timeout: float) -> object:
        return self._status

    def quick_status(self, timeout: float) -> object:
        return self._status


def test_the_leader_observer_trusts_histories_and_flags_a_term_led_twice() -> None:
    from pytest_consensus.clients.cluster_ops import LeaderObserver
    from pytest_consensus.contract import NodeStatus, Role

    class Nodes:
        nodes = [
            ReportingNode(NodeStatus("n1", Role.FOLLOWER, 4, "n2", led_terms=(1, 3))),
            ReportingNode(NodeStatus("n2", Role.LEADER, 4, "n2", led_terms=(2, 4))),
            ReportingNode(NodeStatus("n3", Role.LEADER, 3, None)),  # no history: as observed
        ]

    observer = LeaderObserver(Nodes())  # type: ignore[arg-type]
    observer.poll()
    assert observer.leaders == {1: {"n1"}, 2: {"n2"}, 3: {"n1"}, 4: {"n2"}}
    observer.poll()  # n3 says it leads term 3 twice running: now it counts
    assert observer.leaders == {1: {"n1"}, 2: {"n2"}, 3: {"n1", "n3"}, 4: {"n2"}}
    assert observer.terms_with_two_leaders() == {3: {"n1", "n3"}}


def test_a_polled_leader_seen_once_is_not_counted() -> None:
    """A torn status (old role, new term) seen in one poll only is not a second leader."""
    from pytest_consensus.clients.cluster_ops import LeaderObserver
    from pytest_consensus.contract import NodeStatus, Role

    torn = ReportingNode(NodeStatus("n1", Role.LEADER, 3, "n1"))

    class Nodes:
        nodes = [torn, ReportingNode(NodeStatus("n3", Role.LEADER, 3, "n3"))]

    observer = LeaderObserver(Nodes())  # type: ignore[arg-type]
    observer.poll()
    torn._status = NodeStatus("n1", Role.FOLLOWER, 3, "n3")
    observer.poll()
    assert observer.leaders == {3: {"n3"}}
    assert observer.terms_with_two_leaders() == {}


@pytest.mark.parametrize("backend", ["pysyncobj", "etcd"])
def test_lost_replies_let_a_write_apply_while_its_answer_never_arrives(
    network: NamespaceNetwork, backend: str
) -> None:
    """The node acts on the request (the write is readable elsewhere), but the client hears
    nothing: an outcome it cannot know, which is what retries must survive."""
    from pytest_consensus.plugin.registry import load_adapter

    adapter = load_adapter(backend)
    allocation = network.allocate(3)
    history = History()
    try:
        with adapter.start_cluster(allocation.hosts) as cluster:
            leader, _ = wait_for_leader(cluster)
            other = next(node for node in cluster.nodes if node is not leader)
            nemesis = Nemesis(cluster, history, Firewall(network, allocation))
            client = cluster.client(leader)
            client.get("k", timeout=5)  # connected before the fault, as a client mid-run is
            fault = nemesis.apply(Fault("lost-replies", 0, 0, ((leader.name,),)))
            with pytest.raises((Timeout, NoAnswer)):
                client.put("k", "applied-unanswered", timeout=2)
            read = wait_for(
                lambda: cluster.client(other).get("k", timeout=5),
                timeout=30,
                what="the unanswered write to be readable on another node",
                ignore=(ConsensusError,),
            )
            assert read == "applied-unanswered"
            nemesis.heal(fault)
            assert cluster.client(leader).get("k", timeout=5) == "applied-unanswered"
    finally:
        network.release(allocation)
    assert not host_rules_mention_us()


class FailingNemesis(Nemesis):
    """Every fault fails with the given error (what a firewall or a node would raise)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(FakeAdapter().start_cluster([]), History(), None)
        self.error = error

    def apply(self, fault: Fault) -> Fault:
        raise self.error


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (HarnessError("iptables -A failed: no such table"), HarnessError),
        (CapabilityMissing("this host has no firewall"), CapabilityMissing),
        (WaitTimeout("no leader within 30 s"), AssertionError),
        (NodeStartError("n2", "exited with 1", "corrupt log"), AssertionError),
    ],
)
def test_a_fault_that_could_not_be_injected_blames_whose_problem_it_was(
    error: BaseException, raised: type[BaseException]
) -> None:
    """The harness's own failure is no verdict on the store; a store that did not come back
    (no leader, a node that does not restart) fails."""
    nemesis = FailingNemesis(error)
    nemesis.run(Schedule(1, ["n1", "n2", "n3"], [Fault("kill-one", 0.0, 0.0, (("n2",),))]))
    with pytest.raises(raised, match="faults failed: kill-one: "):
        nemesis.check()
