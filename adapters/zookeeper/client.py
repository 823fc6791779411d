"""A ZooKeeper key-value client bound to one server, behind the contract's calls.

Keys are znodes under ``/consensus/kv``; a write with a request id creates the marker
``/consensus/rids/<id>`` in the same transaction (``multi``), so a retry of a write that
took effect fails on the marker and is answered as the success it was. ``strong`` reads are
verified through the log by default (the value read, then a transaction that commits only
if the key still has the version read); ``strong_read=sync`` uses ZooKeeper's own
``sync`` + read instead. Choices and evidence: docs/adapters/zookeeper.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    RolledBackError,
    SessionExpiredError,
    ZookeeperError,
)
from kazoo.handlers.threading import KazooTimeoutError

from pytest_consensus.adapters.zookeeper.multi_read import send_multi_read
from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
)

Result = TypeVar("Result")

ROOT = "/consensus"
KEYS = f"{ROOT}/kv"
REQUEST_IDS = f"{ROOT}/rids"
#: Keys ZooKeeper takes as znode names as they are; any other key is stored base64-encoded
#: behind ENCODED_PREFIX (which such keys therefore never start with).
VALID_KEY = re.compile(r"[-_=a-zA-Z0-9][-_=.a-zA-Z0-9]*")
ENCODED_PREFIX = "~"
#: How many times a read-modify-write (cas, append, a verified read) re-reads after
#: losing a race.
RMW_ATTEMPTS = 50
#: The session timeout the client asks for (the servers allow up to 30 s): long enough that a
#: killed server's restart finds the session alive, so calls after it are not refused.
SESSION_TIMEOUT = 10.0
#: How long a call waits for the session to (re)connect before it is refused unsent.
CONNECT_WAIT = 1.0
#: How long closing a client may take (a paused server never answers the close).
CLOSE_TIMEOUT = 5.0
#: Keys a scan reads in one multiRead (adapters/zookeeper/multi_read.py), and how many it
#: keeps in flight at once: a batch's answer stays far below ZooKeeper's 1 MB packet limit
#: unless its values average over 1 KB (appends grow them; 200 keys of 4 KB is 0.8 MB).
SCAN_BATCH = 200
SCAN_WINDOW = 1000


def znode_name(key: str) -> str:
    """The znode name for a workload key: itself where ZooKeeper allows it, else encoded."""
    if VALID_KEY.fullmatch(key) and key not in (".", ".."):
        return key
    return ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def workload_key(name: str) -> str:
    """The workload key a znode name stands for (the inverse of :func:`znode_name`)."""
    if not name.startswith(ENCODED_PREFIX):
        return name
    encoded = name[len(ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def request_id_path(request_id: str) -> str:
    """The marker of a request id; ids that are no valid znode name are hashed."""
    if VALID_KEY.fullmatch(request_id) and len(request_id) <= 200:
        return f"{REQUEST_IDS}/{request_id}"
    return f"{REQUEST_IDS}/h{hashlib.sha256(request_id.encode()).hexdigest()}"


def map_kazoo_error(error: BaseException, node: str, *, sent: bool) -> ConsensusError:
    """A kazoo failure as a definite or indefinite error (when in doubt, indefinite).
    ``sent`` says whether the request may have reached the server."""
    message = f"{node}: {type(error).__name__}: {error}"
    if isinstance(error, ConsensusError):
        return error
    if not sent:
        return Unavailable(message)
    if isinstance(error, (KazooTimeoutError, OperationTimeoutError, TimeoutError)):
        return Timeout(message)
    if isinstance(error, (ConnectionLoss, SessionExpiredError)):
        # The request was on the wire when the connection (or the session) went.
        return ConnectionLost(message)
    if isinstance(error, ZookeeperError):
        # An error reply: the server answered, and a failed request changes nothing.
        return Rejected(message)
    return UnknownError(message)


#: The failures of a conditional write or check that lost a race with another writer: the
#: key's version moved, or it was created or deleted meanwhile. The caller reads again.
LOST_RACE = (BadVersionError, NoNodeError, NodeExistsError)


class Outcome:
    """What a ``multi`` answered: committed, or the first operation that failed (kazoo marks
    the others rolled back)."""

    def __init__(self, results: list[Any]) -> None:
        self.failed_at = next(
            (
                index
                for index, result in enumerate(results)
                if isinstance(result, BaseException) and not isinstance(result, RolledBackError)
            ),
            -1,
        )
        self.failure: BaseException | None = None if self.failed_at < 0 else results[self.failed_at]

    @property
    def committed(self) -> bool:
        return self.failure is None

    def seen_before(self, request_id: str | None) -> bool:
        """The request id's marker (the first operation) existed: an earlier attempt with
        this request id committed."""
        return (
            bool(request_id) and self.failed_at == 0 and isinstance(self.failure, NodeExistsError)
        )

    def raise_unless(self, *expected: type[BaseException]) -> None:
        """Raise the failure unless it is one the caller handles."""
        if self.failure is not None and not isinstance(self.failure, expected):
            raise self.failure


class ZooKeeperClient(Client):
    """One server's client of the key space; its session never moves to another server.

    Each call is one attempt: a call made while the session is not connected is refused
    without being sent (``Unavailable``); kazoo queues nothing on our behalf."""

    def __init__(self, node: str, address: str, *, strong_read: str = "verified") -> None:
        self.node = node
        self.address = address
        self.strong_read = strong_read
        self._lock = threading.Lock()
        self._kazoo: KazooClient | None = None
        self._live: Any = None
        #: Keys this client saw exist: a put overwrites them, and creates any other.
        self._known: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------

    def _connected(self, timeout: float) -> KazooClient:
        """A connected session to this client's server only, or ``Unavailable``.

        The session is started once; kazoo then reconnects in the background for as long
        as the client lives (to this server alone), and a call waits at most
        ``CONNECT_WAIT`` for it. Never ``start`` a kazoo client twice: a second start while
        the first still reconnects waits for that loop forever."""
        with self._lock:
            if self._kazoo is None:
                self._kazoo = KazooClient(
                    hosts=self.address,
                    timeout=SESSION_TIMEOUT,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
                    command_retry=None,
                )
                self._live = self._kazoo.start_async()
            kazoo, live = self._kazoo, self._live
        if not kazoo.connected:
            live.wait(max(0.05, min(timeout, CONNECT_WAIT)))
        if not kazoo.connected:
            raise Unavailable(f"{self.node}: no ZooKeeper session (server down or cut off)")
        return kazoo

    def _run(self, call: Callable[[KazooClient, float], Result], timeout: float) -> Result:
        """Run ``call(kazoo, deadline)`` with the failures mapped onto the taxonomy."""
        deadline = time.monotonic() + timeout
        kazoo = self._connected(timeout)
        try:
            return call(kazoo, deadline)
        except ConsensusError:
            raise
        except Exception as error:  # noqa: BLE001 - mapped, never hidden
            raise map_kazoo_error(error, self.node, sent=True) from error

    @staticmethod
    def _wait(async_result: Any, deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KazooTimeoutError("the call's time ran out")
        return async_result.get(timeout=remaining)

    def _read(self, kazoo: KazooClient, key: str, deadline: float) -> tuple[str | None, int]:
        """The key's value and version at this server (-1 when absent)."""
        try:
            data, stat = self._wait(kazoo.get_async(self._path(key)), deadline)
        except NoNodeError:
            self._known.discard(key)
            return None, -1
        self._known.add(key)
        return data.decode(), int(stat.version)

    def _commit(self, kazoo: KazooClient, deadline: float, build: Callable[[Any], None]) -> Outcome:
        transaction = kazoo.transaction()
        build(transaction)
        return Outcome(self._wait(transaction.commit_async(), deadline))

    @staticmethod
    def _path(key: str) -> str:
        return f"{KEYS}/{znode_name(key)}"

    def _write(
        self,
        kazoo: KazooClient,
        deadline: float,
        key: str,
        value: str,
        version: int | None,
        request_id: str | None,
    ) -> Outcome:
        """One transaction: the request id's marker (if any), then the key set to ``value``
        on condition of ``version``: -1 creates it (it must be absent), None overwrites
        whatever version it has, any other number must be its version now."""
        path = self._path(key)

        def build(transaction: Any) -> None:
            if request_id:
                transaction.create(request_id_path(request_id), b"")
            if version == -1:
                transaction.create(path, value.encode())
            else:
                transaction.set_data(
                    path, value.encode(), version=-1 if version is None else version
                )

        return self._commit(kazoo, deadline, build)

    # -- operations ----------------------------------------------------------------------

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        """One transaction when the guess is right: a key this client saw exist is
        overwritten, any other is created (ZooKeeper has no upsert); a wrong guess costs a
        second round trip. Guessing "absent" for new keys keeps a first write of a key to
        one round trip, which is what a lost reply's retry is judged on."""

        def call(kazoo: KazooClient, deadline: float) -> None:
            create = key not in self._known
            for _ in range(2 * RMW_ATTEMPTS):
                version = -1 if create else None
                outcome = self._write(kazoo, deadline, key, value, version, request_id)
                if outcome.committed or outcome.seen_before(request_id):
                    self._known.add(key)
                    return
                outcome.raise_unless(NoNodeError, NodeExistsError)
                create = not create
            raise Unavailable(f"{self.node}: {key!r} created and deleted under every put")

        self._run(call, timeout)

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        def call(kazoo: KazooClient, deadline: float) -> None:
            path = self._path(key)

            def build(transaction: Any) -> None:
                if request_id:
                    transaction.create(request_id_path(request_id), b"")
                transaction.delete(path, version=-1)

            outcome = self._commit(kazoo, deadline, build)
            self._known.discard(key)
            if outcome.committed or outcome.seen_before(request_id):
                return
            outcome.raise_unless(NoNodeError)
            if request_id:  # absent already: record the id alone, so a retry is a no-op too
                marker = self._commit(
                    kazoo, deadline, lambda t: t.create(request_id_path(request_id), b"")
                )
                if not marker.seen_before(request_id):
                    marker.raise_unless()

        self._run(call, timeout)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        if ReadLevel(level) is ReadLevel.STALE:
            return self._run(lambda kazoo, deadline: self._read(kazoo, key, deadline)[0], timeout)
        if self.strong_read == "sync":

            def synced(kazoo: KazooClient, deadline: float) -> str | None:
                self._wait(kazoo.sync_async(self._path(key)), deadline)
                return self._read(kazoo, key, deadline)[0]

            return self._run(synced, timeout)
        return self._run(lambda kazoo, deadline: self._verified(kazoo, key, deadline), timeout)

    def _verified(self, kazoo: KazooClient, key: str, deadline: float) -> str | None:
        """The value read here, confirmed by a transaction that commits only if the key
        still has the version read (a present key: ``check``; an absent one: create and
        delete it in one transaction). A committed transaction went through the leader and
        a quorum, so the value read was the key's value at that point of the log."""
        for _ in range(RMW_ATTEMPTS):
            value, version = self._read(kazoo, key, deadline)
            outcome = self._confirm(kazoo, deadline, key, version)
            if outcome.committed:
                return value
            outcome.raise_unless(*LOST_RACE)
        raise Unavailable(f"{self.node}: {key!r} changed under {RMW_ATTEMPTS} verified reads")

    def _confirm(self, kazoo: KazooClient, deadline: float, key: str, version: int) -> Outcome:
        path = self._path(key)

        def build(transaction: Any) -> None:
            if version == -1:
                transaction.create(path, b"")
                transaction.delete(path)
            else:
                transaction.check(path, version)

        return self._commit(kazoo, deadline, build)

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        """Every key under ``prefix`` with its value as this server holds it (like a
        ``stale`` get): the children of the key space, then their values, ``SCAN_BATCH``
        to a multiRead with up to ``SCAN_WINDOW`` keys in flight; a key deleted between
        the two is left out."""

        def call(kazoo: KazooClient, deadline: float) -> dict[str, str]:
            names = self._wait(kazoo.get_children_async(KEYS), deadline)
            wanted = [name for name in names if workload_key(name).startswith(prefix)]
            items: dict[str, str] = {}
            for start in range(0, len(wanted), SCAN_WINDOW):
                window = wanted[start : start + SCAN_WINDOW]
                batches = [window[at : at + SCAN_BATCH] for at in range(0, len(window), SCAN_BATCH)]
                pending = [
                    (batch, send_multi_read(kazoo, [f"{KEYS}/{name}" for name in batch]))
                    for batch in batches
                ]
                for batch, result in pending:
                    for name, data in zip(batch, self._wait(result, deadline), strict=True):
                        if isinstance(data, NoNodeError):
                            continue
                        if isinstance(data, Exception):
                            raise data
                        items[workload_key(name)] = (data or b"").decode()
            return items

        return self._run(call, timeout)

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        def change(current: str | None) -> str | None:
            return new if current == expected else None

        return self._run(
            lambda kazoo, deadline: self._read_modify_write(
                kazoo, deadline, key, change, request_id
            ),
            timeout,
        )

    def append(
        self, key: str, value: str, *, timeout: float, request_id: str | None = None
    ) -> None:
        def change(current: str | None) -> str:
            return (current or "") + value

        self._run(
            lambda kazoo, deadline: self._read_modify_write(
                kazoo, deadline, key, change, request_id
            ),
            timeout,
        )

    def _read_modify_write(
        self,
        kazoo: KazooClient,
        deadline: float,
        key: str,
        change: Callable[[str | None], str | None],
        request_id: str | None,
    ) -> bool:
        """Read the key, compute the new value, and write it on condition that the key
        still has the version read; a lost race re-reads. ``change`` returning None means
        "no write" (a cas whose expected value does not match): False once the value read
        is confirmed current (the read here may lag the leader), unless an earlier attempt
        with this request id committed."""
        for _ in range(RMW_ATTEMPTS):
            current, version = self._read(kazoo, key, deadline)
            updated = change(current)
            if updated is None:
                if request_id and self._marker_exists(kazoo, deadline, request_id):
                    return True
                confirmed = self._confirm(kazoo, deadline, key, version)
                if confirmed.committed:
                    return False
                confirmed.raise_unless(*LOST_RACE)
                continue
            outcome = self._write(kazoo, deadline, key, updated, version, request_id)
            if outcome.committed or outcome.seen_before(request_id):
                return True
            outcome.raise_unless(*LOST_RACE)
        raise Unavailable(f"{self.node}: {key!r} changed under {RMW_ATTEMPTS} attempts")

    def _marker_exists(self, kazoo: KazooClient, deadline: float, request_id: str) -> bool:
        """Whether the request id's marker is in the log: a ``check`` of it in a transaction
        commits if it exists (read through the leader, not this server's copy)."""
        outcome = self._commit(kazoo, deadline, lambda t: t.check(request_id_path(request_id), 0))
        outcome.raise_unless(NoNodeError)
        return outcome.committed

    def close(self) -> None:
        """Stop the session's background loop, waiting at most ``CLOSE_TIMEOUT``: kazoo's
        stop waits for the server's answer to the close, which a paused server never
        sends (its threads are daemons and die with the process)."""
        with self._lock:
            kazoo, self._kazoo = self._kazoo, None
        if kazoo is None:
            return

        def stop() -> None:
            try:
                kazoo.stop()
                kazoo.close()
            except Exception:  # noqa: BLE001, S110 - the server is gone; nothing to release
                pass

        stopping = threading.Thread(target=stop, name=f"close {self.node}", daemon=True)
        stopping.start()
        stopping.join(CLOSE_TIMEOUT)
