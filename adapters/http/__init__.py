"""The HTTP store adapter: certify a store written in any language.

The store's nodes serve the JSON-over-HTTP protocol of docs/http-protocol.md; a TOML file
says how to start node i (a command template with its address, ports, peers and data
directory), which capabilities the store has and what version it is. Pass it with
``--consensus-adapter=http --consensus-adapter-option=config=store.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_consensus.contract import SNAPSHOT_ENTRIES, Adapter, Capability, Cluster, HostSpec
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import ProcessCluster, ProcessNode

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
    capabilities: frozenset[Capability]
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> StoreConfig:
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
        peer's values under ``peer_`` names (``{peer_name}``, ``{peer_address}``, ...)."""
        mine = self.values(index, host)
        try:
            command = [part.format(**mine) for part in self.command]
            for peer_index, peer in peers:
                theirs = {f"peer_{k}": v for k, v in self.values(peer_index, peer).items()}
                command += [part.format(**mine, **theirs) for part in self.peer_arguments]
        except KeyError as error:
            known = sorted(mine) + sorted(f"peer_{k}" for k in mine)
            raise StoreConfigError(
                f"{self.path}: unknown placeholder {{{error.args[0]}}} in the command; known: "
                f"{', '.join(known)}"
            ) from None
        return command


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
        self.capabilities = self.config.capabilities  # type: ignore[misc]
        # A store that takes {snapshot_entries} in its command snapshots that often.
        uses_interval = any("{snapshot_entries}" in part for part in self.config.command)
        self.snapshot_entries = SNAPSHOT_ENTRIES if uses_interval else None  # type: ignore[misc]

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(self.config.port(name, i) for name in self.config.ports for i in range(9))

    def version(self) -> str:
        return f"{self.config.name} {self.config.version} (via {self.config.path})"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        env = {**python_environment(), **self.config.environment}
        nodes = []
        for index, host in enumerate(hosts):
            host.data_dir.mkdir(parents=True, exist_ok=True)
            peers = [(i, other) for i, other in enumerate(hosts) if i != index]
            argv = [*host.command_prefix, *self.config.render(index, host, peers)]
            process = NodeProcess(host.name, argv, host.log_dir / "node.log", env, host.log_dir)
            nodes.append(ProcessNode(host, process, self.config.port(self.config.api_port, index)))
        return ProcessCluster(nodes).start()
