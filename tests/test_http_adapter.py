"""The HTTP store adapter: a store of any language, described by a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_consensus.adapters.http import HttpStoreAdapter, StoreConfig, StoreConfigError
from pytest_consensus.contract import (
    Capability,
    ConsensusError,
    DefiniteError,
    HostSpec,
    HttpStoreClient,
    NodeProcess,
    Rejected,
    Unsupported,
    wait_for,
)
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.http_protocol import error_from_body

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


def test_a_relative_config_and_program_are_found_from_the_nodes_folders(
    pytester: pytest.Pytester,
) -> None:
    """Nodes run in their log folders: ``config=store.toml`` (relative to where pytest
    starts) and a program ``bin/run`` (relative to the file) still work."""
    runner = pytester.path / "bin" / "run"
    runner.parent.mkdir()
    runner.write_text('#!/bin/sh\nexec "$@"\n')
    runner.chmod(0o755)
    toml = PYSYNCOBJ_TOML.read_text().replace(
        'command = [\n    "{python}"', 'command = [\n    "bin/run", "{python}"'
    )
    assert '"bin/run"' in toml
    (pytester.path / "store.toml").write_text(toml)
    result = pytester.runpytest_subprocess(
        "--consensus-adapter=http",
        "--consensus-adapter-option=config=store.toml",
        "-k",
        "writes_to_followers",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["leader-gating*pass (1 passed)*"])


MEMBERS_TOML = """
[store]
command = ["store", "--id", "{name}", "--cluster", "{members}"]
member = "{name}={address}:{raft_port}"
ports = { raft = 8101, api = 8102 }
capabilities = []
"""


def three_hosts(tmp_path: Path) -> list[HostSpec]:
    return [HostSpec(f"n{i}", f"127.0.0.{i}", tmp_path / "d", tmp_path / "l") for i in (1, 2, 3)]


def test_members_lists_every_node_itself_included(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text(MEMBERS_TOML)
    config = StoreConfig.load(path)
    hosts = three_hosts(tmp_path)
    command = config.render(1, hosts[1], [(0, hosts[0]), (2, hosts[2])])
    assert command == [
        "store",
        "--id",
        "n2",
        "--cluster",
        "n1=127.0.0.1:8101,n2=127.0.0.2:8103,n3=127.0.0.3:8105",
    ]


def test_members_without_a_member_template_says_what_to_add(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text(MEMBERS_TOML.replace('member = "{name}={address}:{raft_port}"\n', ""))
    with pytest.raises(StoreConfigError, match=r"\{members\} needs \[store\] member"):
        StoreConfig.load(path)


@pytest.mark.parametrize(
    ("program", "expected"),
    [("bin/store", "{folder}/bin/store"), ("/opt/store", "/opt/store"), ("store", "store")],
)
def test_a_relative_program_path_is_taken_from_the_files_folder(
    tmp_path: Path, program: str, expected: str
) -> None:
    path = tmp_path / "store.toml"
    path.write_text(MEMBERS_TOML.replace('["store",', f'["{program}",'))
    hosts = three_hosts(tmp_path)
    command = StoreConfig.load(path).render(0, hosts[0], [(1, hosts[1])])
    assert command[0] == expected.format(folder=tmp_path)


def test_capabilities_left_out_of_the_file_are_asked_of_the_store(tmp_path: Path) -> None:
    """GET /v1/info of node 0, started alone, gives the store's capabilities; the
    harness adds its own (signals)."""
    toml = PYSYNCOBJ_TOML.read_text()
    start = toml.index("capabilities = [")
    path = tmp_path / "store.toml"
    path.write_text(toml[:start] + toml[toml.index("]", start) + 1 :])
    adapter = HttpStoreAdapter({"config": str(path)})
    declared = HttpStoreAdapter({"config": str(PYSYNCOBJ_TOML)})
    assert adapter.capabilities == declared.capabilities
    assert Capability.REQUEST_IDS in adapter.capabilities


def test_a_store_that_cannot_be_asked_for_capabilities_says_both_ways_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.toml"
    path.write_text(
        "[store]\ncommand = ['{python}', '-c', 'print(\"no info here\")']\nports = {api = 7950}\n"
    )
    with pytest.raises(StoreConfigError) as raised:
        HttpStoreAdapter({"config": str(path)})
    message = str(raised.value)
    assert "lists no capabilities" in message and "node n1 exited" in message
    assert "no info here" in message
    assert "Serve GET /v1/info (docs/http-protocol.md) or list capabilities" in message


def test_an_operation_the_store_lacks_is_a_definite_unsupported(tmp_path: Path) -> None:
    """Protocol 1.1: an unknown operation or read level is ``unsupported`` (definite,
    never retried), not ``rejected``; the PySyncObj node answers it so."""
    assert isinstance(error_from_body({"error": "unsupported", "message": "no incr"}), Unsupported)
    assert issubclass(Unsupported, Rejected) and issubclass(Unsupported, DefiniteError)
    config = StoreConfig.load(PYSYNCOBJ_TOML)
    host = HostSpec("n1", "127.0.0.1", tmp_path / "data", tmp_path / "logs")
    host.data_dir.mkdir()
    process = NodeProcess(
        "n1", config.render(0, host, []), host.log_dir / "node.log", python_environment()
    )
    client = HttpStoreClient("n1", host.address, config.port("api", 0))
    process.start()
    try:
        info = wait_for(
            lambda: client.info(timeout=1.0), timeout=30, what="/v1/info", ignore=(ConsensusError,)
        )
        assert info["protocol"] == "1.1"
        with pytest.raises(Unsupported, match="no operation 'incr'"):
            client.operation({"f": "incr", "key": "k"}, timeout=2.0)
        with pytest.raises(Unsupported, match="no read level 'eventual'"):
            client.operation({"f": "get", "key": "k", "level": "eventual"}, timeout=2.0)
    finally:
        process.kill()


def test_a_slow_connect_and_a_lost_reply_answer_within_the_one_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connect slowed by a partition (here 1.5 s) and then no reply: the request is
    indefinite (NoAnswer) by its timeout plus the grace, as the protocol promises, not a
    connect's worth later (the socket's timeout alone counts each step anew)."""
    import http.client
    import socket
    import threading
    import time

    from pytest_consensus.contract import NoAnswer
    from pytest_consensus.contract.http_protocol import TRANSPORT_GRACE

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    accepting.start()
    real_connect = http.client.HTTPConnection.connect

    def slow_connect(self: http.client.HTTPConnection) -> None:
        time.sleep(1.5)
        real_connect(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", slow_connect)
    client = HttpStoreClient("n1", "127.0.0.1", server.getsockname()[1])
    started = time.monotonic()
    try:
        with pytest.raises(NoAnswer, match="did not answer within 2.0s"):
            client.put("k", "v", timeout=2.0 - TRANSPORT_GRACE)
        elapsed = time.monotonic() - started
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert elapsed < 2.9, f"took {elapsed:.2f}s: the deadline was 2.0s, a connect took 1.5s"
