"""The pytest-consensus adapter for tinystore: the whole of what a store author writes."""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Sequence

from pytest_consensus.contract import (
    Adapter,
    Capability,
    Client,
    Cluster,
    ConnectionLost,
    HostSpec,
    NoAnswer,
    NodeProcess,
    NodeStatus,
    ProcessCluster,
    ProcessNode,
    ReadLevel,
    Role,
    Timeout,
    Unavailable,
)

RAFT, HTTP = 7701, 7702  # node i adds 2 * i


class TinyClient(Client):
    def __init__(self, node: str, address: str, port: int, names: dict[str, str]) -> None:
        self.node, self.address, self.port, self.names = node, address, port, names

    def _request(
        self,
        method: str,
        path: str,
        body: str | None,
        timeout: float,
        request_id: str | None = None,
    ) -> object:
        connection = http.client.HTTPConnection(self.address, self.port, timeout=timeout + 1)
        try:
            connection.connect()
        except OSError as error:
            raise Unavailable(f"{self.node}: {error}") from error  # nothing was sent
        # A retried write carries its first attempt's id; the store applies each id once.
        headers = {} if request_id is None else {"Request-Id": request_id}
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = json.loads(response.read())
        except TimeoutError as error:
            raise NoAnswer(f"{self.node} did not answer") from error
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise ConnectionLost(f"{self.node}: {error!r}") from error  # may have happened
        finally:
            connection.close()
        if response.status == 503:
            raise Unavailable(f"{self.node}: {payload}")  # definite: not applied
        if response.status != 200:
            raise Timeout(f"{self.node}: {payload}")  # indefinite: may apply later
        return payload

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        self._request("PUT", f"/keys/{key}", value, timeout, request_id)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        read = "linear" if ReadLevel(level) is ReadLevel.STRONG else "local"
        value = self._request("GET", f"/keys/{key}?read={read}", None, timeout)
        return None if value is None else str(value)

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        self._request("DELETE", f"/keys/{key}", None, timeout, request_id)

    def status(self, timeout: float) -> NodeStatus:
        state = self._request("GET", "/state", None, timeout)
        assert isinstance(state, dict)
        leader = self.names.get(state["leader"]) if state["leader"] else None
        role = Role.LEADER if leader == self.node else Role.FOLLOWER
        return NodeStatus(
            self.node, role, state["term"], leader, None, state["applied"], state["digest"]
        )


class TinyStoreAdapter(Adapter):
    name = "tinystore"
    capabilities = frozenset(
        {
            Capability.STRONG_READ,
            Capability.STALE_READ,
            Capability.DELETE,
            Capability.KILL,
            Capability.PAUSE,
            Capability.RESTART,
            Capability.LEADER,
            Capability.REQUEST_IDS,
            Capability.DIGEST,
        }
    )
    ports = tuple(range(RAFT, RAFT + 20))

    def version(self) -> str:
        return "tinystore 0.1.0"

    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        raft = {h.name: f"{h.address}:{RAFT + 2 * i}" for i, h in enumerate(hosts)}
        names = {address: name for name, address in raft.items()}

        # The store's own API, through the process helpers' hooks: no subclass needed.
        def client(node: ProcessNode) -> TinyClient:
            return TinyClient(node.name, node.host.address, node.api_port, names)

        def read_status(node: ProcessNode, timeout: float) -> NodeStatus:
            return client(node).status(timeout)

        nodes = []
        for i, host in enumerate(hosts):
            argv = [
                *host.command_prefix,
                sys.executable,
                "-m",
                "tinystore.server",
                "--me",
                raft[host.name],
                "--http",
                f"{host.address}:{HTTP + 2 * i}",
                "--data",
                str(host.data_dir),
            ]
            argv += [
                a
                for peer, address in raft.items()
                if peer != host.name
                for a in ("--peer", address)
            ]
            process = NodeProcess(
                host.name, argv, host.log_dir / "node.log", dict(os.environ), host.log_dir
            )
            nodes.append(ProcessNode(host, process, HTTP + 2 * i, status=read_status))
        return ProcessCluster(nodes, client=client).start()
