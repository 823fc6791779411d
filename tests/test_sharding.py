"""One certification split across runners (``--consensus-shard=K/N``) and merged back
(``consensus-merge``), as a user meets it: pytest runs of a small suite on the fake store,
each shard its own process with its own report folder, then the merge command, whose
certificate must say what the unsplit run's says."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_consensus.plugin.sharding import Shard

pytestmark = pytest.mark.usefixtures("tests_on_path")

SUITE = """
import os
import pytest


@pytest.mark.consensus_rule("leader-gating")
@pytest.mark.parametrize("round", range(3))
def test_gating(consensus_clients, consensus_history, round):
    consensus_history.nemesis("start-isolate-leader", [["n1", "n2"], ["n2", "n1"]])
    for number in range(5 + round):
        consensus_clients[number % 3].put(f"k{number}", "v", timeout=1)
    consensus_history.nemesis("heal-isolate-leader", [["n1", "n2"], ["n2", "n1"]])


@pytest.mark.consensus_rule("read-levels")
def test_reads(consensus_clients):
    consensus_clients[0].put("k", "1", timeout=1)
    assert consensus_clients[1].get("k", timeout=1) == "1"


@pytest.mark.consensus_rule("partition-retries")
def test_retries(consensus_clients):
    consensus_clients[2].put("r", "1", timeout=1)
    assert os.environ.get("BREAK_RETRIES") is None, "the retried write was applied twice"


@pytest.mark.consensus_rule("consensus-safety")
@pytest.mark.consensus_requires("kill")
def test_needs_kill(consensus_cluster):
    raise AssertionError("the fake store cannot be killed; this must be n/a")
"""

ADAPTER = "--consensus-adapter=fake_store:FakeAdapter"
FOLDER = "fake_store_FakeAdapter"


def certify(pytester: pytest.Pytester, report: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        ADAPTER,
        "--consensus-seed=7",
        f"--consensus-report={pytester.path / report}",
        "-p",
        "no:cacheprovider",
        *extra,
        "test_suite.py",
    )


def merge(pytester: pytest.Pytester, *shards: str) -> subprocess.CompletedProcess[str]:
    """consensus-merge, as its console script runs it."""
    command = [sys.executable, "-m", "pytest_consensus.report.merge", str(pytester.path / "all")]
    return subprocess.run(
        command + [str(pytester.path / shard) for shard in shards],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def certificate(pytester: pytest.Pytester, report: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (pytester.path / report / FOLDER / "certificate.json").read_text()
    )
    return document


def edit(pytester: pytest.Pytester, report: str, change: Callable[[dict[str, Any]], Any]) -> None:
    """Change the run record of a report's certificate in place."""
    path = pytester.path / report / FOLDER / "certificate.json"
    document = json.loads(path.read_text())
    change(document["run"])
    path.write_text(json.dumps(document))


def verdicts(document: dict[str, Any]) -> dict[str, str]:
    return {rule["id"]: rule["verdict"] for rule in document["rules"]}


def test_shares_deal_the_tests_round_robin_and_bad_forms_say_the_right_one() -> None:
    items = list(range(7))
    shares = [Shard(k, 3).share(items)[0] for k in (1, 2, 3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert Shard(2, 3).share(items)[1] == [0, 2, 3, 5, 6]
    assert Shard.parse(" 2/3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    for wrong in ("3", "0/3", "4/3", "a/b", "1/0"):
        with pytest.raises(ValueError, match="consensus-shard"):
            Shard.parse(wrong)


def test_merged_shards_certify_what_the_unsplit_run_does(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    whole = certify(pytester, "whole")
    assert whole.ret == pytest.ExitCode.OK
    first = certify(pytester, "shard-1", "--consensus-shard=1/2")
    second = certify(pytester, "shard-2", "--consensus-shard=2/2")
    assert first.ret == second.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines(["consensus shard 1/2: 3 of the 6 selected tests*"])
    second.stdout.fnmatch_lines(["*2 passed, 1 skipped, 3 deselected*"])
    shard = certificate(pytester, "shard-2")
    assert shard["run"]["shard"] == {"index": 2, "total": 2, "unsplit_tests": 6}
    assert "--consensus-shard=2/2" in shlex.split(shard["run"]["command"])

    merged = merge(pytester, "shard-1", "shard-2")
    assert merged.returncode == 0, merged.stderr
    assert "fake_store:FakeAdapter: pass (merged from 2 shards)" in merged.stdout
    expected, got = certificate(pytester, "whole"), certificate(pytester, "all")
    assert verdicts(got) == verdicts(expected)
    assert verdicts(got)["consensus-safety"] == "n/a"
    assert [r["reason"] for r in got["rules"]] == [r["reason"] for r in expected["rules"]]
    tests = {t["id"]: t for rule in got["rules"] for t in rule["tests"]}
    whole_tests = {t["id"]: t for rule in expected["rules"] for t in rule["tests"]}
    assert {i: t["verdict"] for i, t in tests.items()} == {
        i: t["verdict"] for i, t in whole_tests.items()
    }
    for test in tests.values():  # every test's evidence, copied into the merged report
        if "history" in whole_tests[test["id"]]:
            history = pytester.path / "all" / FOLDER / test["history"]
            assert history.read_text().count('"invoke"') > 0, test
    for figure in ("operations", "acknowledged", "operations_during_partitions", "heals"):
        assert got["measurements"][figure] == expected["measurements"][figure], figure
    assert got["run"]["command"] == expected["run"]["command"]
    assert [s["index"] for s in got["run"]["shards"]] == [1, 2]
    markdown = (pytester.path / "all" / FOLDER / "certificate.md").read_text()
    assert "| `leader-gating` | pass |" in markdown
    assert (pytester.path / "all" / FOLDER / "certificate.html").is_file()


def test_a_failure_in_one_shard_fails_the_merged_rule(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    certify(pytester, "shard-2", "--consensus-shard=2/2")
    monkeypatch.setenv("BREAK_RETRIES", "1")  # shard 1 holds test_retries
    failing = certify(pytester, "shard-1", "--consensus-shard=1/2")
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    merged = merge(pytester, "shard-1", "shard-2")
    assert merged.returncode == 1, merged.stderr
    got = certificate(pytester, "all")
    assert verdicts(got)["partition-retries"] == "fail"
    assert (
        "applied twice" in next(r for r in got["rules"] if r["id"] == "partition-retries")["reason"]
    )
    assert verdicts(got)["leader-gating"] == "pass"


def test_shards_that_are_not_one_run_are_refused_and_nothing_is_written(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    certify(pytester, "shard-1", "--consensus-shard=1/3")
    certify(pytester, "shard-2", "--consensus-shard=2/3")
    missing = merge(pytester, "shard-1", "shard-2")
    assert missing.returncode == 2
    assert "shard(s) 3/3 missing; merge all 3 shards" in missing.stderr
    assert not (pytester.path / "all").exists()

    # Shard 3 of a run with another seed (the second shard's certificate, edited).
    shutil.copytree(pytester.path / "shard-2", pytester.path / "shard-3")
    edit(pytester, "shard-3", lambda run: run.update(seed=8, shard={**run["shard"], "index": 3}))
    other_seed = merge(pytester, "shard-1", "shard-2", "shard-3")
    assert other_seed.returncode == 2
    assert "the shards are not one run: seed 7 in" in other_seed.stderr

    twice = merge(pytester, "shard-1", "shard-1")
    assert "shard(s) [1] of 3 given more than once" in twice.stderr

    shutil.copytree(pytester.path / "shard-1", pytester.path / "unsplit")
    edit(pytester, "unsplit", lambda run: run.pop("shard"))
    whole = merge(pytester, "unsplit")
    assert whole.returncode == 2 and "is not a shard's certificate" in whole.stderr

    nothing = merge(pytester, "nowhere")
    assert nothing.returncode == 2 and "no certificate.json there" in nothing.stderr


def test_a_shard_without_a_seed_is_a_usage_error_that_suggests_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(ADAPTER, "--consensus-shard=1/2", "test_suite.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--consensus-shard=1/2: give every shard the same --consensus-seed*--consensus-seed=*"]
    )
    wrong = pytester.runpytest_subprocess(ADAPTER, "--consensus-shard=3/2", "test_suite.py")
    wrong.stderr.fnmatch_lines(["*--consensus-shard=3/2: K must be between 1 and N*"])
