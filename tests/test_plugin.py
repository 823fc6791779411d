"""The plugin as a user meets it, through pytest runs on small example projects."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.usefixtures("tests_on_path")

FAKE_SUITE = """
import pytest

pytestmark = pytest.mark.consensus_rule("leader-gating")

def test_writes_are_recorded(consensus_cluster, consensus_clients):
    consensus_clients[1].put("k", "v", timeout=1)
    assert consensus_clients[0].get("k", timeout=1) == "v"

@pytest.mark.consensus_requires("pause")
def test_needs_pause(consensus_cluster):
    raise AssertionError("must not run without the pause capability")
"""


def test_unknown_adapter_is_a_usage_error_listing_installed_ones(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess("--consensus-adapter=nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown consensus adapter 'nosuch'; installed adapters: *pysyncobj*"]
    )


def test_an_adapter_that_fails_to_import_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(broken_adapter="raise ImportError('needs libfoo')")
    result = pytester.runpytest_subprocess("--consensus-adapter=broken_adapter:Adapter")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot import module 'broken_adapter'*needs libfoo*"])


def test_header_shows_effective_settings_and_seed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter",
        "--consensus-seed=42",
        "--consensus-nodes=5",
        "--co",
    )
    result.stdout.fnmatch_lines(
        [
            "consensus: adapters=fake_store:FakeAdapter (fake 1.0), nodes=5, "
            "seed=42 (option; replay with --consensus-seed=42)"
        ]
    )


def test_ini_keys_are_equivalents_and_options_win(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nconsensus_adapter = fake_store:FakeAdapter\nconsensus_nodes = 4\n"
        "consensus_seed = 7\nconsensus_adapter_options = flavour=ini\n"
    )
    result = pytester.runpytest_subprocess("--co")
    result.stdout.fnmatch_lines(["consensus: *(fake 1.0 (ini)), nodes=4, seed=7 (ini;*"])
    result = pytester.runpytest_subprocess("--co", "--consensus-nodes=6")
    result.stdout.fnmatch_lines(["consensus: *nodes=6, seed=7*"])


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--consensus-adapter=pysyncobj", "--consensus-nodes=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--consensus-nodes must be at least 1, got 0*"])


def test_without_paths_the_installed_conformance_suite_is_collected(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess("--consensus-adapter=pysyncobj", "--co", "-q")
    result.stdout.fnmatch_lines(
        [
            "*test_consensus_safety.py::*[[]pysyncobj-leader[]]",
            "*test_fsm_determinism.py::*[[]pysyncobj[]]",
            "*test_leader_gating.py::*[[]pysyncobj[]]",
        ]
    )


def test_several_adapters_give_a_run_per_backend_and_a_matrix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=FAKE_SUITE.replace("raise AssertionError", "print"))
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter",
        "--consensus-adapter=fake_store:SecondFakeAdapter",
        "--consensus-adapter=fake_store:FakeAdapter",  # named twice, run once
        "test_suite.py",
    )
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "rule*fake_store:FakeAdapter*fake_store:SecondFakeAdapter",
            "leader-gating*pass (1 passed, 1 n/a)*pass (2 passed)",
        ]
    )


def test_missing_capability_is_reported_na_never_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=FAKE_SUITE)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "-rs", "test_suite.py"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*consensus certification*",
            "leader-gating*pass (1 passed, 1 n/a)",
            "read-levels*not run",
            "SKIPPED*n/a: adapter fake_store:FakeAdapter lacks capability pause",
        ]
    )


def test_every_requires_marker_counts_not_only_the_closest(pytester: pytest.Pytester) -> None:
    """A test with two consensus_requires markers needs what both name: the adapter has
    `strong` (the closest marker) but lacks `pause` (the outer one), so the test is n/a."""
    pytester.makepyfile(
        test_suite="""
import pytest

pytestmark = [pytest.mark.consensus_rule("leader-gating"), pytest.mark.consensus_requires("leader")]

@pytest.mark.consensus_requires("pause")
@pytest.mark.consensus_requires("strong")
def test_needs_pause_and_strong(consensus_cluster):
    raise AssertionError("must not run without the pause capability")

@pytest.mark.consensus_requires("strong")
def test_needs_strong(consensus_cluster):
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "-rs", "test_suite.py"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*n/a: adapter fake_store:FakeAdapter lacks capability pause"]
    )


def test_replicas_without_digests_are_na_not_equal(pytester: pytest.Pytester) -> None:
    """An adapter that declares `digest` but reports None: comparing None with None must not
    pass fsm-determinism; the digest tests are n/a with the reason."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:DigestlessAdapter",
        "-k",
        "odd_input",
        "-rs",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "fsm-determinism*n/a",
            "*n1, n2, n3 reported no state digest, so replicas cannot be compared*",
        ]
    )


def test_a_rule_with_only_missing_capabilities_is_na_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "-k", "safety"
    )
    result.stdout.fnmatch_lines(
        [
            "consensus-safety*n/a",
            "*consensus-safety on fake_store:FakeAdapter: n/a because "
            "adapter fake_store:FakeAdapter lacks capability kill, restart, stale*",
        ]
    )


def test_every_operation_is_recorded_in_the_tests_history(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=FAKE_SUITE)
    basetemp = pytester.path / "basetemp"
    pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", f"--basetemp={basetemp}", "test_suite.py"
    )
    (history,) = {p.resolve() for p in basetemp.glob("test_writes_are_recorded*/history.jsonl")}
    events = [json.loads(line) for line in history.read_text().splitlines()]
    assert [(e["type"], e["f"], e["node"]) for e in events] == [
        ("invoke", "put", "n2"),
        ("ok", "put", "n2"),
        ("invoke", "get", "n1"),
        ("ok", "get", "n1"),
    ]
    assert events[0]["process"] == events[1]["process"] != events[2]["process"]


def test_a_failing_rule_shows_fail_and_points_at_the_evidence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
        import pytest

        @pytest.mark.consensus_rule("read-levels")
        def test_broken(consensus_clients):
            consensus_clients[0].put("k", "v", timeout=1)
            assert False, "stale value served"
    """
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "test_suite.py"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*consensus evidence*",
            "history: */history.jsonl",
            "read-levels*FAIL (1 of 1 failed)",
        ]
    )


def test_unknown_rule_or_capability_names_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
        import pytest

        @pytest.mark.consensus_rule("speed")
        def test_x(consensus_adapter):
            pass
    """
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "test_suite.py"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown rule id 'speed'; valid: consensus-safety*"])


def test_consensus_fixtures_without_an_adapter_are_skipped_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite="def test_x(consensus_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no consensus adapter selected: pass --consensus-adapter=NAME*"])


def test_users_own_adapters_and_conformance_packages_are_never_shadowed(
    pytester: pytest.Pytester,
) -> None:
    """A project with its own `adapters` and `conformance` packages runs the suite and its
    own tests side by side, and each import resolves to the package it should."""
    pytester.mkpydir("adapters").joinpath("__init__.py").write_text("OWNER = 'user'\n")
    pytester.mkpydir("conformance").joinpath("__init__.py").write_text("OWNER = 'user'\n")
    pytester.makepyfile(
        test_zz_user="""
        import adapters, conformance
        import pytest_consensus.adapters as ours

        def test_imports_resolve_to_their_own_packages():
            assert adapters.OWNER == "user" and conformance.OWNER == "user"
            assert not hasattr(ours, "OWNER")
            assert ours.__name__ == "pytest_consensus.adapters"
    """
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "--pyargs",
        "pytest_consensus.conformance",
        "test_zz_user.py",
        "-k",
        "writes_to_followers or imports_resolve",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)


def test_a_known_failure_marked_xfail_is_reported_as_such_not_as_pass(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("""
        import pytest

        KNOWN = {"test_suite.py::test_writes_are_recorded": "issue #12: lost ack on restart"}

        def pytest_collection_modifyitems(items):
            for item in items:
                for prefix, reason in KNOWN.items():
                    if item.nodeid.startswith(prefix):
                        item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    """)
    pytester.makepyfile(
        test_suite=FAKE_SUITE.replace('consensus_clients[0].get("k", timeout=1) == "v"', "False")
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "test_suite.py"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["leader-gating*known failure (1 xfail, 0 passed)*"])


def test_profiles_change_how_hard_the_suite_pushes(pytester: pytest.Pytester) -> None:
    """quick runs one crash kind and one round; thorough runs every crash kind and three
    rounds of each fault-schedule test, each round its own test (and seed)."""
    quick = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-profile=quick", "--co", "-q"
    )
    quick.stdout.fnmatch_lines(["*every_kind_of_crash[[]pysyncobj-kill-minority[]]"])
    assert "rolling-restart" not in quick.stdout.str()
    assert "round" not in quick.stdout.str()
    thorough = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-profile=thorough", "--co"
    )
    thorough.stdout.fnmatch_lines(
        [
            "consensus profile: thorough (6 faults per schedule, 3 rounds of each, "
            "10 searched schedules, 300 state-machine logs, a 300 s crash loop)",
            "*every_kind_of_crash[[]pysyncobj-kill-all[]]*",
            "*every_kind_of_crash[[]pysyncobj-rolling-restart[]]*",
            "*test_writes_through_the_retry_policy*[[]pysyncobj-round3[]]*",
        ]
    )
    rounds = [line for line in thorough.stdout.lines if "at_most_one_leader" in line]
    assert len(rounds) == 3, rounds


def test_an_unknown_profile_is_a_usage_error_naming_the_profiles(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj", "--consensus-profile=fast"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown profile 'fast': choose one of quick, default, thorough*"]
    )


PROGRESS_SUITE = """
import time
import pytest

pytestmark = pytest.mark.consensus_rule("partition-retries")

def test_long(consensus_cluster, consensus_clients, consensus_history):
    consensus_history.nemesis("start-isolate-leader", [["n1", "n2"]])
    for number in range(30):
        consensus_clients[0].put(f"k{number}", "v", timeout=1)
        time.sleep(0.05)
    consensus_history.nemesis("heal-isolate-leader")
"""


def test_long_tests_print_live_progress_lines(pytester: pytest.Pytester) -> None:
    """Rule, adapter, the active fault and operations done, while the test runs; none with
    the interval at 0."""
    pytester.makepyfile(test_suite=PROGRESS_SUITE)
    args = ("--consensus-adapter=fake_store:FakeAdapter", "test_suite.py", "-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(*args, "--consensus-progress=0.5")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  consensus progress: partition-retries [[]fake_store:FakeAdapter[]] *s · "
            "fault: isolate-leader n1->n2 (for *s) · operations: * ok, 0 failed, 0 unknown"
        ]
    )
    quiet = pytester.runpytest_subprocess(*args, "--consensus-progress=0")
    assert "consensus progress" not in quiet.stdout.str()


def test_progress_lines_show_under_xdist_naming_the_worker(pytester: pytest.Pytester) -> None:
    """pytest -n 2: a worker's terminal output goes nowhere, so its lines go to the stderr
    the controller's terminal (or CI log) shows."""
    pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=PROGRESS_SUITE)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter",
        "test_suite.py",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--consensus-progress=0.5",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stderr.fnmatch_lines(
        ["[[]gw?[]]  consensus progress: partition-retries [[]fake_store:FakeAdapter[]] *s · *"]
    )


def test_under_xdist_the_crash_loops_two_tests_share_one_worker_and_one_loop(
    pytester: pytest.Pytester,
) -> None:
    """``-n 2`` without ``--dist``: the two tests that read one crash loop (a session
    fixture) are dealt to one worker, so the loop runs once; with ``--dist load`` given,
    the user's choice stands."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_suite="""
import os
import pytest

@pytest.fixture(scope="session")
def crash_loop_outcome(tmp_path_factory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    folder = tmp_path_factory.getbasetemp().parent.parent
    (folder / f"loop-{worker}").write_text("ran")
    return worker

@pytest.mark.consensus_rule("consensus-safety")
def test_safety(crash_loop_outcome, consensus_adapter):
    pass

def test_determinism(crash_loop_outcome, consensus_adapter):
    pass

@pytest.mark.parametrize("number", range(4))
def test_other(number):
    pass
"""
    )
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter",
        "test_suite.py",
        "-n",
        "2",
        f"--consensus-report={report}",
    )
    assert result.ret == pytest.ExitCode.OK
    loops = sorted(p.name for p in pytester.path.parent.rglob("loop-gw*"))
    assert len(loops) == 1, loops
    # xdist's group suffix (test id "@group") stays out of what the run reports.
    (certificate,) = report.glob("*/certificate.json")
    ids = [t["id"] for r in json.loads(certificate.read_text())["rules"] for t in r["tests"]]
    assert len(ids) == 1 and ids[0].startswith("test_suite.py::test_safety["), ids
    assert "@" not in ids[0], ids
    chosen = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter",
        "test_suite.py",
        "-n",
        "2",
        "--dist=load",
        "-v",
    )
    assert chosen.ret == pytest.ExitCode.OK
    chosen.stdout.fnmatch_lines(["scheduling tests via LoadScheduling"])


def test_xdist_workers_run_with_the_seed_the_header_prints(pytester: pytest.Pytester) -> None:
    """A random seed is drawn once, by the controller: every worker's tests use it, so the
    printed replay command replays what the workers did."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_suite="""
import os
import pytest

@pytest.mark.parametrize("number", range(4))
def test_seed(consensus_settings, number, tmp_path_factory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    folder = tmp_path_factory.getbasetemp().parent.parent
    (folder / f"seed-{worker}-{number}").write_text(str(consensus_settings.seed))
"""
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "test_suite.py", "-n", "2"
    )
    assert result.ret == pytest.ExitCode.OK
    printed = re.search(r"seed=(\d+) \(random;", result.stdout.str())
    assert printed is not None, result.stdout.str()
    seeds = {p.name: p.read_text() for p in pytester.path.parent.rglob("seed-gw*")}
    assert {name.split("-")[1] for name in seeds} == {"gw0", "gw1"}, seeds
    assert set(seeds.values()) == {printed.group(1)}, seeds


def test_a_store_without_request_ids_is_told_what_it_loses(pytester: pytest.Pytester) -> None:
    """The retry test that judges de-duplication alone is n/a for a store that does not
    declare request-ids, with the reason, and no cluster starts for it (the schedule's
    retry test runs its unique puts there, without appends)."""
    pytester.makepyfile(
        no_dedup="""
from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.contract import Capability

class Adapter(PySyncObjAdapter):
    name = "no-dedup"
    capabilities = PySyncObjAdapter.capabilities - {Capability.REQUEST_IDS}
"""
    )
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=no_dedup:Adapter",
        "-rs",
        "-k",
        "reply_was_lost",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED*n/a: adapter no_dedup:Adapter lacks capability request-ids (a write "
            "retried after a lost reply may apply twice*"
        ]
    )
