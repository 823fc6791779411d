"""The fix of ``acks_before_fsync``: PySyncObj with every journal change flushed, its meta
file, dump and their folders fsynced, and its compaction replacing the journal whole, before
it goes on (pysyncobj_durability); and with its follower deleting log entries only from the
first one that conflicts with an append (pysyncobj_log_matching): PySyncObj 0.3.17 also
drops entries it holds and has applied, which loses acknowledged writes across a restart of
its own (docs/adapters/pysyncobj.md)."""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.pysyncobj_durability import sync_before_acknowledging
from broken_stores.pysyncobj_log_matching import truncate_only_on_conflict


class Adapter(PySyncObjAdapter):
    name = "fixed-syncs-before-acknowledging"
    node_module = "broken_stores.syncs_before_acknowledging"


if __name__ == "__main__":
    sync_before_acknowledging()
    truncate_only_on_conflict()
    main()
