"""The start-up check of the namespace host: can the run's namespaces reach each other?

A host firewall that drops bridged traffic (Docker's FORWARD policy with br_netfilter is the
common case) leaves every node running and none able to reach its peers: no leader, no
commit, and each test would read as the store's failure. One TCP connection from a probe
namespace to another, and one from the test process, made before any cluster starts, turn
that into one usage error that names the cause.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence

from pytest_consensus.contract.errors import HarnessError

#: Any port: the probe namespaces are the run's own and hold nothing else.
PROBE_PORT = 47011
#: Generous: a namespace answers in milliseconds; a dropped SYN never answers.
CONNECT_TIMEOUT = 3.0

#: Listens on argv[1]:argv[2], says "ready", accepts connections until it is killed.
_LISTENER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
server.settimeout(0.2)
print("ready", flush=True)
while True:
    try:
        server.accept()[0].close()
    except socket.timeout:
        pass
"""
#: Connects to argv[1]:argv[2]; exit status 0 when the connection was accepted.
_CONNECTOR = """
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
"""


class NamespacesUnreachable(HarnessError):
    """The run's namespaces cannot reach each other (or the test process them)."""


def _in_namespace(namespace: str, script: str, *arguments: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, sys.executable, "-c", script, *arguments]


def unreachable_paths(
    namespaces: Sequence[str], addresses: Sequence[str], port: int = PROBE_PORT
) -> list[str]:
    """Which of "test process -> first namespace" and "second -> first namespace" cannot
    connect; an empty list means the bridge carries the run's traffic."""
    listener = subprocess.Popen(
        _in_namespace(namespaces[0], _LISTENER, addresses[0], str(port)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        if listener.stdout.readline().strip() != "ready":
            listener.kill()
            raise HarnessError(
                f"the reachability probe could not listen in {namespaces[0]}: "
                f"{listener.communicate(timeout=10)[1].strip()}"
            )
        failed = []
        try:
            socket.create_connection((addresses[0], port), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            failed.append(f"the test process cannot connect to {addresses[0]} ({error})")
        connector = subprocess.run(
            _in_namespace(namespaces[1], _CONNECTOR, addresses[0], str(port), str(CONNECT_TIMEOUT)),
            capture_output=True,
            text=True,
            timeout=CONNECT_TIMEOUT + 30,
        )
        if connector.returncode != 0:
            last = (connector.stderr.strip().splitlines() or ["no output"])[-1]
            failed.append(f"{addresses[1]} cannot connect to {addresses[0]} ({last})")
        return failed
    finally:
        listener.kill()
        listener.wait(timeout=10)
