"""One PySyncObj node as its own OS process, serving the JSON-over-HTTP store protocol.

Run as ``python -m pytest_consensus.adapters.pysyncobj.node --name n1 --raft ADDR:PORT
--api ADDR:PORT --peer n2=ADDR:PORT ... --data-dir DIR``. The protocol is documented in
docs/http-protocol.md. Broken stores in the project's tests subclass :class:`KVNode`
and pass their class to :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine
from pytest_consensus.contract import SNAPSHOT_ENTRIES

log = logging.getLogger("pysyncobj-node")

#: Raft settings, chosen for a test harness on one machine (see docs/adapters/pysyncobj.md).
RAFT_SETTINGS: dict[str, Any] = {
    # Election timeout: short enough that failover takes about a second, long enough
    # (> 3 heartbeats) that a loaded 2-core machine does not cause spurious elections.
    "raftMinTimeout": 0.6,
    "raftMaxTimeout": 1.2,
    "appendEntriesPeriod": 0.1,
    # Batching waits for the next heartbeat tick before sending, which caps a synchronous
    # writer at about 10 writes a second; without it every command is sent at once.
    "appendEntriesUseBatch": False,
    # Without a leader, fail at once (a definite "unavailable") instead of queueing the
    # command, which could then apply long after the client gave up on it.
    "commandsWaitLeader": False,
    # A deposed leader cut off from the majority steps down after this long.
    "leaderFallbackTimeout": 2.0,
    "connectionTimeout": 3.5,
    "connectionRetryTime": 0.5,
    # Serialising in a forked child of a multi-threaded process can deadlock.
    "useFork": False,
    "dynamicMembershipChange": False,
}

ROLE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}
LEADER_STATE = 2
DEFINITE_FAILURES = {
    FAIL_REASON.QUEUE_FULL: ("unavailable", "command queue full"),
    FAIL_REASON.MISSING_LEADER: ("unavailable", "no leader known"),
    FAIL_REASON.NOT_LEADER: ("not-leader", "the node asked to append is not the leader"),
    FAIL_REASON.REQUEST_DENIED: ("rejected", "request denied"),
}
HTTP_STATUS = {
    "not-leader": 409,
    "unavailable": 503,
    "rejected": 400,
    "unsupported": 501,
    "timeout": 504,
}
#: What GET /v1/info says this node serves (docs/http-protocol.md, version 1.1).
INFO = {
    "protocol": "1.1",
    "capabilities": [
        "strong",
        "stale",
        "cas",
        "delete",
        "append",
        "leader",
        "digest",
        "request-ids",
        "scan",
    ],
}
OPERATIONS = frozenset({"put", "get", "cas", "delete", "append", "scan"})
LEVELS = frozenset({"strong", "stale"})


class KVConsumer(SyncObjConsumer):  # type: ignore[misc]
    """Holds the state machine; PySyncObj pickles it (through snapshot()) into its dumps."""

    def __init__(self, state_machine: KVStateMachine) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.fsm = state_machine
        self.restores = 0

    @replicated
    def apply_entry(self, entry: bytes) -> dict[str, Any]:
        with self.lock:
            return self.fsm.apply(entry)

    def _serialize(self) -> dict[str, Any]:
        with self.lock:
            return {"fsm": self.fsm.snapshot()}

    def _deserialize(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.fsm.restore(data["fsm"])
            self.restores += 1
        log.info("restored a snapshot (%d since start)", self.restores)


class OperationFailed(Exception):
    def __init__(self, kind: str, message: str, leader: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.leader = leader


class KVNode:
    """The store: a PySyncObj replica plus the request handling of the HTTP protocol."""

    #: PySyncObj's settings for this node (broken stores in the project's tests vary them).
    raft_settings: dict[str, Any] = RAFT_SETTINGS

    def __init__(
        self,
        name: str,
        raft: str,
        peers: dict[str, str],
        data_dir: Path,
        snapshot_entries: int = SNAPSHOT_ENTRIES,
    ) -> None:
        self.name = name
        self.raft_address = raft
        self.names_by_address = {address: peer for peer, address in peers.items()}
        self.names_by_address[raft] = name
        data_dir.mkdir(parents=True, exist_ok=True)
        self.consumer = KVConsumer(self.make_state_machine())
        self.leadership_file = data_dir / "leadership.jsonl"
        self.led_terms = (
            [
                json.loads(line)["term"]
                for line in self.leadership_file.read_text().splitlines()
                if line.strip()
            ]
            if self.leadership_file.exists()
            else []
        )
        conf = SyncObjConf(
            journalFile=str(data_dir / "raft.journal"),
            fullDumpFile=str(data_dir / "raft.dump"),
            onStateChanged=self.on_state_changed,
            # Compact the log (take a snapshot) once it holds this many entries, so a follower
            # that misses more is sent the snapshot and restores it (fsm-determinism checks it).
            logCompactionMinEntries=snapshot_entries,
            **self.raft_settings,
        )
        self.raft = SyncObj(raft, list(peers.values()), conf, consumers=[self.consumer])

    def make_state_machine(self) -> KVStateMachine:
        return KVStateMachine()

    def on_state_changed(self, old: int, new: int) -> None:
        """Record each term this node becomes leader of, at that moment, in PySyncObj's own
        thread: getStatus() read from another thread can pair a stale role with a new term
        (PySyncObj raises the term before stepping down), so it cannot tell who led when."""
        if new != LEADER_STATE:
            return
        term = self.consumer._syncObj.raftCurrentTerm
        self.led_terms.append(term)
        with open(self.leadership_file, "a") as handle:
            handle.write(json.dumps({"term": term}) + "\n")

    # -- operations -------------------------------------------------------------------
    def execute(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one client operation; raise OperationFailed for errors."""
        if command.get("f") not in OPERATIONS:
            raise OperationFailed("unsupported", f"no operation {command.get('f')!r}")
        if command.get("level", "strong") not in LEVELS:
            raise OperationFailed("unsupported", f"no read level {command.get('level')!r}")
        if command.get("f") == "get" and command.get("level", "strong") == "stale":
            return self.read_local(command["key"])
        if command.get("f") == "scan":  # this member's own state; never through the log
            return self.scan_local(str(command.get("prefix", "")))
        return self.replicate(command, timeout)

    def read_local(self, key: str) -> dict[str, Any]:
        with self.consumer.lock:
            return {"value": self.consumer.fsm.data.get(key)}

    def scan_local(self, prefix: str) -> dict[str, Any]:
        with self.consumer.lock:
            items = {k: v for k, v in self.consumer.fsm.data.items() if k.startswith(prefix)}
        return {"items": items}

    def replicate(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send the command through the Raft log (strong reads too) and wait for its result."""
        entry = json.dumps(command, sort_keys=True).encode()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def on_result(result: Any, error: int) -> None:
            outcome["result"], outcome["error"] = result, error
            done.set()

        self.consumer.apply_entry(entry, callback=on_result)
        if not done.wait(timeout):
            raise OperationFailed("timeout", f"no commit within {timeout}s; outcome unknown")
        error = outcome["error"]
        if error == FAIL_REASON.SUCCESS:
            result: dict[str, Any] = outcome["result"]
            if "error" in result:
                raise OperationFailed("rejected", result.get("message", result["error"]))
            return result
        if error in DEFINITE_FAILURES:
            kind, message = DEFINITE_FAILURES[error]
            raise OperationFailed(kind, message, self.leader_name())
        raise OperationFailed("unknown", f"PySyncObj failure reason {error}; outcome unknown")

    def leader_name(self) -> str | None:
        leader = self.raft._getLeader()
        if leader is None:
            return None
        return self.names_by_address.get(getattr(leader, "address", str(leader)))

    def status(self) -> dict[str, Any]:
        raw = self.raft.getStatus()
        with self.consumer.lock:
            digest = self.consumer.fsm.digest()
            keys = len(self.consumer.fsm.data)
        return {
            "node": self.name,
            "role": ROLE_NAMES.get(raw["state"], "unknown"),
            "term": raw["raft_term"],
            "leader": self.leader_name(),
            "commit_index": raw["commit_idx"],
            "applied_index": raw["last_applied"],
            "digest": digest,
            "keys": keys,
            "led_terms": list(self.led_terms),
            "restores": self.consumer.restores,
        }

    def close(self) -> None:
        self.raft.destroy()


def make_handler(node: KVNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per request would drown the node's log

        def send_json(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path == "/v1/status":
                self.send_json(200, node.status())
            elif path == "/v1/health":
                self.send_json(200, {"ok": True})
            elif path == "/v1/info":
                self.send_json(200, INFO)
            else:
                self.send_json(404, {"error": "rejected", "message": f"no route {path}"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            try:
                command = json.loads(self.rfile.read(length))
                timeout = min(float(command.pop("timeout", 5.0)), 120.0)
            except (ValueError, TypeError) as error:
                self.send_json(400, {"error": "rejected", "message": f"bad request: {error}"})
                return
            if urlsplit(self.path).path != "/v1/op":
                self.send_json(404, {"error": "rejected", "message": "no such route"})
                return
            try:
                self.send_json(200, node.execute(command, timeout))
            except OperationFailed as failure:
                body = {"error": failure.kind, "message": str(failure), "leader": failure.leader}
                self.send_json(HTTP_STATUS.get(failure.kind, 500), body)
            except Exception as error:  # an unknown failure is indefinite by protocol
                log.exception("operation failed")
                self.send_json(500, {"error": "unknown", "message": repr(error)})

    return Handler


def watch_parent(parent_pid: int) -> None:
    """Exit when the harness dies, so a killed pytest never leaves nodes behind. A node
    started by the harness watches its own parent (a reused pid cannot fool that); one in
    a container (the Docker host) has the engine's shim as parent and watches the
    harness's pid instead, which it sees since containers share the host's pids."""
    direct = os.getppid() == parent_pid
    while True:
        if direct and os.getppid() != parent_pid:
            os._exit(3)
        if not direct:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass
        time.sleep(0.5)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--raft", required=True, help="ADDR:PORT for Raft traffic")
    parser.add_argument("--api", required=True, help="ADDR:PORT for the HTTP protocol")
    parser.add_argument("--peer", action="append", default=[], help="NAME=ADDR:PORT")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument(
        "--snapshot-entries",
        type=int,
        default=SNAPSHOT_ENTRIES,
        help=f"compact the log every this many entries (default {SNAPSHOT_ENTRIES})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, node_class: type[KVNode] = KVNode) -> None:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {arguments.name} %(levelname)s %(message)s"
    )
    if arguments.parent_pid is not None:
        threading.Thread(target=watch_parent, args=(arguments.parent_pid,), daemon=True).start()
    peers = dict(peer.split("=", 1) for peer in arguments.peer)
    node = node_class(
        arguments.name, arguments.raft, peers, arguments.data_dir, arguments.snapshot_entries
    )
    host, port = arguments.api.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(node))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("serving %s on http://%s, raft on %s", arguments.name, arguments.api, arguments.raft)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        node.close()
        log.info("stopped")


if __name__ == "__main__":
    main()
