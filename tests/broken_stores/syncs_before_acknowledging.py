"""The fix of ``acks_before_fsync``: PySyncObj with every journal change flushed, and its
meta file, dump and their folders fsynced, before it goes on (pysyncobj_durability)."""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.pysyncobj_durability import sync_before_acknowledging


class Adapter(PySyncObjAdapter):
    name = "fixed-syncs-before-acknowledging"
    node_module = "broken_stores.syncs_before_acknowledging"


if __name__ == "__main__":
    sync_before_acknowledging()
    main()
