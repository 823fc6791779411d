"""The suite must fail: each broken store fails the rule it breaks, with the reason."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("tests_on_path")

BROKEN_STORES = [
    pytest.param(
        "follower_applies_locally",
        "leader_gating",
        "leader-gating",
        "*writes acknowledged by followers are not on a majority*apply them locally*",
        id="follower-applies-locally",
    ),
    pytest.param(
        "acks_before_commit",
        "deposed",
        "leader-gating",
        "*cut off in a minority*acknowledged 3 writes*must not acknowledge writes*",
        id="acks-before-commit",
    ),
    pytest.param(
        "clock_in_state_machine",
        "fsm_determinism",
        "fsm-determinism",
        "*replicas at the same applied index hold different states*not deterministic*",
        id="clock-in-state-machine",
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
    result = pytester.runpytest_subprocess(
        f"--consensus-adapter=broken_stores.{store}:Adapter",
        "-k",
        selection,
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message, f"{rule}*FAIL*"])


def test_the_correct_store_passes_the_same_selection(pytester: pytest.Pytester) -> None:
    """The control: the unbroken backend passes exactly what the broken ones fail."""
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=pysyncobj",
        "-p",
        "no:cacheprovider",
        "-k",
        "leader_gating or fsm_determinism or consensus_safety",
    )
    assert result.ret == pytest.ExitCode.OK  # 5 passed; 4 and 1 n/a without network faults
    assert result.parseoutcomes()["passed"] >= 4
