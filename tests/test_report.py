"""Certificates, the figures in the summary, and comparison with an earlier certificate, as a
user meets them: through pytest runs of small suites on the fake store, and the HTML page
opened in a real headless browser."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("tests_on_path")

SUITE = """
import os
import pytest
from pytest_consensus.checkers.linearizability import check_history
from pytest_consensus.checkers.models import CasRegisterModel
from pytest_consensus.checkers.operations import pair_operations
from pytest_consensus.checkers.timeline import render_timeline
from pytest_consensus.report.records import COUNTEREXAMPLE_PROPERTY


@pytest.mark.consensus_rule("leader-gating")
def test_gating(consensus_clients, consensus_history):
    consensus_history.nemesis("start-isolate-leader", [["n1", "n2"], ["n2", "n1"]])
    for number in range(20):
        consensus_clients[number % 3].put(f"k{number}", "v", timeout=1)
    consensus_history.nemesis("heal-isolate-leader", [["n1", "n2"], ["n2", "n1"]])
    consensus_clients[0].put("after", "v", timeout=1)


@pytest.mark.consensus_rule("read-levels")
def test_reads(consensus_clients, consensus_history, request, tmp_path):
    consensus_clients[0].put("k", "1", timeout=1)
    assert consensus_clients[1].get("k", timeout=1) == "1"
    if os.environ.get("BREAK_READS"):  # a strong read of a value nobody wrote
        process = consensus_history.new_process()
        consensus_history.record(process, "invoke", "get", key="k")
        consensus_history.record(process, "ok", "get", key="k", value="9")
    model = CasRegisterModel()
    verdict = check_history(consensus_history.events, model)
    if verdict.linearizable is False:
        page = tmp_path / "counterexample.html"
        operations = pair_operations(consensus_history.events)
        page.write_text(render_timeline(operations, model, verdict, request.node.name))
        request.node.user_properties.append((COUNTEREXAMPLE_PROPERTY, str(page)))
        pytest.fail(verdict.counterexample.describe(model), pytrace=False)


@pytest.mark.consensus_rule("partition-retries")
def test_fault_without_workload(consensus_clients, consensus_history):
    consensus_history.nemesis("start-kill-one", [["n3"]])
    consensus_history.nemesis("heal-kill-one", [["n3"]])


@pytest.mark.consensus_rule("consensus-safety")
@pytest.mark.consensus_requires("kill")
def test_needs_kill(consensus_cluster):
    raise AssertionError("the fake store cannot be killed; this must be n/a")
"""

ADAPTER = "--consensus-adapter=fake_store:FakeAdapter"


def run_with_report(pytester: pytest.Pytester, report: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        ADAPTER,
        "--consensus-seed=5",
        f"--consensus-report={report}",
        "-p",
        "no:cacheprovider",
        *extra,
        "test_suite.py",
    )


@pytest.fixture
def certified(pytester: pytest.Pytester) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report"
    return run_with_report(pytester, report), report / "fake_store_FakeAdapter"


def test_the_certificate_json_says_what_a_user_needs(
    certified: tuple[pytest.RunResult, Path],
) -> None:
    result, folder = certified
    assert result.ret == pytest.ExitCode.OK
    certificate = json.loads((folder / "certificate.json").read_text())
    assert certificate["schema"] == "pytest-consensus/certificate"
    assert certificate["schema_version"] == 1
    assert certificate["verdict"] == "pass"
    assert certificate["adapter"]["name"] == "fake_store:FakeAdapter"
    assert certificate["adapter"]["version"] == "fake 1.0"
    assert set(certificate["suite"]) >= {"pytest_consensus", "pytest", "python"}
    assert certificate["run"]["seed"] == 5 and certificate["run"]["nodes"] == 3
    assert certificate["run"]["profile"] == "default"
    # How each network fault was made (the namespace host here, as root).
    faults = certificate["run"]["network_faults"]
    assert set(faults) == {"partitions", "link_faults", "delay_and_loss"}
    assert faults["partitions"].startswith("iptables DROP rules"), faults
    assert faults["link_faults"].startswith("a link proxy in each node's"), faults
    assert faults["delay_and_loss"].startswith("the link proxies;"), faults
    rules = {rule["id"]: rule for rule in certificate["rules"]}
    assert list(rules) == [
        "consensus-safety",
        "fsm-determinism",
        "leader-gating",
        "read-levels",
        "partition-retries",
    ]
    assert rules["leader-gating"]["verdict"] == "pass"
    assert rules["consensus-safety"]["verdict"] == "n/a"
    assert "lacks capability kill" in rules["consensus-safety"]["reason"]
    assert rules["fsm-determinism"]["verdict"] == "not run"
    gating = rules["leader-gating"]["tests"][0]
    assert (folder / gating["history"]).read_text().count('"invoke"') == 21
    measurements = certificate["measurements"]
    assert measurements["acknowledged"] == 23  # 21 puts + put and get of test_reads
    assert measurements["latency_p50_ms"] is not None
    assert measurements["operations_during_partitions"] == 20
    assert measurements["availability_during_partitions"] == 1.0


def test_markdown_and_html_show_every_rule(certified: tuple[pytest.RunResult, Path]) -> None:
    _, folder = certified
    markdown = (folder / "certificate.md").read_text()
    assert "| `leader-gating` | pass |" in markdown
    assert "- partitions: iptables DROP rules in the nodes' network namespaces" in markdown
    assert (
        "| `consensus-safety` | n/a | adapter fake_store:FakeAdapter lacks capability kill |"
        in (markdown)
    )
    page = (folder / "certificate.html").read_text()
    for rule in ("consensus-safety", "fsm-determinism", "leader-gating", "read-levels"):
        assert f'id="rule-{rule}"' in page
    assert page.count("<svg") >= 2  # the gating test's timeline and the latency distribution
    for fetch in ('src="http', 'href="http', "<script", "<link", "@import"):
        assert fetch not in page  # self-contained: nothing to fetch, nothing to run


def test_figures_are_labelled_in_words_and_faults_match_the_plot(
    certified: tuple[pytest.RunResult, Path],
) -> None:
    result, folder = certified
    markdown = (folder / "certificate.md").read_text()
    assert "- latency p50 (ms): " in markdown and "- availability during partitions: 100.0 %" in (
        markdown
    )
    assert "_ms" not in markdown and "_seconds" not in markdown
    page = (folder / "certificate.html").read_text()
    gating = page.split("test_suite.py::test_gating[", 1)[1].split("<h3>")[0]
    # The fault table gives the fault as the history recorded it (the plot's time axis).
    certificate = json.loads((folder / "certificate.json").read_text())
    (rule,) = [r for r in certificate["rules"] if r["id"] == "leader-gating"]
    events = [
        json.loads(line) for line in (folder / rule["tests"][0]["history"]).read_text().splitlines()
    ]
    times = {e["f"]: e["time"] for e in events if e["process"] == "nemesis"}
    assert "<th>from (s)</th><th>to (s)</th>" in gating
    expected = (
        f"<td>isolate-leader</td><td>{times['start-isolate-leader']:.2f}</td>"
        f"<td>{times['heal-isolate-leader']:.2f}</td>"
    )
    assert expected in gating
    lonely = page.split("test_suite.py::test_fault_without_workload[", 1)[1].split("<h3>")[0]
    assert "kill-one" in lonely and "<svg" not in lonely  # no plot of nothing
    assert "Warning" not in result.stdout.str() + result.stderr.str()


def test_the_summary_prints_figures_by_backend(certified: tuple[pytest.RunResult, Path]) -> None:
    result, folder = certified
    result.stdout.fnmatch_lines(
        [
            "figure*fake_store:FakeAdapter",
            "latency p50 / p99*ms",
            "throughput*acknowledged/s",
            "availability in partitions*100.0 % of 20",
            "recovery after heal*s median*s max",
            f"consensus certificate: {folder / 'certificate.json'} (.md, .html beside it)",
        ]
    )


def test_the_html_page_opens_in_a_headless_browser_and_shows_every_rule(
    certified: tuple[pytest.RunResult, Path], tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    _, folder = certified
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        (folder / "certificate.html").as_uri(),
    ]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    page_errors = [
        line
        for line in shown.stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert not page_errors, page_errors
    dom = shown.stdout
    assert "Certificate: fake_store:FakeAdapter (fake 1.0)" in dom
    for rule in ("consensus-safety", "fsm-determinism", "leader-gating", "read-levels"):
        assert f'id="rule-{rule}"' in dom, rule
    assert dom.count("<svg") >= 2


def test_compare_fails_the_run_when_a_rule_goes_from_pass_to_fail(
    certified: tuple[pytest.RunResult, Path],
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, folder = certified
    old = pytester.path / "old.json"
    shutil.copyfile(folder / "certificate.json", old)
    same = run_with_report(pytester, pytester.path / "again", f"--consensus-compare={old}")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*consensus compare*", "no rule changed its verdict"])

    monkeypatch.setenv("BREAK_READS", "1")
    broken = run_with_report(pytester, pytester.path / "broken", f"--consensus-compare={old}")
    assert broken.ret == pytest.ExitCode.TESTS_FAILED
    broken.stdout.fnmatch_lines(
        [
            "*consensus compare*",
            "fake_store:FakeAdapter: REGRESSION: read-levels pass -> fail: test_reads*",
            "1 rule(s) went from pass to fail: the run fails",
        ]
    )
    page = (pytester.path / "broken" / "fake_store_FakeAdapter" / "certificate.html").read_text()
    assert 'class="counterexample"' in page


def test_compare_rejects_what_is_not_a_certificate(pytester: pytest.Pytester) -> None:
    (pytester.path / "junk.json").write_text('{"hello": 1}')
    (pytester.path / "future.json").write_text(
        json.dumps(
            {
                "schema": "pytest-consensus/certificate",
                "schema_version": 99,
                "adapter": {"name": "x"},
            }
        )
    )
    for name, message in (
        ("missing.json", "*cannot read certificate*missing.json*"),
        ("junk.json", "*junk.json is not a pytest-consensus certificate*"),
        ("future.json", "*schema version 99*upgrade pytest-consensus*"),
    ):
        result = pytester.runpytest_subprocess(
            ADAPTER, f"--consensus-compare={pytester.path / name}"
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR, name
        result.stderr.fnmatch_lines([message])


def test_junit_xml_carries_rule_ids_and_evidence_as_properties(pytester: pytest.Pytester) -> None:
    import xml.etree.ElementTree as ElementTree

    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        ADAPTER, "--junitxml=junit.xml", "-p", "no:cacheprovider", "test_suite.py"
    )
    assert result.ret == pytest.ExitCode.OK
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ElementTree.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    gating = cases["test_gating[fake]"]
    assert gating["consensus_rule"] == "leader-gating"
    assert gating["consensus_adapter"] == "fake_store:FakeAdapter"
    assert Path(gating["consensus_history"]).name == "history.jsonl"
    assert cases["test_needs_kill[fake]"]["consensus_rule"] == "consensus-safety"


def test_compare_with_a_certificate_of_another_name_when_one_adapter_runs(
    certified: tuple[pytest.RunResult, Path], pytester: pytest.Pytester
) -> None:
    _, folder = certified
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:SecondFakeAdapter",
        f"--consensus-compare={folder / 'certificate.json'}",
        "-p",
        "no:cacheprovider",
        "test_suite.py",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["comparing fake_store:SecondFakeAdapter with the certificate of fake_store:FakeAdapter"]
    )


def test_evidence_folders_of_long_test_ids_never_collide() -> None:
    from pytest_consensus.plugin.summary import slug

    prefix = "conformance/test_read_levels.py::" + "a_long_test_name_" * 8
    leader, follower = slug(prefix + "[x-leader]"), slug(prefix + "[x-follower]")
    assert leader != follower and len(leader) <= 100 and len(follower) <= 100
    assert slug("pysyncobj") == "pysyncobj"
    assert slug("broken_stores.x:Adapter") == "broken_stores.x_Adapter"


def test_a_failures_headline_is_its_cause_not_the_start_of_a_quoted_traceback() -> None:
    from pytest_consensus.report.records import headline

    quoted = (
        "the state machine failed in a child process: Traceback (most recent call last):\n"
        '  File "<string>", line 3, in <module>\n'
        "ModuleNotFoundError: No module named 'pytest_consensus.adapters'\n"
    )
    assert headline(quoted) == (
        "the state machine failed in a child process: "
        "ModuleNotFoundError: No module named 'pytest_consensus.adapters'"
    )
    assert headline("lost writes: k1, k2\nmore detail") == "lost writes: k1, k2"
    assert len(headline("x" * 1000)) == 300


def test_the_throughput_line_reaches_the_last_operation_and_rates_a_short_last_bin_fairly() -> None:
    from pytest_consensus.report.plots import BIN_SECONDS, throughput_steps

    times, rates = throughput_steps([0.1, 0.2, 0.6, 1.1, 1.15], end=1.2)
    assert times == [0.0, BIN_SECONDS, 2 * BIN_SECONDS, 1.2]
    assert rates[:3] == [4.0, 2.0, pytest.approx(2 / 0.2)]
    assert rates[-1] == rates[-2]  # the step line's last corner sits at the end


def test_logarithmic_axes_are_labelled_with_plain_numbers() -> None:
    pytest.importorskip("matplotlib")
    from pytest_consensus.report.plots import _pyplot, plain_numbers

    plt = _pyplot()
    figure, axes = plt.subplots()
    axes.scatter([0, 1, 2], [0.5, 6.0, 300.0])
    axes.set_yscale("log")
    plain_numbers(axes.yaxis)
    figure.canvas.draw()
    labels = [t.get_text() for t in axes.get_yticklabels() if t.get_text()]
    plt.close(figure)
    assert {"1", "10", "100"} <= set(labels), labels
    assert not any("^" in label or "$" in label for label in labels)


def test_the_certificates_command_replays_the_same_configuration(
    pytester: pytest.Pytester,
) -> None:
    """Every option that changes the run is in the certificate's command, adapter options
    included: running that command again certifies the same configuration."""
    pytester.makepyfile(test_suite=SUITE)
    first = run_with_report(
        pytester, pytester.path / "first", "--consensus-adapter-option=flavour=salty"
    )
    assert first.ret == pytest.ExitCode.OK
    certificate = json.loads(
        (pytester.path / "first" / "fake_store_FakeAdapter" / "certificate.json").read_text()
    )
    command = shlex.split(certificate["run"]["command"])
    assert command[:2] == ["pytest", "--consensus-adapter=fake_store:FakeAdapter"]
    assert "--consensus-adapter-option=flavour=salty" in command
    assert {"--consensus-seed=5", "--consensus-nodes=3", "--consensus-profile=default"} <= set(
        command
    )
    again = pytester.runpytest_subprocess(
        *command[1:],
        f"--consensus-report={pytester.path / 'again'}",
        "-p",
        "no:cacheprovider",
        "test_suite.py",
    )
    assert again.ret == pytest.ExitCode.OK
    replayed = json.loads(
        (pytester.path / "again" / "fake_store_FakeAdapter" / "certificate.json").read_text()
    )
    assert (
        replayed["adapter"]["version"] == certificate["adapter"]["version"] == ("fake 1.0 (salty)")
    )
    assert [r["verdict"] for r in replayed["rules"]] == [r["verdict"] for r in certificate["rules"]]
    assert replayed["run"]["command"] == certificate["run"]["command"]


FAILING = """
import pytest

@pytest.mark.consensus_rule("leader-gating")
def test_loses_a_write(consensus_clients, consensus_history):
    consensus_clients[0].put("k", "v", timeout=1.0)
    raise AssertionError("the store lost k")
"""


def _kept_folder(result: pytest.RunResult) -> Path:
    line = next(line for line in result.stdout.lines if line.startswith("kept: "))
    return Path(line.removeprefix("kept: ").split(" (", 1)[0])


def test_a_failures_evidence_is_kept_where_later_runs_leave_it(pytester: pytest.Pytester) -> None:
    """pytest keeps 3 runs of temp folders; a failing test's history and schedule are copied
    under .pytest-consensus/evidence in the root folder (or the report folder), named in
    the failure, and stay there while later runs fail too."""
    pytester.makepyfile(test_suite=FAILING)

    def run(*extra: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            ADAPTER, "-p", "no:cacheprovider", *extra, "test_suite.py"
        )

    first = run()
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    kept = _kept_folder(first)
    assert kept.is_relative_to(pytester.path / ".pytest-consensus" / "evidence")
    assert '"put"' in (kept / "history.jsonl").read_text()
    for _ in range(3):
        assert run().ret == pytest.ExitCode.TESTS_FAILED
    assert (kept / "history.jsonl").is_file(), "three more runs left the first one's evidence"
    runs = sorted((pytester.path / ".pytest-consensus" / "evidence").iterdir())
    assert len(runs) == 4

    reported = run(f"--consensus-report={pytester.path / 'report'}")
    in_report = _kept_folder(reported)
    assert in_report.is_relative_to(pytester.path / "report" / "evidence")
    assert (in_report / "history.jsonl").is_file()


def test_only_the_newest_runs_evidence_stays_in_the_default_folder(tmp_path: Path) -> None:
    from pytest_consensus.plugin.kept_evidence import KEPT_RUNS, KeptEvidence

    source = tmp_path / "test-folder"
    source.mkdir()
    (source / "history.jsonl").write_text("{}\n")
    root = tmp_path / "evidence"
    for number in range(KEPT_RUNS + 3):
        (root / f"20260101-0000{number:02d}-seed1").mkdir(parents=True)
    kept = KeptEvidence(root, prune=True, seed=7)
    folder = kept.keep("conformance/test_x.py::test_y[a]", [source, tmp_path / "missing"])
    assert (folder / "history.jsonl").read_text() == "{}\n"
    assert kept.run in root.iterdir() and len(list(root.iterdir())) == KEPT_RUNS
    assert not (root / "20260101-000000-seed1").exists(), "the oldest went first"


def test_a_grouped_tests_evidence_folder_is_named_like_its_id_in_the_certificate(
    tmp_path: Path,
) -> None:
    """Under pytest -n, xdist appends "@<group>" to the crash loop tests' ids; the kept
    folder is named from the id the certificate and the replay line use."""
    from pytest_consensus.plugin.kept_evidence import KeptEvidence
    from pytest_consensus.report.records import GROUP_PREFIX

    kept = KeptEvidence(tmp_path / "evidence", prune=True, seed=1)
    test_id = "conformance/test_crash_loop.py::test_a[etcd]"
    grouped = kept.folder_for(f"{test_id}@{GROUP_PREFIX}crash_loop_outcome-etcd")
    assert grouped == kept.folder_for(test_id)
    assert "@" not in grouped.name


def test_a_folder_two_failing_tests_share_is_copied_once_and_linked(tmp_path: Path) -> None:
    """The crash loop's two tests register one session folder: the second links to the
    first copy instead of copying tens of megabytes again."""
    from pytest_consensus.plugin.kept_evidence import KeptEvidence

    shared = tmp_path / "crash-loop" / "failure-1"
    (shared / "logs").mkdir(parents=True)
    (shared / "history.jsonl").write_text("{}\n")
    kept = KeptEvidence(tmp_path / "evidence", prune=True, seed=1)
    first = kept.keep("conformance/test_crash_loop.py::test_a[etcd]", [shared])
    second = kept.keep("conformance/test_crash_loop.py::test_b[etcd]", [shared])
    assert (first / "history.jsonl").read_text() == "{}\n" and not first.is_symlink()
    assert second.is_symlink() and (second / "history.jsonl").read_text() == "{}\n"


def test_a_failure_under_xdist_is_reported_by_its_message_not_the_workers_header(
    pytester: pytest.Pytester,
) -> None:
    """xdist puts "[gw0] linux -- Python ..." before a worker's failure; the certificate's
    reason (and the summary's headline, its first line) is the failure's own message."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_suite="""
import pytest

@pytest.mark.consensus_rule("leader-gating")
def test_loses_nothing_but_fails(consensus_clients):
    pytest.fail("3 acknowledged writes missing on n2", pytrace=False)
"""
    )
    report = pytester.path / "report"
    result = run_with_report(pytester, report, "-n", "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    certificate = json.loads((report / "fake_store_FakeAdapter" / "certificate.json").read_text())
    gating = next(rule for rule in certificate["rules"] if rule["id"] == "leader-gating")
    assert gating["verdict"] == "fail"
    assert gating["tests"][0]["message"] == "3 acknowledged writes missing on n2"
    assert gating["reason"] == (
        "test_loses_nothing_but_fails[fake]: 3 acknowledged writes missing on n2"
    )
