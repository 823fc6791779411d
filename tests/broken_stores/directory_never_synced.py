"""Breaks consensus-safety across a power cut: syncs its log's data, never its folder.

PySyncObj with every journal write flushed and the meta file fsynced before its rename,
but no fsync of the folder after the journal is created or the meta file renamed into it:
the names are not durable, so after a power cut the files are gone (POSIX: an fsync of a
file does not make its directory entry durable). Its fix is ``syncs_before_acknowledging``;
like it, it keeps log entries an append does not conflict with (pysyncobj_log_matching), so
the folder is the only difference between them.
"""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.pysyncobj_durability import sync_before_acknowledging
from broken_stores.pysyncobj_log_matching import truncate_only_on_conflict


class Adapter(PySyncObjAdapter):
    name = "broken-directory-never-synced"
    node_module = "broken_stores.directory_never_synced"


if __name__ == "__main__":
    sync_before_acknowledging(directories=False)
    truncate_only_on_conflict()
    main()
