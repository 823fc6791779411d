"""A NATS JetStream key-value client bound to one server, behind the contract's sync calls.

nats-py is asyncio only: every call runs on the cluster's :class:`EventLoopThread`. The
connection never moves to another server (no reconnect, no discovered servers): a client
whose server went away reconnects to the same server on its next call, or fails with a
definite ``Unavailable``. Error mapping and the choice of reads: docs/adapters/nats.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsConnection
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext

from pytest_consensus.contract import Client, ReadLevel
from pytest_consensus.contract.errors import (
    ConnectionLost,
    ConsensusError,
    Rejected,
    Timeout,
    Unavailable,
    UnknownError,
)
from pytest_consensus.contract.event_loop import EventLoopThread

Result = TypeVar("Result")

#: JetStream's error codes for "the subject's last sequence is not the expected one".
WRONG_LAST_SEQUENCE = (10071, 10164)
#: "duplicate message id is in process": an earlier attempt with this request id is still
#: being replicated, and may yet be stored. The only error reply that is no refusal.
DUPLICATE_IN_PROCESS = 10158
#: The header that carries a write's request id; JetStream drops a second message with the
#: same id inside the stream's duplicate window (docs/adapters/nats.md).
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_STREAM = "Nats-Expected-Stream"
#: JetStream's error code for "expected stream does not match": the stream's leader
#: answered (and stored nothing).
WRONG_STREAM = 10060
KV_OPERATION = "KV-Operation"
#: A subject sequence no message can have: a conditional write expecting it always fails,
#: unless JetStream answers first that its message id is a duplicate (see _applied_before).
IMPOSSIBLE_SEQUENCE = str(2**63 - 1)
#: Keys JetStream accepts as they are; any other key is stored base64-encoded behind
#: ENCODED_PREFIX (which such keys therefore never start with).
VALID_KEY = re.compile(r"[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*")
ENCODED_PREFIX = "_."
#: How many times a read-modify-write (cas, append) re-reads after losing a race.
RMW_ATTEMPTS = 50
#: Messages asked for in one batched direct get of a scan.
SCAN_BATCH = 1000


def workload_key(bucket_key: str) -> str:
    """The workload key a bucket key stands for (the inverse of :func:`nats_key`)."""
    if not bucket_key.startswith(ENCODED_PREFIX):
        return bucket_key
    encoded = bucket_key[len(ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def nats_key(key: str) -> str:
    """The bucket key for a workload key: itself where JetStream allows it, else encoded."""
    if VALID_KEY.fullmatch(key) and not key.startswith(ENCODED_PREFIX):
        return key
    return ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def map_nats_error(error: BaseException, node: str, *, sent: bool) -> ConsensusError:
    """A nats-py failure as a definite or indefinite error (when in doubt, indefinite).

    ``sent`` says whether the request may have left this client; before that, every failure
    is definite."""
    message = f"{node}: {type(error).__name__}: {error}"
    if isinstance(error, ConsensusError):
        return error
    if isinstance(error, (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError)):
        # No server subscribed to the subject: nobody received the request.
        return Unavailable(message)
    if isinstance(error, nats.js.errors.ServiceUnavailableError):
        return Unavailable(message)
    if isinstance(error, nats.js.errors.APIError):
        if error.err_code == DUPLICATE_IN_PROCESS:
            # This attempt is refused, but the earlier one with the same id is in flight.
            return UnknownError(message)
        # An error reply: the stream leader refused (or failed) the request and stored
        # nothing; JetStream replies with an error only for a write it did not store.
        return Rejected(message)
    if not sent:
        return Unavailable(message)
    if isinstance(error, (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return Timeout(message)
    if isinstance(
        error,
        (nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError, OSError),
    ):
        return ConnectionLost(message)
    return UnknownError(message)


class NatsKvClient(Client):
    """One server's client of the bucket's stream.

    ``strong`` reads ask the stream leader (``STREAM.MSG.GET``) and confirm its answer
    with a conditional write, or, with ``strong_read="leader"``, take the leader's answer
    alone; ``stale`` reads are direct gets that any replica may answer. See
    docs/adapters/nats.md.
    """

    def __init__(
        self,
        node: str,
        url: str,
        bucket: str,
        loop: EventLoopThread,
        *,
        strong_read: str = "verified",
        connect_timeout: int = 2,
    ) -> None:
        self.node = node
        self.url = url
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.strong_read = strong_read
        self._loop = loop
        self._connect_timeout = connect_timeout
        self._connection: NatsConnection | None = None
        self._lock: asyncio.Lock | None = None

    # -- plumbing ------------------------------------------------------------------------

    def _subject(self, key: str) -> str:
        return f"$KV.{self.bucket}.{nats_key(key)}"

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context of a live connection to this client's server only."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await nats.connect(
                    servers=[self.url],
                    allow_reconnect=False,
                    connect_timeout=self._connect_timeout,
                    max_reconnect_attempts=0,
                    error_cb=_ignore_error,
                    name=f"pytest-consensus {self.node}",
                )
            return self._connection.jetstream()

    def _run(self, call: Callable[[], Awaitable[Result]], timeout: float) -> Result:
        """Run ``call`` on the event loop; a failure mapped onto the taxonomy. A failure
        before the connection exists is definite; once it does, the request may be out."""
        progress = {"sent": False}

        async def attempt() -> Result:
            try:
                await self.jetstream()
            except Exception as error:  # noqa: BLE001 - mapped, never hidden
                raise map_nats_error(error, self.node, sent=False) from error
            progress["sent"] = True
            try:
                return await asyncio.wait_for(call(), timeout)
            except Exception as error:  # noqa: BLE001 - mapped, never hidden
                raise map_nats_error(error, self.node, sent=True) from error

        try:
            return self._loop.run(attempt(), timeout + 1.0)
        except Timeout as error:
            if progress["sent"]:
                raise
            raise Unavailable(f"{self.node}: no connection within {timeout} s") from error

    async def _publish(
        self, key: str, value: bytes, headers: dict[str, str], timeout: float
    ) -> Any:
        js = await self.jetstream()
        return await js.publish(self._subject(key), value, timeout=timeout, headers=headers)

    async def _leader_get(self, key: str, timeout: float) -> tuple[str | None, int]:
        """The key's value and its subject sequence (0 when it never existed), asked of
        the stream leader. A delete marker is an absent key with the marker's sequence."""
        js = await self.jetstream()
        return await _read(js, self.stream, self._subject(key), timeout, direct=False)

    # -- operations ----------------------------------------------------------------------

    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        headers = {MSG_ID: request_id} if request_id else {}
        self._run(lambda: self._publish(key, value.encode(), headers, timeout), timeout)

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        headers = {KV_OPERATION: "DEL"}
        if request_id:
            headers[MSG_ID] = request_id
        self._run(lambda: self._publish(key, b"", headers, timeout), timeout)

    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        if ReadLevel(level) is ReadLevel.STALE:

            async def direct() -> str | None:
                js = await self.jetstream()
                return (await _read(js, self.stream, self._subject(key), timeout, True))[0]

            return self._run(direct, timeout)
        if self.strong_read == "leader":

            async def leader() -> str | None:
                return (await self._leader_get(key, timeout))[0]

            return self._run(leader, timeout)
        return self._run(lambda: self._verified_get(key, timeout), timeout)

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        """Every key under ``prefix`` with its value, from batched direct gets (JetStream's
        ``next_by_subj`` with ``batch``): like a ``stale`` get, answered by a replica of
        the stream, the one on this client's server where it holds one (NATS prefers a
        local queue subscriber). The bucket keeps one message per key, so the stream read
        in sequence order, from the start, is the bucket's last value of every key."""
        return self._run(lambda: self._scan(prefix, timeout), timeout)

    async def _scan(self, prefix: str, timeout: float) -> dict[str, str]:
        connection = self._connection
        assert connection is not None  # _run connected first
        inbox = connection.new_inbox()
        replies = await connection.subscribe(inbox)
        items: dict[str, str] = {}
        subjects = f"$KV.{self.bucket}."
        sequence = 1
        try:
            while True:
                request = {"seq": sequence, "next_by_subj": f"{subjects}>", "batch": SCAN_BATCH}
                await connection.publish(
                    f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(request).encode(), reply=inbox
                )
                while True:
                    message = await replies.next_msg(timeout=timeout)
                    headers = message.headers or {}
                    status = headers.get("Status")
                    if status == "404":  # nothing at or after ``sequence``
                        return items
                    if status is not None:  # "204": the end of this batch
                        if headers.get("Nats-Num-Pending", "0") == "0":
                            return items
                        break
                    key = workload_key(headers["Nats-Subject"][len(subjects) :])
                    sequence = int(headers["Nats-Sequence"]) + 1
                    if not key.startswith(prefix):
                        continue
                    if headers.get(KV_OPERATION) in ("DEL", "PURGE"):
                        items.pop(key, None)
                    else:
                        items[key] = message.data.decode()
        finally:
            await replies.unsubscribe()

    async def _verified_get(self, key: str, timeout: float) -> str | None:
        """The leader's answer, confirmed by rewriting it conditionally on its sequence: a
        conditional write commits only if the key's last sequence is still the one read,
        so the value read was the key's value at that commit (a linearizable read, paid
        for with one replicated write). A lost race re-reads."""
        for _ in range(RMW_ATTEMPTS):
            value, sequence = await self._leader_get(key, timeout)
            headers = {EXPECTED_LAST: str(sequence)}
            if value is None:
                headers[KV_OPERATION] = "DEL"
            try:
                await self._publish(key, (value or "").encode(), headers, timeout)
            except nats.js.errors.APIError as error:
                if error.err_code in WRONG_LAST_SEQUENCE:
                    continue
                raise
            return value
        raise Unavailable(f"{self.node}: {key!r} changed under {RMW_ATTEMPTS} verified reads")

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

        return self._run(lambda: self._read_modify_write(key, change, request_id, timeout), timeout)

    def append(
        self, key: str, value: str, *, timeout: float, request_id: str | None = None
    ) -> None:
        def change(current: str | None) -> str:
            return (current or "") + value

        self._run(lambda: self._read_modify_write(key, change, request_id, timeout), timeout)

    async def _read_modify_write(
        self,
        key: str,
        change: Callable[[str | None], str | None],
        request_id: str | None,
        timeout: float,
    ) -> bool:
        """Read the key at the leader, compute the new value, and write it on condition
        that the key's last sequence is still the one read (JetStream's optimistic
        concurrency); a lost race re-reads. ``change`` returning None means "no write"
        (a cas whose expected value does not match): False, unless this request id was
        applied by an earlier attempt, which JetStream's de-duplication tells."""
        for _ in range(RMW_ATTEMPTS):
            current, sequence = await self._leader_get(key, timeout)
            updated = change(current)
            if updated is None:
                return request_id is not None and await self._applied_before(
                    key, request_id, timeout
                )
            headers = {EXPECTED_LAST: str(sequence)}
            if request_id:
                headers[MSG_ID] = request_id
            try:
                await self._publish(key, updated.encode(), headers, timeout)
            except nats.js.errors.APIError as error:
                if error.err_code in WRONG_LAST_SEQUENCE:
                    continue
                raise
            return True  # a duplicate's acknowledgement is the earlier attempt's success
        raise Unavailable(f"{self.node}: {key!r} changed under {RMW_ATTEMPTS} attempts")

    def stream_answers(self, timeout: float) -> bool:
        """Whether the bucket's stream answers a publish sent to this client's server: a
        message naming another stream, which the stream's leader refuses and never stores.
        False while the server knows no subscriber for the bucket's subjects yet (a stream
        leader elected a moment ago, its interest not yet passed along the routes)."""

        async def probe() -> bool:
            headers = {EXPECTED_STREAM: f"not-KV_{self.bucket}"}
            try:
                await self._publish("probe", b"", headers, timeout)
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                return False
            except nats.js.errors.APIError as error:
                if error.err_code == WRONG_STREAM:
                    return True
                raise
            raise UnknownError(f"{self.node}: a probe naming another stream was stored")

        return self._loop.run(probe(), timeout + 1.0)

    async def _applied_before(self, key: str, request_id: str, timeout: float) -> bool:
        """Whether an earlier attempt with this request id was stored: JetStream checks a
        message id before any expected-sequence header, so a message that carries the id
        and expects an impossible sequence is acknowledged as a duplicate if the id was
        seen, and refused (storing nothing) if not."""
        headers = {MSG_ID: request_id, EXPECTED_LAST: IMPOSSIBLE_SEQUENCE}
        try:
            ack = await self._publish(key, b"", headers, timeout)
        except nats.js.errors.APIError as error:
            if error.err_code in WRONG_LAST_SEQUENCE:
                return False
            raise
        if not ack.duplicate:
            raise UnknownError(f"{self.node}: a probe with an impossible sequence was stored")
        return True

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or connection.is_closed:
            return
        try:
            self._loop.run(connection.close(), 5.0)
        except (ConsensusError, RuntimeError, nats.errors.Error):
            pass  # the server is gone or the loop closed; nothing left to release


async def _read(
    js: JetStreamContext, stream: str, subject: str, timeout: float, direct: bool
) -> tuple[str | None, int]:
    try:
        message: RawStreamMsg = await asyncio.wait_for(
            js.get_msg(stream, subject=subject, direct=direct), timeout
        )
    except nats.js.errors.NotFoundError:
        return None, 0
    headers = message.headers or {}
    sequence = int(message.seq or 0)
    if headers.get(KV_OPERATION) in ("DEL", "PURGE"):
        return None, sequence
    return (message.data or b"").decode(), sequence


async def _ignore_error(error: Exception) -> None:
    """Connection errors reach the caller as the failed call's exception instead."""
