"""The link proxy: real namespaces, real redirect rules, real TCP through it. A peer's
connection and the test process's are both proxied, and each link mode does to the bytes
what docs/faults.md says."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_consensus.hosts.link_proxy import LinkState
from pytest_consensus.hosts.links import Link, LinkProxies
from pytest_consensus.hosts.netns import NamespaceNetwork

ECHO_PORT = 9000
#: An echo server on the port given as its argument (a listener inside a namespace).
ECHO_SERVER = """
import socket, sys, threading
def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""
#: Round trips from n1 to n2's echo server, run inside n1's namespace: prints the median.
PEER_CLIENT = """
import socket, sys, time
conn = socket.create_connection((sys.argv[1], 9000), timeout=10)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _ in range(21):
    began = time.perf_counter()
    conn.sendall(b"x" * 100)
    got = b""
    while len(got) < 100:
        got += conn.recv(100)
    times.append(time.perf_counter() - began)
print(sorted(times)[10])
"""


def test_a_flapping_link_drops_every_other_period_and_a_stall_holds() -> None:
    flap = LinkState(mode="flap", period=0.5, since=100.0)
    assert [flap.dropping(100.0 + t) for t in (0.1, 0.6, 1.1, 1.6)] == [True, False, True, False]
    assert LinkState(mode="stall").holding(0.0) and not LinkState().holding(0.0)
    assert LinkState(mode="blackhole").dropping(0.0)
    assert LinkState().plain and not LinkState(delay=0.1).plain
    with pytest.raises(ValueError, match="unknown link mode 'lossy'"):
        LinkState.from_json({"mode": "lossy"})


class Proxied:
    """Two namespaces with proxies, an echo server in n2."""

    def __init__(self, network: NamespaceNetwork) -> None:
        self.network = network
        self.cluster = network.allocate(2)
        self.proxies = LinkProxies(network, self.cluster).start()
        namespace = self.cluster.namespaces["n2"]
        self.echo = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", ECHO_SERVER, str(ECHO_PORT)]
        )
        self.address = self.cluster.addresses["n2"]
        deadline = time.monotonic() + 10
        while True:  # the proxy accepts at once: an echo says the server is up
            try:
                with socket.create_connection((self.address, ECHO_PORT), timeout=1) as probe:
                    probe.sendall(b"?")
                    if probe.recv(1) == b"?":
                        break
            except OSError:
                assert time.monotonic() < deadline, "the echo server did not start"
                time.sleep(0.05)

    def connect(self) -> socket.socket:
        conn = socket.create_connection((self.address, ECHO_PORT), timeout=5)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def peer_round_trip(self) -> float:
        namespace = self.cluster.namespaces["n1"]
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", PEER_CLIENT, self.address],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return float(done.stdout)

    def close(self) -> None:
        self.echo.kill()
        self.echo.wait()
        self.proxies.close()
        self.network.release(self.cluster)


@pytest.fixture
def proxied(network: NamespaceNetwork) -> Iterator[Proxied]:
    setup = Proxied(network)
    try:
        yield setup
    finally:
        setup.close()


def test_a_peers_connection_passes_through_the_proxy_and_a_delay_slows_only_its_link(
    proxied: Proxied,
) -> None:
    plain = proxied.peer_round_trip()
    proxied.proxies.set({("n1", "n2"): Link(delay=0.05)})
    slowed = proxied.peer_round_trip()
    assert 0.05 <= slowed < 0.05 + plain + 0.03
    conn = proxied.connect()  # the client's link is not slowed
    began = time.monotonic()
    conn.sendall(b"ping")
    assert conn.recv(10) == b"ping"
    assert time.monotonic() - began < 0.04
    figures = proxied.proxies.figures()
    assert figures["n1>n2"]["connections"] >= 2 and figures["n1>n2"]["delayed"] >= 21
    assert figures["client>n2"]["connections"] >= 1


def test_a_stall_holds_bytes_on_an_open_connection_until_the_heal(proxied: Proxied) -> None:
    conn = proxied.connect()
    proxied.proxies.set({("client", "n2"): Link(mode="stall")})
    conn.sendall(b"held")
    conn.settimeout(0.5)
    with pytest.raises(TimeoutError):
        conn.recv(10)
    proxied.proxies.heal()
    conn.settimeout(5)
    assert conn.recv(10) == b"held"
    assert proxied.proxies.figures()["client>n2"]["held"] == 1


def test_a_blackhole_drops_bytes_and_the_connection_is_reset_once_the_link_passes(
    proxied: Proxied,
) -> None:
    conn = proxied.connect()
    proxied.proxies.set({("n2", "client"): Link(mode="blackhole")})
    conn.sendall(b"lost")
    conn.settimeout(0.5)
    with pytest.raises(TimeoutError):
        conn.recv(10)
    proxied.proxies.heal()
    conn.sendall(b"after")  # the echo carries it back: the damaged stream is reset instead
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        while conn.recv(10):
            pass
    assert proxied.proxies.figures()["n2>client"]["dropped"] == 4
    fresh = proxied.connect()
    fresh.sendall(b"new")
    assert fresh.recv(10) == b"new"


def test_a_reset_aborts_the_links_open_connections(proxied: Proxied) -> None:
    conn = proxied.connect()
    conn.sendall(b"a")
    assert conn.recv(1) == b"a"
    assert proxied.proxies.reset([("client", "n2")]) == 1
    with pytest.raises(ConnectionResetError):
        conn.sendall(b"b")
        conn.settimeout(5)
        conn.recv(1)


def test_a_peer_that_listens_just_after_the_connect_gets_it_and_one_that_never_does_resets(
    proxied: Proxied,
) -> None:
    """Without the proxy a connect to a port nobody listens on yet is refused, and the node
    retries; through the proxy it was accepted at once, so the proxy tries the refused
    connect again for a while: a listener that starts 0.3 s later gets the connection (a
    ZooKeeper leader opening its quorum port), and a port that never listens is reset."""
    late = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            proxied.cluster.namespaces["n2"],
            sys.executable,
            "-c",
            "import time; time.sleep(0.3)\n" + ECHO_SERVER,
            "9001",
        ]
    )
    try:
        conn = socket.create_connection((proxied.address, 9001), timeout=5)
        conn.settimeout(5)
        conn.sendall(b"late")
        assert conn.recv(10) == b"late"
    finally:
        late.kill()
        late.wait()
    began = time.monotonic()
    never = socket.create_connection((proxied.address, 9002), timeout=5)
    never.settimeout(5)
    with pytest.raises(ConnectionResetError):
        never.sendall(b"x")
        never.recv(1)
    assert time.monotonic() - began < 3.0


def test_a_rate_cap_paces_a_bulk_transfer(proxied: Proxied) -> None:
    proxied.proxies.set({("client", "n2"): Link(rate=200_000.0)})
    conn = proxied.connect()
    began = time.monotonic()
    conn.sendall(b"x" * 100_000)
    got = 0
    while got < 100_000:
        got += len(conn.recv(65536))
    assert 0.45 < time.monotonic() - began < 2.0


def test_closing_leaves_no_proxy_behind(tmp_path: Path, network: NamespaceNetwork) -> None:
    cluster = network.allocate(3)
    proxies = LinkProxies(network, cluster).start()
    pids = [process.pid for process in proxies.processes.values()]
    proxies.close()
    network.release(cluster)
    assert all(pid is not None and not Path(f"/proc/{pid}").exists() for pid in pids)
    assert not list(tmp_path.rglob("link-proxy-*.sock"))
