"""PySyncObj's follower truncates entries it already holds; put back Raft's rule for the
project's durable twins.

PySyncObj 0.3.17's follower deletes every entry after an append's ``prevLogIdx`` whenever
it holds more than that, even when the entries it holds match the leader's
(``syncobj.py``, the ``append_entries`` branch of ``__onMessageReceived``; it logs
``truncating already-applied log entries``). Its leader sends appends ahead of the answers
and, after a rejection, resends from an earlier index in batches limited by size, so under
load a follower can receive an append covering less than it already holds, drop committed
entries the leader has counted it for, and a majority without them can then elect a leader
that never had them (docs/adapters/pysyncobj.md). Raft (Figure 2, AppendEntries step 3)
deletes only from the first entry that conflicts, and commits no further than the last
entry the append covers. :func:`truncate_only_on_conflict` makes this process's PySyncObj
follow that rule, so the twins that fix its durability are compared on durability alone.
"""

from __future__ import annotations

import logging
from typing import Any

from pysyncobj import syncobj

_TRUNCATION_LOG = "truncating already-applied log entries"


def _held_term(log: Any, index: int) -> int | None:
    """The term of the entry this follower holds at ``index``, or None if it holds none."""
    first = log[0][1]
    last = log[-1][1]
    if index < first or index > last:
        return None
    entry = log[index - first]
    return int(entry[2])


def _without_held_prefix(log: Any, message: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The append with the entries this follower already holds (same index and term)
    removed, and whether its log tail must be kept (nothing in the append conflicts)."""
    entries = list(message.get("entries") or [])
    previous = message["prevLogIdx"]
    if previous is None or _held_term(log, previous) != message["prevLogTerm"]:
        return message, False  # PySyncObj's own rejection path answers this one
    held = 0
    for _command, index, term in entries:
        if _held_term(log, index) != term:
            break
        held += 1
    covered_to = entries[-1][1] if entries else previous
    rewritten = dict(message)
    if held:
        rewritten["prevLogIdx"] = entries[held - 1][1]
        rewritten["prevLogTerm"] = entries[held - 1][2]
        rewritten["entries"] = entries[held:]
    # Raft: commit no further than the last entry this append covers; anything past it in
    # this follower's log may be from another term.
    rewritten["commit_index"] = min(message["commit_index"], covered_to)
    return rewritten, held == len(entries)


class _DropTruncationWarning(logging.Filter):
    """Hides PySyncObj's truncation warning for appends whose tail is kept: nothing is
    truncated then, and the warning would be false evidence in the node's log."""

    keeping_tail = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.keeping_tail and str(record.msg).startswith(_TRUNCATION_LOG))


def truncate_only_on_conflict() -> None:
    """Make this process's PySyncObj follower delete log entries only from the first one
    that conflicts with an append, as Raft requires, and cap its commit index at the last
    entry the append covers."""
    on_message = syncobj.SyncObj._SyncObj__onMessageReceived
    delete_from = syncobj.SyncObj._SyncObj__deleteEntriesFrom
    warning_filter = _DropTruncationWarning()
    syncobj.logger.addFilter(warning_filter)

    def on_message_received(self: Any, node: Any, message: dict[str, Any]) -> Any:
        if (
            message.get("type") != "append_entries"
            or "prevLogIdx" not in message
            or message.get("transmission") is not None
        ):
            return on_message(self, node, message)
        rewritten, keep_tail = _without_held_prefix(self._SyncObj__raftLog, message)
        self._keep_log_tail = keep_tail
        warning_filter.keeping_tail = keep_tail
        try:
            return on_message(self, node, rewritten)
        finally:
            self._keep_log_tail = False
            warning_filter.keeping_tail = False

    def delete_entries_from(self: Any, from_index: int) -> Any:
        if getattr(self, "_keep_log_tail", False):
            return None
        return delete_from(self, from_index)

    syncobj.SyncObj._SyncObj__onMessageReceived = on_message_received
    syncobj.SyncObj._SyncObj__deleteEntriesFrom = delete_entries_from
