"""A ZooKeeper server process and what it says about itself.

Statuses come from the server's AdminServer (``monitor`` for its Zab phase, ``srvr`` for
the last zxid it processed, ``leader`` for whom it follows) and its ``currentEpoch`` file
(the epoch it acknowledged last, Zab's term). Only a server in Zab's broadcast phase is a
leader or a follower; one in discovery or synchronization says ``unknown``, and one
electing says ``candidate``: a deposed leader that resumes still says "leading -
broadcast" until it notices, which is what the read tests look at.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from typing import Any

from pytest_consensus.adapters.zookeeper.client import ZooKeeperClient
from pytest_consensus.contract import HostSpec, NodeStatus, PointDigest, Role
from pytest_consensus.contract.errors import Unavailable, UnknownError
from pytest_consensus.contract.monitoring import read_json
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.contract.process_cluster import ProcessNode

CLIENT_PORT = 2181
QUORUM_PORT = 2888
ELECTION_PORT = 3888
ADMIN_PORT = 8080
#: Zab's phases (``peer_state``) as roles; anything else (discovery, synchronization) is
#: a server between roles.
PHASES = {
    "leading - broadcast": Role.LEADER,
    "following - broadcast": Role.FOLLOWER,
    "observing - broadcast": Role.FOLLOWER,
    "looking": Role.CANDIDATE,
}
#: What the AdminServer answers while the server serves no requests.
NOT_SERVING = "not currently serving requests"
#: How many times a digest read retries while the server's last zxid moves under it.
DIGEST_READS = 3


class ZooKeeperNode(ProcessNode):
    """One server; ``numbers`` is every server's ``myid`` by node name."""

    def __init__(self, host: HostSpec, process: NodeProcess, numbers: dict[str, int]) -> None:
        super().__init__(host, process, CLIENT_PORT)
        self.names = {n: name for name, n in numbers.items()}
        self._reader: ZooKeeperClient | None = None
        self._reader_lock = threading.Lock()
        self._digested: tuple[tuple[int | None, int] | None, str] = (None, "")

    @property
    def client_address(self) -> str:
        return f"{self.host.address}:{CLIENT_PORT}"

    def _url(self, command: str) -> str:
        return f"http://{self.host.address}:{ADMIN_PORT}/commands/{command}"

    def _admin(self, command: str, timeout: float) -> dict[str, Any]:
        document = read_json(self._url(command), self.name, timeout)
        if document.get("error"):
            raise Unavailable(f"{self.name}: AdminServer {command}: {document['error']}")
        return document

    def _epoch(self) -> int | None:
        """The epoch this server acknowledged last (Zab's term), from its data directory;
        None before it has one."""
        try:
            return int((self.host.data_dir / "version-2" / "currentEpoch").read_text().strip())
        except (OSError, ValueError):
            return None

    def quick_status(self, timeout: float) -> NodeStatus:
        """Role, epoch, leader and last processed zxid. A server that serves no requests
        (electing, or between a new leader's discovery and broadcast) answers with its
        epoch alone: its role is unknown, and it has no state to compare."""
        server = read_json(self._url("srvr"), self.name, timeout)
        if server.get("error"):
            if NOT_SERVING in str(server["error"]):
                return NodeStatus(node=self.name, term=self._epoch())
            raise Unavailable(f"{self.name}: AdminServer srvr: {server['error']}")
        monitor = self._admin("monitor", timeout)
        try:
            role = PHASES.get(str(monitor["peer_state"]), Role.UNKNOWN)
            applied = int(server["server_stats"]["last_processed_zxid"])
        except (KeyError, TypeError, ValueError) as error:
            raise UnknownError(f"{self.name}: unreadable AdminServer status: {error!r}") from None
        leader = None
        if role is Role.LEADER:
            leader = self.name
        elif role is Role.FOLLOWER:
            leading = self._admin("leader", timeout).get("leader_id")
            leader = self.names.get(int(leading)) if isinstance(leading, int) else None
        return NodeStatus(
            node=self.name, role=role, term=self._epoch(), leader=leader, applied_index=applied
        )

    def status(self, timeout: float) -> NodeStatus:
        """The quick status and a digest of the key space as this server holds it, read
        between two equal last-processed zxids (so it is the state at that zxid). The
        digest of a zxid is read once per process: the state at a zxid does not change,
        and the comparisons poll every member several times a second (a read of the
        whole key space takes seconds on tens of thousands of keys)."""
        for _ in range(DIGEST_READS):
            before = self.quick_status(timeout)
            if before.applied_index is None:  # serving no requests: nothing to read
                return before
            point = (self.process.pid, before.applied_index)
            if self._digested[0] == point:
                return replace(before, digest=self._digested[1])
            digest = self._read_digest(timeout)
            after = self.quick_status(timeout)
            if after.applied_index == before.applied_index:
                self._digested = (point, digest)
                break
        return replace(after, digest=digest)

    def _read_digest(self, timeout: float) -> str:
        with self._reader_lock:
            if self._reader is None:
                self._reader = ZooKeeperClient(f"{self.name} (status)", self.client_address)
            reader = self._reader
        items = reader.scan("", timeout=max(timeout, 30.0))
        hashed = hashlib.sha256()
        for key in sorted(items):
            hashed.update(f"{len(key)}:{key}={len(items[key])}:{items[key]};".encode())
        return f"{hashed.hexdigest()[:16]} ({len(items)} keys)"

    def digest_point(self, timeout: float) -> int:
        """The latest zxid this server recorded a tree digest at (ZooKeeper records one
        every 128 transactions, at the same zxids on every server)."""
        digests = self._digests(timeout)
        if not digests:
            raise Unavailable(f"{self.name}: no tree digest recorded yet")
        return max(digests)

    def digest_at(self, point: int, timeout: float) -> PointDigest:
        digests = self._digests(timeout)
        if point not in digests:
            raise Unavailable(
                f"{self.name}: no tree digest recorded at zxid {point:#x} (it keeps the "
                "last 1024, and a restart or a snapshot from the leader starts a new list)"
            )
        return PointDigest(point, str(digests[point]))

    def _digests(self, timeout: float) -> dict[int, int]:
        try:
            entries = self._admin("hash", timeout).get("digests") or []
            return {int(entry["zxid"]): int(entry["digest"]) for entry in entries}
        except (KeyError, TypeError, ValueError) as error:
            raise UnknownError(f"{self.name}: unreadable tree digests: {error!r}") from None

    def close_reader(self) -> None:
        """Close the client the digests read through (the cluster closes it)."""
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()  # never raises: a gone server leaves nothing to release
