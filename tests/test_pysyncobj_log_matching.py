"""The log-matching fix the durable PySyncObj twins carry (broken_stores/
pysyncobj_log_matching.py): an append whose entries this follower already holds must leave
its log alone, one that conflicts must cut it from the first conflict, and the commit index
must stop at the last entry the append covers."""

from __future__ import annotations

from typing import Any

from broken_stores.pysyncobj_log_matching import _without_held_prefix

#: A follower's log: (command, index, term), first entry 10 (older ones compacted).
LOG = [(b"", 10, 1), (b"a", 11, 1), (b"b", 12, 2), (b"c", 13, 2), (b"d", 14, 2)]


def append(previous: int, previous_term: int, entries: list[Any], commit: int) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": 2,
        "prevLogIdx": previous,
        "prevLogTerm": previous_term,
        "entries": entries,
        "commit_index": commit,
    }


def test_a_stale_append_of_entries_held_keeps_the_tail_and_commits_only_what_it_covers() -> None:
    message = append(10, 1, [(b"a", 11, 1), (b"b", 12, 2)], commit=14)
    rewritten, keep_tail = _without_held_prefix(LOG, message)
    assert keep_tail
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"], rewritten["entries"]) == (12, 2, [])
    assert rewritten["commit_index"] == 12
    assert message["entries"] == [(b"a", 11, 1), (b"b", 12, 2)], "the received message is kept"


def test_a_heartbeat_behind_the_log_keeps_the_tail() -> None:
    rewritten, keep_tail = _without_held_prefix(LOG, append(12, 2, [], commit=12))
    assert keep_tail
    assert rewritten["prevLogIdx"] == 12
    assert rewritten["commit_index"] == 12


def test_a_conflicting_entry_cuts_the_log_from_there() -> None:
    message = append(11, 1, [(b"b", 12, 2), (b"x", 13, 3), (b"y", 14, 3)], commit=14)
    rewritten, keep_tail = _without_held_prefix(LOG, message)
    assert not keep_tail
    assert (rewritten["prevLogIdx"], rewritten["prevLogTerm"]) == (12, 2)
    assert rewritten["entries"] == [(b"x", 13, 3), (b"y", 14, 3)]
    assert rewritten["commit_index"] == 14


def test_entries_past_the_log_are_appended_after_the_held_ones() -> None:
    message = append(13, 2, [(b"d", 14, 2), (b"e", 15, 2)], commit=15)
    rewritten, keep_tail = _without_held_prefix(LOG, message)
    assert not keep_tail
    assert (rewritten["prevLogIdx"], rewritten["entries"]) == (14, [(b"e", 15, 2)])


def test_an_append_this_follower_cannot_match_is_left_to_pysyncobj_to_reject() -> None:
    for message in (append(13, 9, [], commit=13), append(20, 2, [], commit=20)):
        rewritten, keep_tail = _without_held_prefix(LOG, message)
        assert rewritten is message
        assert not keep_tail
