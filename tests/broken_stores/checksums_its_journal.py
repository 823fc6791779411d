"""The fix of ``trusts_a_damaged_journal``: journal records with a CRC32, checked at start;
a node whose journal fails it exits instead of serving the damaged log."""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.pysyncobj_durability import checksum_the_journal, sync_before_acknowledging


class Adapter(PySyncObjAdapter):
    name = "fixed-checksums-its-journal"
    node_module = "broken_stores.checksums_its_journal"


if __name__ == "__main__":
    sync_before_acknowledging()
    checksum_the_journal()
    main()
