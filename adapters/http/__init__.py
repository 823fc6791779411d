"""The HTTP store adapter: certify a store written in any language.

The store's nodes serve the JSON-over-HTTP protocol of docs/http-protocol.md; a TOML file
says how to start node i (a command template with its address, ports, peers and data
directory), which capabilities the store has and what version it is. Pass it with
``--consensus-adapter=http --consensus-adapter-option=config=store.toml``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_consensus.contract import SNAPSHOT_ENTRIES, Adapter, Capability, Cluster, HostSpec
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.container_process import node_process as process_on_host
from pytest_consensus.contract.errors import (
    ConsensusError,
    HarnessError,
    NodeStartError,
)
from pytest_consensus.contract.http_protocol import HttpStoreClient
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import STARTUP_TIMEOUT, ProcessCluster, ProcessNode
from pytest_consensus.contract.remote_process import make_node_folder
from pytest_consensus.contract.waiting import WaitTimeout, wait_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PLACEHOLDERS = (
    "name",
    "index",
    "address",
    "data_dir",
    "python",
    "config_dir",
    "snapshot_entries",
)


class StoreConfigError(HarnessError):
    """A store TOML file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StoreConfig:
    """What a store's TOML file says (see docs/adapters/http.md)."""

    path: Path
    name: str
    version: str
    command: list[str]
    peer_arguments: list[str]
    ports: dict[str, int]
    port_stride: int
    api_port: str
    capabilities: frozenset[Capability] | None
    environment: dict[str, str] = field(default_factory=dict)
    member: str | None = None
    member_separator: str = ","

    @classmethod
    def load(cls, path: Path) -> StoreConfig:
        # Nodes run in their log folders: a path relative to where pytest started would
        # point nowhere there, so the file's own path (and {config_dir}) is made absolute.
        path = Path(path).absolute()
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise StoreConfigError(f"store config {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise StoreConfigError(f"store config {path}: {error}") from error
        store = raw.get("store")
        if not isinstance(store, dict):
            raise StoreConfigError(f"{path}: needs a [store] table")

        def need(key: str, kind: type) -> Any:
            value = store.get(key)
            if not isinstance(value, kind):
                raise StoreConfigError(
                    f"{path}: [store] {key} must be a {kind.__name__}, got {value!r}"
                )
            return value

        ports = need("ports", dict)
        api_port = store.get("api_port", "api")
        if api_port not in ports:
            raise StoreConfigError(
                f"{path}: [store] api_port {api_port!r} is not in ports {sorted(ports)}"
            )
        capabilities = None  # none listed: asked of the store (GET /v1/info) when needed
        if "capabilities" in store:
            try:
                capabilities = frozenset(Capability.parse(c) for c in need("capabilities", list))
            except ValueError as error:
                raise StoreConfigError(f"{path}: [store] capabilities: {error}") from None
        config = cls(
            path=Path(path),
            name=str(store.get("name", Path(path).stem)),
            version=str(store.get("version", "unknown")),
            command=[str(part) for part in need("command", list)],
            peer_arguments=[str(part) for part in store.get("peer_arguments", [])],
            ports={str(k): int(v) for k, v in ports.items()},
            port_stride=int(store.get("port_stride", len(ports))),
            api_port=str(api_port),
            capabilities=capabilities,
            environment={str(k): str(v) for k, v in store.get("environment", {}).items()},
            member=None if store.get("member") is None else str(store["member"]),
            member_separator=str(store.get("member_separator", ",")),
        )
        config.render(
            0,
            HostSpec("n1", "127.0.0.1", Path("d"), Path("l")),
            [(1, HostSpec("n2", "127.0.0.2", Path("d"), Path("l")))],
        )
        return config

    def port(self, name: str, index: int) -> int:
        return self.ports[name] + self.port_stride * index

    def values(self, index: int, host: HostSpec) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": host.name,
            "index": index,
            "address": host.address,
            "data_dir": str(host.data_dir),
            "python": sys.executable,
            "config_dir": str(self.path.parent),
            "snapshot_entries": SNAPSHOT_ENTRIES,
        }
        for port_name in self.ports:
            values[f"{port_name}_port"] = self.port(port_name, index)
        return values

    def render(
        self, index: int, host: HostSpec, peers: Sequence[tuple[int, HostSpec]]
    ) -> list[str]:
        """Node ``index``'s command line; ``peer_arguments`` repeat once per peer, with the
        peer's values under ``peer_`` names (``{peer_name}``, ``{peer_address}``, ...);
        ``{members}`` is ``member`` rendered for every node, this one included, in index
        order, joined by ``member_separator``. A relative program path (``bin/store``) is
        taken from this file's folder."""
        mine = self.values(index, host)
        uses_members = any("{members}" in part for part in self.command + self.peer_arguments)
        if uses_members and self.member is None:
            raise StoreConfigError(
                f"{self.path}: {{members}} needs [store] member, the template of one member, "
                'for example member = "{name}={address}:{raft_port}"'
            )
        try:
            if self.member is not None:
                everyone = sorted([(index, host), *peers], key=lambda item: item[0])
                mine["members"] = self.member_separator.join(
                    self.member.format(**self.values(i, member)) for i, member in everyone
                )
            command = [part.format(**mine) for part in self.command]
            for peer_index, peer in peers:
                theirs = {f"peer_{k}": v for k, v in self.values(peer_index, peer).items()}
                command += [part.format(**mine, **theirs) for part in self.peer_arguments]
        except KeyError as error:
            known = sorted(mine) + sorted(f"peer_{k}" for k in self.values(index, host))
            raise StoreConfigError(
                f"{self.path}: unknown placeholder {{{error.args[0]}}} in the command or "
                f"member; known: {', '.join(known)}"
            ) from None
        program = Path(command[0])
        if not program.is_absolute() and len(program.parts) > 1:
            command[0] = str(self.path.parent / program)
        return command


#: Capabilities the harness has for any store whose nodes are local processes: signals.
PROCESS_CAPABILITIES = frozenset({Capability.KILL, Capability.PAUSE, Capability.RESTART})
#: What GET /v1/info may list: the store's own capabilities.
STORE_CAPABILITIES = (
    frozenset(Capability)
    - PROCESS_CAPABILITIES
    - {
        Capability.FSM,
        Capability.MEMBERSHIP,
    }
)


def node_process(config: StoreConfig, index: int, hosts: Sequence[HostSpec]) -> NodeProcess:
    """Node ``index`` of ``hosts`` as the config's command runs it, in the host's prefix
    (a namespace), with the config's environment: the same for the capability probe
    and for a cluster."""
    host = hosts[index]
    peers = [(i, other) for i, other in enumerate(hosts) if i != index]
    argv = [*host.command_prefix, *config.render(index, host, peers)]
    env = {**python_environment(), **config.environment}
    return process_on_host(host, argv, host.log_dir / "node.log", env, host.log_dir)


def probe_capabilities(
    config: StoreConfig, timeout: float = STARTUP_TIMEOUT
) -> frozenset[Capability]:
    """For a file without ``capabilities``: start node 0 alone on 127.0.0.1 in a scratch
    folder, read ``GET /v1/info``, and stop it. What the store lists, plus kill, pause and
    restart (the harness's signals). Any failure is a StoreConfigError that says both
    ways out: serve /v1/info, or list the capabilities in the file."""
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-probe-") as scratch:
        host = HostSpec("n1", "127.0.0.1", Path(scratch) / "data", Path(scratch) / "logs")
        host.data_dir.mkdir()
        process = node_process(config, 0, [host])
        client = HttpStoreClient("n1", host.address, config.port(config.api_port, 0))

        def info() -> dict[str, Any] | None:
            if not process.is_running():
                raise StoreConfigError(f"node n1 exited; its log ends:\n{process.log_tail(20)}")
            return client.info(timeout=1.0)

        try:
            process.start()
            answer = wait_for(info, timeout=timeout, what="GET /v1/info", ignore=(ConsensusError,))
        except (StoreConfigError, WaitTimeout, NodeStartError) as error:
            raise StoreConfigError(
                f"{config.path}: [store] lists no capabilities, and the store could not be "
                f"asked for them (node n1 started alone on 127.0.0.1 for GET /v1/info): "
                f"{error}. Serve GET /v1/info (docs/http-protocol.md) or list capabilities "
                "in the file."
            ) from None
        finally:
            process.kill()
    listed = answer.get("capabilities")
    if not isinstance(listed, list):
        raise StoreConfigError(
            f"{config.path}: GET /v1/info answered {answer!r}: it needs a list 'capabilities'"
        )
    try:
        found = frozenset(Capability.parse(str(name)) for name in listed)
    except ValueError as error:
        raise StoreConfigError(f"{config.path}: GET /v1/info: {error}") from None
    if not found <= STORE_CAPABILITIES:
        extra = sorted(c.value for c in found - STORE_CAPABILITIES)
        raise StoreConfigError(
            f"{config.path}: GET /v1/info lists {extra}, which are the harness's, not the store's"
        )
    return found | PROCESS_CAPABILITIES


class HttpStoreAdapter(Adapter):
    """Runs a store's nodes from a TOML command template and drives them over HTTP."""

    name = "http"

    def __init__(self, options: dict[str, str] | None = None) -> None:
        super().__init__(options)
        path = self.options.get("config")
        if not path:
            raise StoreConfigError(
                "the http adapter needs a store config: "
                "--consensus-adapter-option=config=path/to/store.toml (see docs/adapters/http.md)"
            )
        self.config = StoreConfig.load(Path(path))
        declared = self.config.capabilities
        self.capabilities = (  # type: ignore[misc]
            declared if declared is not None else probe_capabilities(self.config)
        )
        config = self.config
        self.ports = tuple(  # type: ignore[misc]
            config.port(name, i) for name in config.ports for i in range(9)
        )
        # A store that takes {snapshot_entries} in its command snapshots that often.
        uses_interval = any("{snapshot_entries}" in part for part in self.config.command)
        self.snapshot_entries = SNAPSHOT_ENTRIES if uses_interval else None  # type: ignore[misc]

    def version(self) -> str:
        return f"{self.config.name} {self.config.version} (via {self.config.path})"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        nodes = []
        for index, host in enumerate(hosts):
            make_node_folder(host, host.data_dir)
            process = node_process(self.config, index, hosts)
            nodes.append(ProcessNode(host, process, self.config.port(self.config.api_port, index)))
        return ProcessCluster(nodes).start()
