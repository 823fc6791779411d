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
import random
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the namespace's rules send redirected connections (no store listens there).
PROXY_PORT = 47474
#: The packet mark of the proxy's own connections, which the redirect rules skip.
BYPASS_MARK = 0x7063
#: getsockopt(SOL_IP, SO_ORIGINAL_DST): a redirected connection's destination.
SO_ORIGINAL_DST = 80
#: How long the proxy waits to reach the real destination (a cut-off peer never answers).
CONNECT_TIMEOUT = 5.0
#: How often a held (stalled) direction looks at the table again.
HOLD_POLL = 0.02
READ_SIZE = 65536
MODES = ("pass", "stall", "blackhole", "flap")
#: The delay a "lost" chunk gets, as a retransmission after TCP's minimum timeout would.
RETRANSMIT_DELAY = (0.2, 0.4)


@dataclass(frozen=True)
class LinkState:
    """What happens to bytes on one directed link."""

    delay: float = 0.0
    jitter: float = 0.0
    #: Bytes a second; 0 is no cap.
    rate: float = 0.0
    #: The chance that a chunk is "lost" and retransmitted (delayed by RETRANSMIT_DELAY).
    loss: float = 0.0
    mode: str = "pass"
    #: For ``flap``: seconds up, then seconds blackholed, and so on.
    period: float = 0.5
    since: float = field(default_factory=time.monotonic)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkState:
        mode = str(data.get("mode", "pass"))
        if mode not in MODES:
            raise ValueError(f"unknown link mode {mode!r}; valid: {', '.join(MODES)}")
        return cls(
            delay=float(data.get("delay", 0.0)),
            jitter=float(data.get("jitter", 0.0)),
            rate=float(data.get("rate", 0.0)),
            loss=float(data.get("loss", 0.0)),
            mode=mode,
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


class Direction:
    """One direction of one proxied connection: bytes from ``reader`` to ``writer``."""

    def __init__(
        self,
        proxy: LinkProxy,
        link: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
    ) -> None:
        self.proxy, self.link, self.reader, self.writer = proxy, link, reader, writer
        self.connection = connection
        self.pending: deque[tuple[float, bytes]] = deque()
        self.wake = asyncio.Event()
        self.last_due = 0.0
        self.closed = False
        #: Bytes of this direction were dropped: its stream has a hole.
        self.damaged = False

    async def run(self) -> None:
        delivery = asyncio.create_task(self.deliver())
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                await self.forward(data)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.wake.set()
            await delivery

    async def forward(self, data: bytes) -> None:
        figures = self.proxy.figures(self.link)
        state = self.proxy.state(self.link)
        if state.holding(time.monotonic()):
            figures.held += 1
            while state.holding(time.monotonic()):
                await asyncio.sleep(HOLD_POLL)
                state = self.proxy.state(self.link)
        now = time.monotonic()
        if state.dropping(now):
            figures.dropped += len(data)
            self.damaged = True
            return
        if self.damaged:  # this direction lost bytes: TCP would not carry on
            self.connection.reset()
            return
        figures.passed += len(data)
        if state.plain and not self.pending:
            self.writer.write(data)
            await self.writer.drain()
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
        self.wake.set()

    async def deliver(self) -> None:
        try:
            while True:
                if not self.pending:
                    if self.closed:
                        break
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                due, data = self.pending[0]
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.pending.popleft()
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not self.writer.is_closing():
                try:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                except OSError:
                    pass


class Connection:
    """A proxied connection: the node's (or client's) side and the destination's."""

    def __init__(self, links: tuple[str, str]) -> None:
        self.links = links
        self.writers: list[asyncio.StreamWriter] = []

    def reset(self) -> None:
        """Abort both sides with a TCP reset."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            writer.transport.abort()


class LinkProxy:
    """The proxy of one node: its name, the names of the addresses it may reach, and the
    link table the harness sets."""

    def __init__(self, node: str, names: dict[str, str]) -> None:
        self.node = node
        self.names = names  # address -> node name (the client's address -> "client")
        self.table: dict[str, LinkState] = {}
        self.counts: dict[str, LinkFigures] = {}
        self.connections: set[Connection] = set()

    def state(self, link: str) -> LinkState:
        return self.table.get(link, PASS)

    def figures(self, link: str) -> LinkFigures:
        return self.counts.setdefault(link, LinkFigures())

    def links_of(self, source: str, destination: str) -> tuple[str, str]:
        return f"{source}>{destination}", f"{destination}>{source}"

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sock = writer.get_extra_info("socket")
        peer = writer.get_extra_info("peername")[0]
        try:
            address, port = original_destination(sock)
        except OSError:
            writer.transport.abort()
            return
        if self.names.get(peer) == "client":
            source, destination = "client", self.node
        else:
            source, destination = self.node, self.names.get(address, address)
        connection = Connection(self.links_of(source, destination))
        connection.writers.append(writer)
        self.figures(connection.links[0]).connections += 1
        self.connections.add(connection)
        try:
            upstream = await asyncio.wait_for(open_marked(address, port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            connection.reset()
            self.connections.discard(connection)
            return
        up_reader, up_writer = upstream
        connection.writers.append(up_writer)
        try:
            await asyncio.gather(
                Direction(self, connection.links[0], reader, up_writer, connection).run(),
                Direction(self, connection.links[1], up_reader, writer, connection).run(),
            )
        finally:
            self.connections.discard(connection)
            for side in connection.writers:
                side.close()

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        operation = request.get("op")
        if operation == "ping":
            return {"ok": True, "node": self.node}
        if operation == "set":
            table = {str(k): LinkState.from_json(v) for k, v in request["links"].items()}
            self.table = {link: state for link, state in table.items() if state != PASS}
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


async def open_marked(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection the redirect rules let through (its packets carry BYPASS_MARK)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, BYPASS_MARK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def serve(config: dict[str, Any]) -> None:
    proxy = LinkProxy(str(config["node"]), dict(config["names"]))

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await proxy.serve_connection(reader, writer)

    server = await asyncio.start_server(
        accepted, "0.0.0.0", int(config.get("port", PROXY_PORT)), reuse_address=True
    )
    control_path = Path(config["control"])
    control_path.unlink(missing_ok=True)
    control = await asyncio.start_unix_server(proxy.serve_control, str(control_path))
    print(f"link proxy of {proxy.node} ready", flush=True)
    async with server, control:
        await asyncio.Event().wait()  # until the harness kills it (or its reaper does)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pytest_consensus.hosts.link_proxy CONFIG.json", file=sys.stderr)
        return 2
    asyncio.run(serve(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
