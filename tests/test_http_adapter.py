"""The HTTP store adapter: a store of any language, described by a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_consensus.adapters.http import HttpStoreAdapter, StoreConfigError

ROOT = Path(__file__).resolve().parents[1]
PYSYNCOBJ_TOML = ROOT / "examples" / "pysyncobj-over-http" / "store.toml"


def test_the_http_adapter_certifies_pysyncobj_from_its_toml(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=http",
        f"--consensus-adapter-option=config={PYSYNCOBJ_TOML}",
        "-k",
        "writes_to_followers or concurrent_workload or kill_and_restart",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "consensus: adapters=http (pysyncobj-over-http pysyncobj 0.3.17 (via *store.toml))*",
            "consensus-safety*pass (2 passed)*",
            "fsm-determinism*pass (1 passed)*",
            "leader-gating*pass (1 passed)*",
        ]
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (None, "does not exist"),
        (
            "[store]\ncommand = 'x'\nports = {api = 1}\ncapabilities = []\n",
            r"\[store\] command must be a list",
        ),
        (
            "[store]\ncommand = ['{nodename}']\nports = {api = 1}\ncapabilities = []\n",
            r"unknown placeholder \{nodename\}.*known: address",
        ),
        (
            "[store]\ncommand = ['x']\nports = {api = 1}\ncapabilities = ['teleport']\n",
            "unknown capability 'teleport'; valid: strong",
        ),
        (
            "[store]\ncommand = ['x']\nports = {raft = 1}\ncapabilities = []\n",
            r"api_port 'api' is not in ports \['raft'\]",
        ),
        ("[store\n", "store.toml"),
    ],
)
def test_a_bad_store_config_names_the_file_and_key(
    tmp_path: Path, toml: str | None, message: str
) -> None:
    path = tmp_path / "store.toml"
    if toml is not None:
        path.write_text(toml)
    with pytest.raises(StoreConfigError, match=message):
        HttpStoreAdapter({"config": str(path)})


def test_the_http_adapter_without_a_config_says_how_to_give_one() -> None:
    with pytest.raises(StoreConfigError, match="--consensus-adapter-option=config="):
        HttpStoreAdapter({})
