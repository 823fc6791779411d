"""The link proxy: one process per node, inside the node's network namespace, through which
every TCP connection the node opens to a peer (and every connection the test process opens
to the node) passes, so a directed link can be slowed, held or cut without netem.

Run as ``python -m pytest_consensus.hosts.link_proxy CONFIG`` (the harness starts it, see
:mod:`pytest_consensus.hosts.links`). The namespace's ``nat`` rules REDIRECT those
connections to :data:`PROXY_PORT`; the proxy reads where each was going from
``SO_ORIGINAL_DST``, connects there itself (its own sockets carry :data:`BYPASS_MARK`, which
the rules let through), and copies bytes both ways, applying the link table: per directed
link ``"a>b"``, a delay with jitter, a bandwidth cap, extra delays that stand for lost
packets TCP retransmits, and a mode (``pass``, ``stall``: bytes held, ``blackhole``: bytes
dropped, ``flap``: blackholed every other ``period`` seconds, from the start). A
connection that lost bytes in one direction is reset as soon as bytes pass in that direction
again, as TCP would give up on it: a stream is never resumed with a hole in it. The other
direction carries on.

The harness drives it over a Unix socket, one JSON object a line each way: ``set`` (the
whole link table), ``reset`` (abort the connections of some links), ``stats``, ``ping``.
The harness kills it with the cluster; the run's reaper kills it if pytest dies first.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pytest_consensus.contract.errors import HarnessError

#: Where the namespace's rules send redirected connections (no store listens there).
PROXY_PORT = 47474
#: Where a proxy on another machine (the SSH host) takes the harness's requests.
CONTROL_PORT = PROXY_PORT + 1
#: The packet mark of the proxy's own connections, which the redirect rules skip.
BYPASS_MARK = 0x7063
#: getsockopt(SOL_IP, SO_ORIGINAL_DST): a redirected connection's destination.
SO_ORIGINAL_DST = 80
#: How long the proxy waits to reach the real destination (a cut-off peer never answers).
CONNECT_TIMEOUT = 5.0
#: How long a refused connect is tried again before the accepted side is reset. The node
#: already holds a connection the proxy accepted, where without the proxy its connect would
#: have been refused and retried: a ZooKeeper follower connecting to a new leader 1-3 ms
#: before it listened took the reset for a failed leader, again at every election.
REFUSED_RETRY = 1.0
REFUSED_PAUSE = 0.05
MODES = ("pass", "stall", "blackhole", "flap")
#: The delay a "lost" chunk gets, as a retransmission after TCP's minimum timeout would.
RETRANSMIT_DELAY = (0.2, 0.4)


class UnknownLinkMode(HarnessError, ValueError):
    """A link mode the proxy does not know: a usage error in the harness, and a bad value
    in a control request."""


@dataclass(frozen=True)
class Link:
    """What happens to bytes on one directed link: what the harness sets (hosts.links), and
    what the proxy applies."""

    delay: float = 0.0
    jitter: float = 0.0
    #: Bytes a second; 0 is no cap.
    rate: float = 0.0
    #: The chance that a chunk is "lost" and retransmitted (delayed by RETRANSMIT_DELAY).
    loss: float = 0.0
    mode: str = "pass"
    #: For ``flap``: seconds up, then seconds blackholed, and so on.
    period: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnknownLinkMode(f"unknown link mode {self.mode!r}; valid: {', '.join(MODES)}")


@dataclass(frozen=True)
class LinkState(Link):
    """A link as the proxy holds it: with when it was set (a flap counts its periods from
    then), which does not make two states different."""

    since: float = field(default_factory=time.monotonic, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkState:
        return cls(
            delay=float(data.get("delay", 0.0)),
            jitter=float(data.get("jitter", 0.0)),
            rate=float(data.get("rate", 0.0)),
            loss=float(data.get("loss", 0.0)),
            mode=str(data.get("mode", "pass")),
            period=float(data.get("period", 0.5)),
        )

    def holding(self, now: float) -> bool:
        return self.mode == "stall"

    def dropping(self, now: float) -> bool:
        if self.mode == "blackhole":
            return True
        # Down first: a flap as short as one period still cuts the link.
        return self.mode == "flap" and int((now - self.since) / self.period) % 2 == 0

    @property
    def plain(self) -> bool:
        """Bytes go straight through (nothing to delay, cap or drop)."""
        return self.mode == "pass" and not (self.delay or self.jitter or self.rate or self.loss)


def link_name(source: str, destination: str) -> str:
    """The directed link from ``source`` to ``destination`` as the proxies name it."""
    return f"{source}>{destination}"


PASS = LinkState()


@dataclass
class LinkFigures:
    passed: int = 0
    dropped: int = 0
    #: Chunks that waited in a stall.
    held: int = 0
    #: Chunks delivered later than they arrived (delay, cap or retransmission).
    delayed: int = 0
    connections: int = 0
    resets: int = 0


class Flow:
    """One direction of one proxied connection: what ``source`` receives goes to ``dest``,
    as the link's state says. Works on transports (asyncio protocols), not streams: a chunk
    that passes freely is written from the callback that received it."""

    def __init__(self, proxy: LinkProxy, link: str, connection: Connection) -> None:
        self.proxy, self.link, self.connection = proxy, link, connection
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self.pending: deque[tuple[float, bytes]] = deque()
        self.held: list[bytes] = []
        self.early: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None
        self.last_due = 0.0
        self.eof = False
        self.finished = False
        #: Bytes of this direction were dropped: its stream has a hole.
        self.damaged = False
        #: Why reading the source is paused ("stall", "backpressure", "connecting").
        self.paused: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self.paused and self.source is not None and not self.source.is_closing():
            self.source.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self.paused:
            return
        self.paused.discard(reason)
        if not self.paused and self.source is not None and not self.source.is_closing():
            self.source.resume_reading()

    def received(self, data: bytes) -> None:
        if self.dest is None:  # read before the destination was connected (uvloop may)
            self.early.append(data)
            return
        state = self.proxy.state(self.link)
        figures = self.proxy.figures(self.link)
        now = time.monotonic()
        if self.held or state.holding(now):
            if not self.held:
                figures.held += 1
            self.held.append(data)
            self.pause("stall")
            self.proxy.stalled.add(self)
            return
        if state.dropping(now):
            figures.dropped += len(data)
            self.damaged = True
            return
        if self.damaged:  # this direction lost bytes: TCP would not carry on
            self.connection.reset()
            return
        figures.passed += len(data)
        if state.plain and not self.pending:
            self.dest.write(data)
            return
        due = now + max(0.0, state.delay + random.uniform(-state.jitter, state.jitter))
        if state.loss and random.random() < state.loss:
            due += random.uniform(*RETRANSMIT_DELAY)
        if state.rate:
            due = max(due, self.last_due) + len(data) / state.rate
        due = max(due, self.last_due)  # TCP delivers in order
        self.last_due = due
        if due > now:
            figures.delayed += 1
        self.pending.append((due, data))
        self.schedule()

    def schedule(self) -> None:
        if self.timer is None and self.pending:
            wait = max(0.0, self.pending[0][0] - time.monotonic())
            self.timer = asyncio.get_running_loop().call_later(wait, self.deliver)

    def deliver(self) -> None:
        self.timer = None
        now = time.monotonic()
        assert self.dest is not None
        while self.pending and self.pending[0][0] <= now:
            self.dest.write(self.pending.popleft()[1])
        self.schedule()
        self.finish_if_done()

    def release(self) -> None:
        """The table changed: a stalled direction whose link no longer holds goes on."""
        if self.proxy.state(self.link).holding(time.monotonic()):
            return
        held, self.held = self.held, []
        self.proxy.stalled.discard(self)
        for data in held:
            self.received(data)
        self.resume("stall")
        self.finish_if_done()

    def ended(self) -> None:
        """The source sent EOF: pass it on once what it sent before is delivered."""
        self.eof = True
        self.finish_if_done()

    def finish_if_done(self) -> None:
        if not self.eof or self.finished or self.pending or self.held or self.dest is None:
            return
        self.finished = True
        if not self.dest.is_closing() and self.dest.can_write_eof():
            try:
                self.dest.write_eof()
            except OSError:
                self.dest.close()
        self.connection.half_closed()


class Side(asyncio.Protocol):
    """One socket of a proxied connection: the accepted one, or the proxy's own to the
    destination. What it receives feeds ``inbound``; ``outbound`` writes to it."""

    def __init__(self, connection: Connection, inbound: Flow, outbound: Flow) -> None:
        self.connection, self.inbound, self.outbound = connection, inbound, outbound

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.inbound.source = transport
        self.outbound.dest = transport
        self.connection.transports.append(transport)
        early, self.outbound.early = self.outbound.early, []
        for data in early:
            self.outbound.received(data)
        if self.inbound.paused:  # paused before its transport existed
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.inbound.received(data)

    def eof_received(self) -> bool:
        self.inbound.ended()
        return True  # keep the other direction open (half-close)

    def pause_writing(self) -> None:
        self.outbound.pause("backpressure")

    def resume_writing(self) -> None:
        self.outbound.resume("backpressure")

    def connection_lost(self, error: Exception | None) -> None:
        self.connection.close()


class Connection:
    """A proxied connection: the node's (or client's) side and the destination's, and the
    two directions between them."""

    def __init__(self, proxy: LinkProxy, links: tuple[str, str]) -> None:
        self.proxy = proxy
        self.links = links
        self.transports: list[asyncio.Transport] = []
        self.up = Flow(proxy, links[0], self)  # from the connecting side to the destination
        self.down = Flow(proxy, links[1], self)
        self.halves = 0
        self.closed = False

    def half_closed(self) -> None:
        self.halves += 1
        if self.halves >= 2:
            self.close()

    def reset(self) -> None:
        """Abort both sides with a TCP reset."""
        for transport in self.transports:
            sock = transport.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            transport.abort()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for flow in (self.up, self.down):
            if flow.timer is not None:
                flow.timer.cancel()
            self.proxy.stalled.discard(flow)
        for transport in self.transports:
            transport.close()
        self.proxy.connections.discard(self)


class Accepted(Side):
    """The accepted socket: finds where it was going and connects there, reading nothing
    until then (bytes wait in the kernel, as they would for a slow handshake)."""

    def __init__(self, proxy: LinkProxy) -> None:
        self.proxy = proxy
        self.opened = False  # a connection whose destination was found

    def connection_lost(self, error: Exception | None) -> None:
        if self.opened:
            super().connection_lost(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address, port = original_destination(sock)
        except OSError:
            transport.abort()
            return
        connection = self.proxy.open(transport.get_extra_info("peername")[0], address)
        super().__init__(connection, connection.up, connection.down)
        self.opened = True
        connection.up.pause("connecting")
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self.connect(address, port))

    async def connect(self, address: str, port: int) -> None:
        connection = self.connection
        loop = asyncio.get_running_loop()
        try:
            sock = await self.reach(address, port)
            await loop.create_connection(
                lambda: Side(connection, connection.down, connection.up), sock=sock
            )
        except (OSError, asyncio.TimeoutError):
            connection.reset()
            return
        if not connection.closed:
            connection.up.resume("connecting")

    async def reach(self, address: str, port: int) -> socket.socket:
        """The proxy's own socket to the destination; a refusal is tried again for
        REFUSED_RETRY, while the accepted side is still open, before it counts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REFUSED_RETRY
        while True:
            try:
                return await asyncio.wait_for(open_marked(address, port), CONNECT_TIMEOUT)
            except ConnectionRefusedError:
                if loop.time() >= deadline or self.connection.closed:
                    raise
                await asyncio.sleep(REFUSED_PAUSE)


class LinkProxy:
    """The proxy of one node: its name, the names of the addresses it may reach, and the
    link table the harness sets."""

    def __init__(self, node: str, names: dict[str, str]) -> None:
        self.node = node
        self.names = names  # address -> node name (the client's address -> "client")
        self.table: dict[str, LinkState] = {}
        self.counts: dict[str, LinkFigures] = {}
        self.connections: set[Connection] = set()
        #: Directions holding bytes in a stall, released when the table changes.
        self.stalled: set[Flow] = set()

    def state(self, link: str) -> LinkState:
        return self.table.get(link, PASS)

    def figures(self, link: str) -> LinkFigures:
        return self.counts.setdefault(link, LinkFigures())

    def links_of(self, source: str, destination: str) -> tuple[str, str]:
        return link_name(source, destination), link_name(destination, source)

    def open(self, peer: str, destination_address: str) -> Connection:
        """A connection accepted from ``peer`` that was going to ``destination_address``."""
        if self.names.get(peer) == "client":
            source, destination = "client", self.node
        else:
            source, destination = self.node, self.names.get(destination_address, "?")
        connection = Connection(self, self.links_of(source, destination))
        self.figures(connection.links[0]).connections += 1
        self.connections.add(connection)
        return connection

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        operation = request.get("op")
        if operation == "ping":
            return {"ok": True, "node": self.node}
        if operation == "set":
            table = {str(k): LinkState.from_json(v) for k, v in request["links"].items()}
            self.table = {link: state for link, state in table.items() if state != PASS}
            for flow in list(self.stalled):
                flow.release()
            return {"ok": True}
        if operation == "reset":
            wanted = set(request["links"])
            hit = [c for c in self.connections if wanted & set(c.links)]
            for connection in hit:
                self.figures(connection.links[0]).resets += 1
                connection.reset()
            return {"ok": True, "reset": len(hit)}
        if operation == "stats":
            return {
                "ok": True,
                "open": len(self.connections),
                "links": {link: vars(figures) for link, figures in self.counts.items()},
            }
        raise ValueError(f"unknown operation {operation!r}")

    async def serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while line := await reader.readline():
                try:
                    answer = self.control(json.loads(line))
                except (ValueError, KeyError, TypeError) as error:
                    answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a REDIRECTed connection was going (IPv4)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


async def open_marked(address: str, port: int) -> socket.socket:
    """A connected socket the redirect rules let through (its packets carry BYPASS_MARK)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, BYPASS_MARK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(config: dict[str, Any]) -> None:
    proxy = LinkProxy(str(config["node"]), dict(config["names"]))
    loop = asyncio.get_running_loop()
    port = int(config.get("port", PROXY_PORT))
    server = await loop.create_server(lambda: Accepted(proxy), "0.0.0.0", port, reuse_address=True)
    if "control_port" in config:  # on another machine (the SSH host): over TCP
        control = await asyncio.start_server(
            proxy.serve_control, config["control_address"], int(config["control_port"])
        )
    else:
        control_path = Path(config["control"])
        control_path.unlink(missing_ok=True)
        control = await asyncio.start_unix_server(proxy.serve_control, str(control_path))
    print(f"link proxy of {proxy.node} ready ({type(loop).__module__})", flush=True)
    async with server, control:
        await asyncio.Event().wait()  # until the harness kills it (or its reaper does)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pytest_consensus.hosts.link_proxy CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    try:  # on the path of every message: served before the nodes it carries for
        os.nice(-10)
    except OSError:
        pass  # not root: the same, a little slower
    try:
        import uvloop  # libuv's event loop: a forwarded chunk costs about half as much
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
