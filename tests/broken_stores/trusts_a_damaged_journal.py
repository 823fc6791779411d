"""Breaks consensus-safety with a damaged file: applies whatever its journal holds.

PySyncObj's journal records carry no checksum, so a flipped bit in a stored value is
applied on restart and served as if it had been written. Its fix is
``checksums_its_journal``, which refuses to start on a record whose checksum fails.
"""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.pysyncobj_durability import sync_before_acknowledging


class Adapter(PySyncObjAdapter):
    name = "broken-trusts-a-damaged-journal"
    node_module = "broken_stores.trusts_a_damaged_journal"


if __name__ == "__main__":
    sync_before_acknowledging()
    main()
