"""A tinystore node: a PySyncObj replica of a dict, with its own small HTTP API.

PUT /keys/K (body: value), DELETE /keys/K, GET /keys/K?read=linear|local, GET /state.
A write may carry a Request-Id header: a write whose id was already applied is not applied
again (a client retrying a write whose answer it lost must not write twice).
Errors: 503 "no leader" (nothing happened), 504 "timeout" (may have happened).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

#: How many request ids of applied writes each replica remembers.
REMEMBERED_REQUESTS = 100_000


class TinyKV(SyncObj):
    def __init__(self, me: str, peers: list[str], data_dir: str) -> None:
        conf = SyncObjConf(
            journalFile=f"{data_dir}/journal",
            fullDumpFile=f"{data_dir}/dump",
            appendEntriesUseBatch=False,
            commandsWaitLeader=False,
            leaderFallbackTimeout=2.0,
            raftMinTimeout=0.6,
            raftMaxTimeout=1.2,
            connectionRetryTime=0.5,
            useFork=False,
        )
        self.data: dict[str, str] = {}
        # Request ids of applied writes (oldest first), replicated with the data, so that a
        # client's retry of a write whose answer it lost is not applied a second time.
        self.applied: dict[str, None] = {}
        super().__init__(me, peers, conf)

    def first_time(self, request_id: str | None) -> bool:
        if request_id is None:
            return True
        if request_id in self.applied:
            return False
        self.applied[request_id] = None
        if len(self.applied) > REMEMBERED_REQUESTS:
            del self.applied[next(iter(self.applied))]
        return True

    @replicated
    def set(self, key: str, value: str, request_id: str | None = None) -> None:
        if self.first_time(request_id):
            self.data[key] = value

    @replicated
    def remove(self, key: str, request_id: str | None = None) -> None:
        if self.first_time(request_id):
            self.data.pop(key, None)

    @replicated
    def read(self, key: str) -> str | None:  # through the log: linearizable
        return self.data.get(key)


def call(method, *args, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    done, box = threading.Event(), {}
    method(*args, callback=lambda result, error: (box.update(r=result, e=error), done.set()))
    if not done.wait(timeout):
        return 504, "timeout"
    if box["e"] == FAIL_REASON.SUCCESS:
        return 200, box["r"]
    if box["e"] in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER, FAIL_REASON.QUEUE_FULL):
        return 503, "no leader"
    return 504, "timeout"


def serve(store: TinyKV, host: str, port: int, me: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/state":
                status = store.getStatus()
                leader = store._getLeader()
                digest = hashlib.sha256(json.dumps(store.data, sort_keys=True).encode())
                self.reply(
                    200,
                    {
                        "me": me,
                        "leader": leader.address if leader else None,
                        "term": status["raft_term"],
                        "applied": status["last_applied"],
                        "digest": digest.hexdigest()[:16],
                    },
                )
                return
            key = url.path.removeprefix("/keys/")
            if parse_qs(url.query).get("read", ["linear"])[0] == "local":
                self.reply(200, store.data.get(key))
            else:
                self.reply(*call(store.read, key))

        def do_PUT(self) -> None:  # noqa: N802
            value = self.rfile.read(int(self.headers["Content-Length"])).decode()
            key, request_id = self.path.removeprefix("/keys/"), self.headers.get("Request-Id")
            self.reply(*call(store.set, key, value, request_id))

        def do_DELETE(self) -> None:  # noqa: N802
            key, request_id = self.path.removeprefix("/keys/"), self.headers.get("Request-Id")
            self.reply(*call(store.remove, key, request_id))

    ThreadingHTTPServer((host, port), Handler).serve_forever()


def exit_with_parent(parent: int) -> None:
    """Never outlive the process that started us (the test harness)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--me", required=True)  # host:raft_port
    parser.add_argument("--http", required=True)  # host:port
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--data", required=True)
    arguments = parser.parse_args()
    os.makedirs(arguments.data, exist_ok=True)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    store = TinyKV(arguments.me, arguments.peer, arguments.data)
    host, port = arguments.http.rsplit(":", 1)
    serve(store, host, int(port), arguments.me)


if __name__ == "__main__":
    main()
