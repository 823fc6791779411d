"""Breaks consensus-safety across a crash of every node: each node keeps its current term
and the vote it cast only in memory (its journal persists the log, but not the term and the
vote, which Raft requires on disk before any vote is sent). After a restart a node comes back
at the term of its last log entry with no vote cast, so it can vote a second time in a term
it already voted in, and two candidates can win one term: one before the crash, one after.
"""

from __future__ import annotations

from typing import Any

from pysyncobj import journal

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main


def keep_term_and_vote_in_memory() -> None:
    """Make every file journal of this process forget term and vote at exit."""

    def set_current_term(self: Any, term: int, voted_for: Any) -> None:
        self.term_in_memory = (term, voted_for)

    journal.FileJournal.setCurrentTerm = set_current_term
    journal.FileJournal.getCurrentTerm = lambda self: getattr(self, "term_in_memory", (0,))[0]
    journal.FileJournal.getVotedForNodeId = lambda self: getattr(self, "term_in_memory", (0, None))[
        1
    ]


class Adapter(PySyncObjAdapter):
    name = "broken-term-and-vote-in-memory"
    node_module = "broken_stores.term_and_vote_in_memory"


if __name__ == "__main__":
    keep_term_and_vote_in_memory()
    main()
