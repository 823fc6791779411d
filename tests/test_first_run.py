"""The first run a user makes: the README's first command in a fresh clone with a regular
(non-editable) install, and harness problems that must never become a store's verdict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_consensus.contract.errors import (
    CapabilityMissing,
    HarnessError,
    NodeStartError,
    harness_problem,
)
from pytest_consensus.contract.waiting import WaitTimeout

ROOT = Path(__file__).resolve().parents[1]
#: Tests the first-command check runs: the one whose child process once imported the
#: checkout's folder instead of the installed package, and one that starts node processes.
FIRST_RUN_TESTS = "another_process_with_another_hash_seed or odd_input"


def readme_first_command() -> str:
    """The first command of the README's first bash block."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "the README has no bash block"
    return block.group(1).strip().splitlines()[0]


def copy_of_the_checkout(destination: Path) -> Path:
    """The files a fresh clone has (tracked, and new ones not ignored), without build output."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"needs the project as a git checkout: {error}")
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.slow
def test_the_readmes_first_command_passes_in_a_fresh_clone_with_a_regular_install(
    tmp_path: Path,
) -> None:
    """Run exactly as written in the clone's root, where a `pytest_consensus/` folder without
    `adapters/` sits beside the installed package: no child process may import the folder."""
    command = readme_first_command()
    assert command == (
        "python3 -m pip install '.[pysyncobj]' && pytest --consensus-adapter=pysyncobj"
    )
    clone = copy_of_the_checkout(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for name in ("PYTHONPATH", "PYTHONSAFEPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", "-c", f"{command} -p no:cacheprovider -k '{FIRST_RUN_TESTS}'"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert re.search(r"^fsm-determinism\s+pass \(\d+ passed\)$", done.stdout, re.M), output[-3000:]
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pytest_consensus as p; print(p.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in installed, "the install was not a regular one into the venv"


VANISHING_ADAPTER = """
import os

if os.environ.get("PYTHONHASHSEED") in ("1", "2"):
    raise ImportError("this module imports only in the pytest process")

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter


class Adapter(PySyncObjAdapter):
    pass
"""


def test_a_child_process_that_cannot_import_the_adapter_is_a_harness_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(vanishing_adapter=VANISHING_ADAPTER)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=vanishing_adapter:Adapter",
        "-k",
        "another_process_with_another_hash_seed",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "fsm-determinism*harness error (1 of 1)",
            "*fsm-determinism on vanishing_adapter:Adapter: no verdict, the harness failed: "
            "HarnessError: a child process could not load the harness and adapter pytest "
            "imported*this module imports only in the pytest process*",
            "*a harness error is no verdict on the store*",
        ]
    )
    assert "FAIL (" not in result.stdout.str()


PROBLEM_SUITE = """
import pytest
from pytest_consensus.contract.errors import CapabilityMissing, HarnessError
from pytest_consensus.contract.waiting import WaitTimeout

@pytest.mark.consensus_rule("read-levels")
def test_harness_broke(consensus_adapter):
    raise HarnessError("iptables is not installed")

@pytest.mark.consensus_rule("leader-gating")
def test_capability_found_missing(consensus_adapter):
    raise CapabilityMissing("the store reports no digests")

@pytest.mark.consensus_rule("partition-retries")
def test_store_never_got_there(consensus_adapter):
    raise WaitTimeout("timed out after 30.0s waiting for a leader")
"""


@pytest.mark.usefixtures("tests_on_path")
def test_harness_errors_missing_capabilities_and_store_timeouts_get_their_own_verdicts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=PROBLEM_SUITE)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=fake_store:FakeAdapter", "test_suite.py", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(
        [
            "leader-gating*n/a",
            "read-levels*harness error (1 of 1)",
            "partition-retries*FAIL (1 of 1 failed)",
            "*leader-gating on fake_store:FakeAdapter: n/a because the store reports no digests",
            "*read-levels on fake_store:FakeAdapter: no verdict, the harness failed: "
            "HarnessError: iptables is not installed",
        ]
    )
    # The store's own failure decides the exit status: 1, not the usage error 4.
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_which_errors_are_the_harnesss_own() -> None:
    assert harness_problem(HarnessError("no ip command"), "call") == "HarnessError: no ip command"
    assert harness_problem(NodeStartError("n1", "exited with 1", ""), "setup") is not None
    # A node that ran before and cannot start again in the test's body is the store's failure.
    assert harness_problem(NodeStartError("n1", "exited with 1", ""), "call") is None
    assert harness_problem(WaitTimeout("no leader"), "call") is None
    assert harness_problem(AssertionError("lost write"), "call") is None
    assert harness_problem(CapabilityMissing("no digest"), "call") is None
