"""An etcd client through the ``etcd3`` module's gRPC stubs, with every gRPC failure mapped
onto the error taxonomy.

Requests carry the ``hasleader`` metadata, so a member without a leader refuses at once
("etcdserver: no leader": definite) instead of queueing; stale reads do not, as a member
serves its own copy without a leader. A deadline that expires, or a
connection that breaks, after a write was sent is indefinite: etcd may still apply it.
"""

from __future__ import annotations

from typing import Any

import etcd3
import grpc
from etcd3 import etcdrpc

from pytest_consensus.contract import Client, NodeStatus, PointDigest, ReadLevel, Role
from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    NotLeader,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
)
from pytest_consensus.contract.monitoring import read_json

METADATA = (("hasleader", "true"),)
#: raft.status's raftState, as roles.
RAFT_ROLES = {
    "StateLeader": Role.LEADER,
    "StateFollower": Role.FOLLOWER,
    "StateCandidate": Role.CANDIDATE,
    "StatePreCandidate": Role.CANDIDATE,
}
#: Marker keys that record applied request ids (see EtcdClient._write_once); no workload
#: key starts with it.
REQUEST_ID_PREFIX = "\x00pytest-consensus/request-id/"
#: Keys per page of a scan: small enough for gRPC's 4 MiB message cap with short values.
SCAN_PAGE = 20_000
#: gRPC shares subchannels (and their reconnect backoff, up to 2 minutes by default) across
#: channels to the same address: after a member restarts, every new client would wait out
#: the backoff. Each client gets its own pool and a short backoff instead.
GRPC_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
]
NOT_SENT = ("failed to connect", "connection refused", "connect failed", "dns resolution")


def map_grpc_error(error: grpc.RpcError, node: str) -> ConsensusError:
    """A gRPC failure as a definite or indefinite error (when in doubt, indefinite)."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else str(error)) or ""
    message = f"{node}: {code.name if code else 'error'}: {details}"
    lowered = details.lower()
    if "no leader" in lowered:
        return Unavailable(message)
    if "not leader" in lowered or "not capable" in lowered:
        return NotLeader(message)
    if code == grpc.StatusCode.UNAVAILABLE and any(p in lowered for p in NOT_SENT):
        return Unavailable(message)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or "timed out" in lowered:
        return Timeout(message)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectionLost(message)
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    ):
        return Rejected(message)
    return UnknownError(message)


class EtcdClient(Client):
    """One member's client. etcd has no request ids; writes that carry one are guarded by a
    marker key, so a retried write applies once."""

    def __init__(self, node: str, host: str, port: int, names: dict[int, str]) -> None:
        self.node = node
        self.names = names
        self.host, self.port = host, port
        self._client = etcd3.client(host=host, port=port, grpc_options=GRPC_OPTIONS)

    def _call(
        self, stub_method: Any, request: Any, timeout: float, *, need_leader: bool = True
    ) -> Any:
        try:
            return stub_method(request, timeout, metadata=METADATA if need_leader else None)
        except grpc.RpcError as error:
            raise map_grpc_error(error, self.node) from error

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        put = etcdrpc.RequestOp(
            request_put=etcdrpc.PutRequest(key=key.encode(), value=value.encode())
        )
        self._write_once(put, request_id, timeout)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        stale = ReadLevel(level) is ReadLevel.STALE
        request = etcdrpc.RangeRequest(key=key.encode(), serializable=stale)
        # A stale read is the member's own copy, which etcd serves with or without a leader
        # (as etcdctl's --consistency=s does): asking for a leader would refuse exactly the
        # reads a cut-off member's stale-read test is there to see.
        response = self._call(self._client.kvstub.Range, request, timeout, need_leader=not stale)
        return response.kvs[0].value.decode() if response.kvs else None

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        """A serializable range over the prefix, in pages (gRPC caps a message at 4 MiB)."""
        items: dict[str, str] = {}
        start, end = prefix.encode(), _prefix_end(prefix.encode())
        while True:
            request = etcdrpc.RangeRequest(
                key=start, range_end=end, serializable=True, limit=SCAN_PAGE
            )
            response = self._call(self._client.kvstub.Range, request, timeout)
            items.update((kv.key.decode(), kv.value.decode()) for kv in response.kvs)
            if not response.more or not response.kvs:
                return items
            start = response.kvs[-1].key + b"\0"

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        delete = etcdrpc.RequestOp(
            request_delete_range=etcdrpc.DeleteRangeRequest(key=key.encode())
        )
        self._write_once(delete, request_id, timeout)

    def _write_once(self, operation: Any, request_id: str | None, timeout: float) -> None:
        """Apply ``operation`` at most once per request id. etcd has no request ids of its
        own, so a retried put could apply twice; a transaction guarded by a marker key
        (created with the write, in the same Raft entry) makes the retry a no-op."""
        if request_id is None:
            self._call(self._client.kvstub.Txn, etcdrpc.TxnRequest(success=[operation]), timeout)
            return
        marker = (REQUEST_ID_PREFIX + request_id).encode()
        unseen = etcdrpc.Compare(
            key=marker,
            target=etcdrpc.Compare.CREATE,
            result=etcdrpc.Compare.EQUAL,
            create_revision=0,
        )
        remember = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=marker, value=b""))
        request = etcdrpc.TxnRequest(compare=[unseen], success=[operation, remember], failure=[])
        self._call(self._client.kvstub.Txn, request, timeout)

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        compare = etcdrpc.Compare(key=key.encode())
        if expected is None:
            compare.target = etcdrpc.Compare.CREATE
            compare.result = etcdrpc.Compare.EQUAL
            compare.create_revision = 0
        else:
            compare.target = etcdrpc.Compare.VALUE
            compare.result = etcdrpc.Compare.EQUAL
            compare.value = expected.encode()
        put = etcdrpc.RequestOp(
            request_put=etcdrpc.PutRequest(key=key.encode(), value=new.encode())
        )
        request = etcdrpc.TxnRequest(compare=[compare], success=[put], failure=[])
        return bool(self._call(self._client.kvstub.Txn, request, timeout).succeeded)

    def status(self, timeout: float, *, digest: bool = True) -> NodeStatus:
        """Role, term and leader from one snapshot of the member's Raft state (``raft.status``
        in ``/debug/vars``): the gRPC Status call reads the leader and the term at different
        moments (its term is that of the last applied entry), so a new leader can report the
        previous term there; the applied index is Raft's (``applied`` there too). The digest
        is HashKV's hash at the member's latest revision, with that revision: a member that
        skipped a transaction stands one revision behind at the same Raft index, so its
        digest differs there (etcd-io/etcd#13766) rather than its index lagging. Both answer
        without a leader too: that is how a missing leader is seen. HashKV hashes every key,
        seconds on a large keyspace: ``digest=False`` leaves it out."""
        raft = self._raft_status(timeout)
        lead = int(str(raft.get("lead", "0")), 16)
        role = RAFT_ROLES.get(str(raft.get("raftState")), Role.UNKNOWN)
        hashed = None
        if digest:
            hashed = self._call(
                self._client.maintenancestub.HashKV,
                etcdrpc.HashKVRequest(revision=0),
                timeout,
                need_leader=False,
            )
        return NodeStatus(
            node=self.node,
            role=role,
            term=int(raft["term"]),
            leader=self.names.get(lead) if lead else None,
            commit_index=int(raft["commit"]),
            applied_index=int(raft["applied"]),
            digest=None if hashed is None else f"{hashed.hash:08x}@{hashed.header.revision}",
        )

    def revision(self, timeout: float) -> int:
        """The member's current MVCC revision (from Status, which hashes nothing)."""
        response = self._call(
            self._client.maintenancestub.Status,
            etcdrpc.StatusRequest(),
            timeout,
            need_leader=False,
        )
        return int(response.header.revision)

    def hash_at(self, revision: int, timeout: float) -> PointDigest:
        """HashKV at ``revision``: the hash of every key version up to it, which is what
        etcd's own corruption check compares between members. Compaction drops versions
        from it, so the compacted revision is the digest's basis."""
        hashed = self._call(
            self._client.maintenancestub.HashKV,
            etcdrpc.HashKVRequest(revision=revision),
            timeout,
            need_leader=False,
        )
        return PointDigest(
            point=revision,
            digest=f"{hashed.hash:08x}",
            basis=f"compacted to {hashed.compact_revision}",
        )

    def _raft_status(self, timeout: float) -> dict[str, Any]:
        url = f"http://{self.host}:{self.port}/debug/vars"
        try:
            status: dict[str, Any] = read_json(url, self.node, timeout)["raft.status"]
        except KeyError as error:
            raise UnknownError(f"{self.node}: unreadable raft status: {error}") from error
        return status

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EtcdMemberStatus:
    """Status and digests for both node kinds (process, container): each call opens a
    client to the member and closes it after."""

    def client(self) -> EtcdClient:
        raise NotImplementedError

    def status(self, timeout: float) -> NodeStatus:
        with self.client() as client:
            return client.status(timeout)

    def quick_status(self, timeout: float) -> NodeStatus:
        with self.client() as client:
            return client.status(timeout, digest=False)

    def digest_point(self, timeout: float) -> int:
        with self.client() as client:
            return client.revision(timeout)

    def digest_at(self, point: int, timeout: float) -> PointDigest:
        with self.client() as client:
            return client.hash_at(point, timeout)


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range_end)."""
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b"\0"  # every key
    end[-1] += 1
    return bytes(end)


def member_names(client: EtcdClient) -> dict[int, str]:
    """Member id to name, from the member list (names appear once members have joined)."""
    response = client._call(client._client.clusterstub.MemberList, etcdrpc.MemberListRequest(), 5.0)
    names = {member.ID: member.name for member in response.members}
    return names if all(names.values()) else {}
