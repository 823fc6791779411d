"""The suite must fail: each broken store fails the rule it breaks, with the reason."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pytest_consensus.nemesis.faults import Fault, Schedule

pytestmark = pytest.mark.usefixtures("tests_on_path")

#: A fixed schedule for stores whose bug shows only under a partition: the leader is cut off
#: for 4 s, so clients keep writing to it while it is deposed.
ISOLATE_LEADER = Schedule(0, ["n1", "n2", "n3"], [Fault("isolate-leader", 1.0, 4.0)])

BROKEN_STORES = [
    pytest.param(
        "follower_applies_locally",
        "leader_gating",
        "leader-gating",
        "*writes acknowledged by followers are not on a majority*apply them locally*",
        id="follower-applies-locally",
    ),
    pytest.param(
        "follower_applies_one_in_a_hundred",
        "writes_to_followers",
        "leader-gating",
        "*4 of * writes acknowledged by followers are not on a majority*apply them locally*",
        id="follower-applies-one-write-in-a-hundred",
    ),
    pytest.param(
        "acks_before_commit",
        "deposed",
        "leader-gating",
        "*cut off in a minority*acknowledged 3 writes*must not acknowledge writes*",
        id="acks-before-commit",
    ),
    pytest.param(
        "minority_hangs",
        "retry",
        "partition-retries",
        "*got no answer for*although the node was up and reachable*",
        id="minority-hangs",
    ),
    pytest.param(
        "minority_holds_until_heal",
        "writes_through",  # the generated schedule: its partitions outlast the timeout
        "partition-retries",
        "*on n* got no answer for *s from *s although the node was up and reachable*",
        id="minority-holds-writes-until-the-heal",
    ),
    pytest.param(
        "retry_storm_client",
        "writes_through",  # every generated schedule slows the leader's links, the client's too
        "partition-retries",
        "*put * on n* took *s (*",
        id="retry-storm-client",
    ),
    pytest.param(
        "retries_without_request_ids",
        "writes_through",  # the generated schedule, which always loses replies
        "partition-retries",
        "*duplicated*must apply each request id once*",
        id="retries-without-request-ids",
    ),
    pytest.param(
        "put_delete_store_ignores_request_ids",
        "retried_write",
        "partition-retries",
        "*its retry on the same leader * took effect again*must apply each request id once*",
        id="put-delete-store-ignores-request-ids",
    ),
    pytest.param(
        "dedup_lost_on_leader_change",
        "retried_write",
        "partition-retries",
        "*its retry on a new leader took effect again*also after a leader change*",
        id="dedup-lost-on-leader-change",
    ),
    pytest.param(
        "two_leaders_in_a_term",
        "one_leader",
        "consensus-safety",
        "*two leaders in one term: term *",
        id="two-leaders-in-a-term",
    ),
    pytest.param(
        "term_and_vote_in_memory",
        "keeps_the_terms",
        "consensus-safety",
        "*reached term * while cut off, and came back from a restart at term *only in memory*",
        id="term-and-vote-in-memory",
    ),
    pytest.param(
        "strong_reads_served_locally",
        "read_levels",
        "read-levels",
        "*cut off from the majority, answered a strong read of k with 'v0' although*",
        id="strong-reads-served-locally",
    ),
    pytest.param(
        "leader_reads_before_applying_its_term",
        "first_strong_read",
        "read-levels",
        "*was acknowledged by * which was then *; the first strong read answered, by *, gave "
        "'old-*must not answer strong reads before it has applied*",
        id="leader-reads-before-applying-its-term",
    ),
    pytest.param(
        "read_lease_survives_a_pause",
        "paused_leader",
        "read-levels",
        "*was paused while * led and overwrote * resumed (cut off), * answered * strong reads "
        "with 'before-pause-*",
        id="read-lease-survives-a-pause",
    ),
    pytest.param(
        "lease_from_ack_arrival",
        "acknowledgements_arrive_late",
        "read-levels",
        "*received its followers' acknowledgements 3 s late*answered * strong reads with "
        "'before-the-cut'*",
        id="lease-from-ack-arrival",
    ),
    pytest.param(
        "stale_reads_serve_uncommitted_entries",
        "cut_off_serves",
        "read-levels",
        "*read 'minority-*' from 'k' at * but the only writes of it *",
        id="stale-reads-serve-uncommitted-entries",
    ),
    pytest.param(
        "minority_holds_writes",
        "cut_off_serves",
        "read-levels",
        "*the write of 'minority-*' to * while it was cut off was refused definitely*"
        "yet took effect after the heal*",
        id="minority-holds-writes",
    ),
    pytest.param(
        "fsm_bugs:IteratesASetAdapter",
        "white_box",
        "fsm-determinism",
        "*different snapshots with PYTHONHASHSEED=*iterating a set*",
        id="state-machine-iterates-a-set",
    ),
    pytest.param(
        "fsm_bugs:RestoreMergesAdapter",
        "white_box",
        "fsm-determinism",
        "*restore must replace the whole state*",
        id="restore-merges-instead-of-replacing",
    ),
    pytest.param(
        "fsm_bugs:SnapshotSharesLiveStateAdapter",
        "white_box",
        "fsm-determinism",
        "*a snapshot changed after later applies: it shares the live state*",
        id="snapshot-shares-live-state",
    ),
    pytest.param(
        "fsm_bugs:CrashesOnMalformedEntriesAdapter",
        "white_box",
        "fsm-determinism",
        "*crashed the state machine with JSONDecodeError*",
        id="malformed-entry-crashes-a-replica",
    ),
    pytest.param(
        "restore_merges",
        "kept_away",
        "fsm-determinism",
        "*caught up to applied index * keys read differently there*the majority has None*"
        "restore merges into the old state instead of replacing it*",
        id="restore-merges-on-snapshot-install",
    ),
    pytest.param(
        "clock_in_state_machine",
        "fsm_determinism",
        "fsm-determinism",
        "*replicas at the same applied index hold different states*not deterministic*",
        id="clock-in-state-machine",
    ),
    pytest.param(
        "acks_before_fsync",
        "power_cut and whole",
        "consensus-safety",
        "* acknowledged writes lost after a power cut (whole-cluster) of n1, n2, n3 at *"
        "n1's disk lost at the cut * file(s) with unsynced bytes: */raft.journal: *",
        id="acks-before-fsync",
    ),
    pytest.param(
        "directory_never_synced",
        "power_cut and whole",
        "consensus-safety",
        "* acknowledged writes lost after a power cut (whole-cluster) of n1, n2, n3 at *"
        "n1's disk lost at the cut * unsynced name(s) * /raft.dump (created or renamed)*",
        id="directory-never-synced",
    ),
    pytest.param(
        "trusts_a_damaged_journal",
        "refused_or_repaired and flip",
        "consensus-safety",
        "*acknowledged writes missing or changed after bit * flipped on every copy of the "
        "acknowledged value * (1 copy: raft.journal (1)), the first in data file raft.journal "
        "at byte * on n*, which then started: *never serve it*",
        id="trusts-a-damaged-journal",
    ),
    pytest.param(
        "leader_acks_without_replicating",
        "consensus_safety and leader",
        "consensus-safety",
        "*acknowledged writes lost after SIGKILL and restart of leader*",
        id="leader-acks-without-replicating",
    ),
]


@pytest.mark.parametrize(("store", "selection", "rule", "message"), BROKEN_STORES)
def test_the_suite_fails_a_broken_store_for_the_right_rule(
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    store: str,
    selection: str,
    rule: str,
    message: str,
) -> None:
    extra = []
    if selection.startswith("power_cut"):
        request.getfixturevalue("needs_lossy_disks")
    if selection in (
        "deposed",
        "retry",
        "read_levels",
        "one_leader",
        "retried_write",
        "kept_away",
        "first_strong_read",
        "paused_leader",
        "cut_off_serves",
    ):
        request.getfixturevalue("needs_network_faults")
        extra = [f"--consensus-replay={ISOLATE_LEADER.write(pytester.path / 'schedule.json')}"]
    result = pytester.runpytest_subprocess(
        *extra,
        f"--consensus-adapter=broken_stores.{store if ':' in store else store + ':Adapter'}",
        "-k",
        selection,
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message, f"{rule}*FAIL*"])


def test_a_store_that_skips_its_last_applied_entry_fails_the_crash_loop_on_both_rules(
    pytester: pytest.Pytester,
) -> None:
    """A member that, restarted, skips the entry it applied last before the kill (etcd's
    withdrawn 3.5.0-3.5.2 in small) is found by the crash loop: reading each member names
    the one that lacks the write, and its digest differs at the common applied index."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=broken_stores.skips_last_applied_entry:Adapter",
        "-k",
        "crash_loop",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "* acknowledged writes missing on a member after the crash loop (* SIGKILLs *"
            "n? lacks *acknowledged at * s, read None (kills around it: *n? killed at *",
            "*members at one applied index hold different states after the crash loop*"
            "n?: applied * digest *(history, kills and node logs: */failure-1)",
            "consensus-safety*FAIL*",
            "fsm-determinism*FAIL*",
        ],
        consecutive=False,
    )


def test_a_schedule_whose_lost_replies_met_no_write_gets_another_that_does(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """The retry schedule's lost replies can meet no append (ZooKeeper's sessions were still
    reconnecting after a cut-off leader): a lost-reply fault alone follows, so the store
    that ignores request ids still applies a retry twice and fails. A replayed schedule
    without lost replies stands in for that schedule here."""
    result = pytester.runpytest_subprocess(
        f"--consensus-replay={ISOLATE_LEADER.write(pytester.path / 'schedule.json')}",
        "--consensus-adapter=broken_stores.retries_without_request_ids:Adapter",
        "-k",
        "writes_through",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        [
            "*duplicated*must apply each request id once*",
            "partition-retries*FAIL*",
            "*exposure: * appends acknowledged; [1-9]* appends retried after an attempt whose "
            "reply was lost, with 1 lost-reply fault(s) after the schedule*",
        ],
        consecutive=False,
    )


def test_a_resumed_leader_that_answers_no_read_makes_the_paused_leader_test_na_not_pass(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """A store whose resumed old leader refuses every strong read in the window the test
    watches exposed nothing there: the profile's exposure rounds (two pauses in default),
    then n/a with what was seen, and the exposure line says how many reads were answered
    (none)."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=broken_stores.refuses_reads_after_a_pause:Adapter",
        "-k",
        "paused_leader",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        [
            "read-levels*n/a*",
            "*n/a because in 2 rounds the resumed old leader (*) answered no strong read*",
            "*exposure: the resumed old leader (with the others) answered 0 strong read(s) in "
            "2 round(s)*",
            "*exposure: the resumed old leader (cut off) answered 0 strong read(s) in 2 round(s)*",
        ],
        consecutive=False,
    )


def test_the_correct_store_passes_the_same_selection(pytester: pytest.Pytester) -> None:
    """The control: the unbroken backend passes what the broken ones fail, including under
    the fixed schedule they are run with."""
    ISOLATE_LEADER.write(pytester.path / "schedule.json")
    for selection, extra in (
        ("leader_gating or fsm_determinism or consensus_safety or read_levels or white_box", []),
        # (the first selection already runs kept_away, first_strong_read and paused_leader;
        # the crash loop is the control of skips_last_applied_entry)
        ("retried_write or crash_loop", []),
        ("retry", [f"--consensus-replay={pytester.path / 'schedule.json'}"]),
    ):
        result = pytester.runpytest_subprocess(
            *extra, "--consensus-adapter=pysyncobj", "-p", "no:cacheprovider", "-k", selection
        )
        assert result.ret == pytest.ExitCode.OK, selection


@pytest.mark.parametrize(
    ("store", "selection"),
    [
        pytest.param("syncs_before_acknowledging", "power_cut", id="syncs-before-acknowledging"),
        pytest.param("checksums_its_journal", "refused_or_repaired", id="checksums-its-journal"),
    ],
)
def test_the_fixed_twin_of_a_disk_broken_store_passes(
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    store: str,
    selection: str,
) -> None:
    """The controls of the disk-broken stores: the same PySyncObj store with the flaw fixed
    passes. Syncing before acknowledging (and keeping the log entries a follower holds)
    survives every power-cut scenario; checksumming the journal refuses every kind of
    damaged file."""
    if selection == "power_cut":
        request.getfixturevalue("needs_lossy_disks")
    result = pytester.runpytest_subprocess(
        f"--consensus-adapter=broken_stores.{store}:Adapter",
        "-k",
        selection,
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["consensus-safety*pass (* passed)*"])
    if store == "checksums_its_journal":
        result.stdout.fnmatch_lines(
            ["*flipped on every copy of the acknowledged*refused to start*"]
        )
    else:
        result.stdout.fnmatch_lines(
            ["*power cut (whole-cluster) of n1, n2, n3: *0 acknowledged write(s) missing after*"]
        )


def test_a_schedule_search_shrinks_a_failure_and_its_replay_fails_again(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    adapter = "--consensus-adapter=broken_stores.leader_acks_without_replicating:Adapter"
    result = pytester.runpytest_subprocess(adapter, "-k", "searched", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*acknowledged writes lost under*(history, schedule and node logs: *failure-*)",
            "every failing run's history, schedule and node logs: *failing-runs/failure-1*",
            "*reproducer after * runs: */minimal-schedule.json",
            "replay: pytest --consensus-adapter=* --consensus-replay=*minimal-schedule.json*",
        ]
    )
    kept = next(line for line in result.stdout.lines if line.startswith("every failing run"))
    first = Path(kept.split(": ", 1)[1].split(", ")[0])
    assert (first / "history.jsonl").stat().st_size > 0
    assert Schedule.read(first / "schedule.json").faults
    assert list((first / "logs").glob("n*/node.log"))
    replay = next(line for line in result.stdout.lines if line.startswith("replay: "))
    schedule = next(a for a in replay.split() if a.startswith("--consensus-replay="))
    assert len(Schedule.read(Path(schedule.split("=", 1)[1])).faults) == 1  # shrunk to one
    replayed = pytester.runpytest_subprocess(
        adapter, schedule, "-k", "searched", "-p", "no:cacheprovider"
    )
    assert replayed.ret == pytest.ExitCode.TESTS_FAILED
    replayed.stdout.fnmatch_lines(["*acknowledged writes lost under*"])


def test_a_failing_scenario_test_prints_a_replay_command_that_fails_it_again(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """A scenario test (no fault schedule: its fault is made certain, its choices seeded)
    prints a command with the run's seed and its test id; that command fails it again."""
    store = "--consensus-adapter=broken_stores.term_and_vote_in_memory:Adapter"
    result = pytester.runpytest_subprocess(store, "-k", "keeps_the_terms", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    replay = next(line for line in result.stdout.lines if line.startswith("replay: "))
    command = shlex.split(replay.removeprefix("replay: "))
    assert command[0] == "pytest" and store in command
    assert any(part.startswith("--consensus-seed=") for part in command)
    assert "keeps_the_terms" in command[-1] and "--consensus-replay" not in replay
    again = pytester.runpytest_subprocess(*command[1:], "-p", "no:cacheprovider")
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    again.stdout.fnmatch_lines(
        ["*came back from a restart at term *only in memory*", "consensus-safety*FAIL*"]
    )
    assert "1 failed" in again.stdout.lines[-1], "the one test, and only it, ran again"


def test_a_node_that_reports_no_term_after_a_restart_makes_the_term_test_n_a(
    pytester: pytest.Pytester, needs_network_faults: None
) -> None:
    """A restarted node that answers its status without a term (NATS, until it reaches a
    peer) cannot show whether it kept its term: the test says n/a, with that reason, and not
    a pass; PySyncObj's term rises while cut off, so the test gets that far every run."""
    store = "--consensus-adapter=broken_stores.term_unknown_after_restart:Adapter"
    result = pytester.runpytest_subprocess(
        store, "-k", "keeps_the_terms", "-rs", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*n/a: n*, restarted while cut off, answered its status but reported no term for 8 s*"]
    )
    assert "1 skipped" in result.stdout.lines[-1]
