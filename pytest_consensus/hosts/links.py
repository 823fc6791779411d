"""Link faults without netem: a link proxy (:mod:`pytest_consensus.hosts.link_proxy`) in each
node's network namespace, and the rules that send the node's connections through it.

Started before the nodes, so every connection a node opens to a peer (and every one the
test process opens to it) passes through a proxy from the start; the stores keep their
configured addresses. The nemesis then sets a link table (directed links ``(a, b)`` with
a :class:`Link`) on every proxy at once, and clears it to heal. docs/faults.md ("Link
faults") says what each fault does to the bytes and what the proxy costs.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.contract.process import NodeProcess
from pytest_consensus.hosts.firewall import CLIENT
from pytest_consensus.hosts.link_proxy import BYPASS_MARK, PROXY_PORT, Link, link_name
from pytest_consensus.hosts.netns import BridgedNetwork, NamespaceCluster, in_namespace

PROXY_MODULE = "pytest_consensus.hosts.link_proxy"
#: How long a proxy may take to start answering its control socket.
START_TIMEOUT = 15.0
CONTROL_TIMEOUT = 10.0


#: What a link fault sets: directed links (node names, CLIENT for the test process) and what
#: happens to their bytes (Link, defined beside the proxy that applies it).
LinkTable = Mapping[tuple[str, str], Link]


def redirect_rules(own: str, subnet: str, client: str) -> list[tuple[str, ...]]:
    """The namespace's ``nat`` rules: the node's own connections to the run's subnet, and the
    client's connections to the node, go to the proxy; the proxy's own (marked) do not."""
    redirect = ("-j", "REDIRECT", "--to-ports", str(PROXY_PORT))
    output = ("-t", "nat", "-A", "OUTPUT", "-p", "tcp")
    return [
        (*output, "-d", own, "-j", "RETURN"),
        (*output, "-m", "mark", "--mark", hex(BYPASS_MARK), "-j", "RETURN"),
        (*output, "-d", subnet, *redirect),
        ("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-s", client, "-d", own, *redirect),
    ]


class LinkProxies:
    """The link proxies of one namespace cluster: started (rules first in place) before the
    cluster's nodes, killed with the cluster."""

    def __init__(self, network: BridgedNetwork, cluster: NamespaceCluster) -> None:
        self.cluster = cluster
        self.subnet = str(network.subnet)
        self._begin(cluster.addresses, network.gateway)

    def _begin(self, addresses: Mapping[str, str], client: str) -> None:
        """The state every host's proxies share: who is at which address (``client`` the
        test process), the proxies started, the link table set."""
        self.names = {address: name for name, address in addresses.items()}
        self.names[client] = CLIENT
        self.client = client
        self.processes: dict[str, NodeProcess] = {}
        self.controls: dict[str, Path] = {}
        self.table: dict[tuple[str, str], Link] = {}

    def _start_proxies(self) -> None:
        """Start a proxy for every node (not yet waited for)."""
        for host in self.cluster.hosts:
            self._start_one(host.name, host.log_dir)

    def start(self) -> LinkProxies:
        try:
            self._start_proxies()
            for name in self.processes:
                self._wait_ready(name)
            self._redirect()
        except BaseException:
            self.close()
            raise
        return self

    def _redirect(self) -> None:
        """Send the nodes' connections through the proxies (after every proxy answers)."""
        for name, namespace in self.cluster.namespaces.items():
            for rule in redirect_rules(self.cluster.addresses[name], self.subnet, self.client):
                in_namespace(namespace, "iptables", "-w", "5", *rule)

    def _start_one(self, name: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Beside the node's folder, not in it: the node's folder is copied into evidence,
        # and a socket cannot be copied.
        control = folder.parent / f"link-proxy-{name}.sock"
        config = folder / "link-proxy.json"
        config.write_text(
            json.dumps({"node": name, "names": self.names, "control": str(control)}) + "\n"
        )
        namespace = self.cluster.namespaces[name]
        argv = ["ip", "netns", "exec", namespace, sys.executable, "-m", PROXY_MODULE, str(config)]
        process = NodeProcess(
            f"{name}-links", argv, folder / "link-proxy.log", python_environment(), folder
        )
        process.start()
        self.processes[name] = process
        self.controls[name] = control

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._ask(name, {"op": "ping"}, timeout=1.0)
                return
            except (OSError, HarnessError):
                process = self.processes[name]
                if not process.is_running() or time.monotonic() > deadline:
                    raise HarnessError(
                        f"the link proxy of {name} did not start within {START_TIMEOUT:.0f} s; "
                        f"its log:\n{process.log_tail(20)}"
                    ) from None
                time.sleep(0.02)

    def _ask(
        self, name: str, request: dict[str, Any], timeout: float = CONTROL_TIMEOUT
    ) -> dict[str, Any]:
        with self._connect(name, timeout) as control:
            control.sendall(json.dumps(request).encode() + b"\n")
            reply = control.makefile("rb").readline()
        answer: dict[str, Any] = json.loads(reply) if reply else {}
        if not answer.get("ok"):
            raise HarnessError(f"the link proxy of {name} refused {request['op']}: {answer}")
        return answer

    def _connect(self, name: str, timeout: float) -> socket.socket:
        """A connection to the proxy's control socket."""
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.settimeout(timeout)
        try:
            control.connect(str(self.controls[name]))
        except BaseException:
            control.close()
            raise
        return control

    def _ask_all(self, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
        answers = {}
        for name in self.processes:
            try:
                answers[name] = self._ask(name, request)
            except OSError as error:
                raise HarnessError(
                    f"the link proxy of {name} did not answer {request['op']}: {error}; its "
                    f"log:\n{self.processes[name].log_tail(20)}"
                ) from error
        return answers

    def set(self, table: LinkTable) -> None:
        """Make ``table`` the links' state on every proxy (links not in it pass freely)."""
        self.table = dict(table)
        wire = {link_name(a, b): asdict(link) for (a, b), link in table.items()}
        self._ask_all({"op": "set", "links": wire})

    def heal(self) -> None:
        self.set({})

    def reset(self, links: Iterable[tuple[str, str]]) -> int:
        """Abort (TCP reset) every open connection carrying any of ``links``."""
        wire = [link_name(a, b) for a, b in links]
        answers = self._ask_all({"op": "reset", "links": wire})
        return sum(int(answer["reset"]) for answer in answers.values())

    def figures(self) -> dict[str, dict[str, int]]:
        """Per directed link ``"a>b"``: bytes passed and dropped, chunks held and delayed,
        connections and resets, summed over the proxies."""
        total: dict[str, dict[str, int]] = {}
        for answer in self._ask_all({"op": "stats"}).values():
            for link, figures in answer["links"].items():
                into = total.setdefault(link, {})
                for key, value in figures.items():
                    into[key] = into.get(key, 0) + int(value)
        return total

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
        for control in self.controls.values():
            control.unlink(missing_ok=True)
        self.processes.clear()


__all__ = ["Link", "LinkProxies", "LinkTable", "redirect_rules"]
