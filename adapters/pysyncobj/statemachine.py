"""The key-value state machine that every PySyncObj node applies its log to.

Pure and deterministic: the same entries in the same order give the same state and the
same results in any process and under any hash seed. It is also what the ``fsm``
capability hands to the white-box tests. Request ids make retried writes idempotent:
a write whose id was already applied returns the recorded result without applying again.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

#: How many recent request ids are remembered for deduplication. Eviction is in log
#: order, so every replica forgets the same ids at the same index.
REQUEST_ID_MEMORY = 100_000

WRITE_OPERATIONS = frozenset({"put", "append", "delete", "cas"})


class KVStateMachine:
    """A dict of string keys to string values, driven by JSON-encoded entries."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied_requests: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def apply(self, entry: bytes) -> dict[str, Any]:
        """Apply one log entry; a malformed entry gives an error result and changes nothing."""
        try:
            command = json.loads(entry)
            operation = command["f"]
            key = command["key"]
            if not isinstance(key, str) or operation not in WRITE_OPERATIONS | {"get"}:
                raise ValueError(f"bad operation {operation!r} on key {key!r}")
        except (ValueError, KeyError, TypeError) as error:
            return {"error": "malformed", "message": f"malformed entry: {error}"}
        request_id = command.get("request_id")
        if request_id is not None and operation in WRITE_OPERATIONS:
            if request_id in self.applied_requests:
                return self.applied_requests[request_id]
        result = self._apply_operation(operation, key, command)
        if request_id is not None and operation in WRITE_OPERATIONS and "error" not in result:
            self.applied_requests[request_id] = result
            while len(self.applied_requests) > REQUEST_ID_MEMORY:
                self.applied_requests.popitem(last=False)
        return result

    def _apply_operation(self, operation: str, key: str, command: dict[str, Any]) -> dict[str, Any]:
        if operation == "get":
            return {"value": self.data.get(key)}
        if operation == "put":
            value = command.get("value")
            if not isinstance(value, str):
                return {"error": "malformed", "message": "put needs a string value"}
            self.data[key] = value
            return {"ok": True}
        if operation == "append":
            value = command.get("value")
            if not isinstance(value, str):
                return {"error": "malformed", "message": "append needs a string value"}
            self.data[key] = self.data.get(key, "") + value
            return {"ok": True}
        if operation == "delete":
            return {"deleted": self.data.pop(key, None) is not None}
        expected, new = command.get("expected"), command.get("value")
        if not isinstance(new, str) or not (expected is None or isinstance(expected, str)):
            return {"error": "malformed", "message": "cas needs string values"}
        if self.data.get(key) != expected:
            return {"swapped": False, "value": self.data.get(key)}
        self.data[key] = new
        return {"swapped": True}

    def snapshot(self) -> bytes:
        """A point-in-time copy: later applies do not change the returned bytes."""
        return json.dumps(
            {"data": self.data, "requests": list(self.applied_requests.items())},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    def restore(self, data: bytes) -> None:
        """Replace (never merge) the whole state with a snapshot's."""
        decoded = json.loads(data)
        self.data = dict(decoded["data"])
        self.applied_requests = OrderedDict((k, v) for k, v in decoded["requests"])

    def digest(self) -> str:
        """A hash of the user-visible state, equal on replicas that agree."""
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    # PySyncObj pickles its consumers' attributes into its full dump; routing pickling
    # through snapshot/restore means the dump on disk is exactly our snapshot format.
    def __getstate__(self) -> bytes:
        return self.snapshot()

    def __setstate__(self, state: bytes) -> None:
        self.restore(state)
