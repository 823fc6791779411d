"""Client side of the JSON-over-HTTP store protocol (docs/http-protocol.md).

Any store that serves the protocol can be driven by this client; the PySyncObj nodes do.
Every failure is mapped onto the error taxonomy, and anything unrecognised is indefinite.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    NoAnswer,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
    Unsupported,
)
from pytest_consensus.contract.interface import Client, NodeStatus, ReadLevel, Role

#: Extra seconds the client waits beyond the operation's own timeout, so the server's
#: answer "timeout" (which it sends at the deadline) arrives before the socket gives up.
TRANSPORT_GRACE = 1.0


def error_from_body(body: dict[str, Any]) -> ConsensusError:
    """Turn a protocol error body into the taxonomy; unknown kinds are indefinite."""
    kind = body.get("error")
    message = str(body.get("message", kind))
    if kind == "not-leader":
        return NotLeader(message, leader_hint=body.get("leader"))
    if kind == "unavailable":
        return Unavailable(message)
    if kind == "rejected":
        return Rejected(message)
    if kind == "unsupported":
        return Unsupported(message)
    if kind == "timeout":
        return Timeout(message)
    return UnknownError(f"{kind}: {message}")


class HttpStoreClient(Client):
    """A client bound to one node's protocol address; not shared between threads."""

    def __init__(self, node: str, host: str, port: int) -> None:
        self.node = node
        self.host = host
        self.port = port

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> dict[str, Any]:
        # A fresh connection per request: a reused keep-alive socket that the server
        # closed would fail *after* sending and turn a clean refusal into "unknown".
        # One deadline for the whole request: a socket's timeout counts each connect and
        # each receive anew, so a connect slowed by a partition (SYN retransmits) and a
        # reply then lost took up to twice the promised time.
        waited = timeout + TRANSPORT_GRACE
        deadline = time.monotonic() + waited
        connection = http.client.HTTPConnection(self.host, self.port, timeout=waited)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Connection": "close"}
        try:
            try:
                connection.connect()
            except OSError as error:
                raise Unavailable(f"cannot connect to {self.node}: {error}") from error
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # connected too late to ask anything: nothing was sent
                raise Unavailable(f"connecting to {self.node} took the whole {waited}s")
            assert connection.sock is not None
            connection.sock.settimeout(remaining)
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError as error:
            raise NoAnswer(f"{self.node} did not answer within {waited}s") from error
        except (OSError, http.client.HTTPException) as error:
            raise ConnectionLost(f"connection to {self.node} lost: {error!r}") from error
        finally:
            connection.close()
        try:
            decoded: dict[str, Any] = json.loads(raw)
        except ValueError as error:
            raise UnknownError(
                f"{self.node} sent a body that is not JSON: {raw[:200]!r}"
            ) from error
        if response.status != 200:
            raise error_from_body(decoded)
        return decoded

    def operation(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self._request("POST", "/v1/op", {**command, "timeout": timeout}, timeout)

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        command = {"f": "put", "key": key, "value": value, "request_id": request_id}
        self.operation(command, timeout)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        result = self.operation({"f": "get", "key": key, "level": ReadLevel(level).value}, timeout)
        value = result.get("value")
        return None if value is None else str(value)

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        result = self.operation({"f": "scan", "prefix": prefix, "level": "stale"}, timeout)
        items = result.get("items")
        if not isinstance(items, dict):
            raise UnknownError(f"{self.node}: scan answered without an items object: {result}")
        return {str(key): str(value) for key, value in items.items()}

    def append(
        self, key: str, value: str, *, timeout: float, request_id: str | None = None
    ) -> None:
        command = {"f": "append", "key": key, "value": value, "request_id": request_id}
        self.operation(command, timeout)

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        self.operation({"f": "delete", "key": key, "request_id": request_id}, timeout)

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        command = {
            "f": "cas",
            "key": key,
            "expected": expected,
            "value": new,
            "request_id": request_id,
        }
        return bool(self.operation(command, timeout).get("swapped"))

    def info(self, timeout: float) -> dict[str, Any]:
        """``GET /v1/info`` (protocol 1.1): the protocol version and the capabilities the
        store serves. A node that does not serve it answers 404: an indefinite error here
        (the caller asks again or falls back to a declaration)."""
        return self._request("GET", "/v1/info", None, timeout)

    def status(self, timeout: float) -> NodeStatus:
        body = self._request("GET", "/v1/status", None, timeout)
        try:
            role = Role(body.get("role", "unknown"))
        except ValueError:
            role = Role.UNKNOWN
        return NodeStatus(
            node=self.node,
            role=role,
            term=body.get("term"),
            leader=body.get("leader"),
            commit_index=body.get("commit_index"),
            applied_index=body.get("applied_index"),
            digest=body.get("digest"),
            led_terms=None if body.get("led_terms") is None else tuple(body["led_terms"]),
            restores=body.get("restores"),
        )
