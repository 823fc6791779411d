"""Breaks consensus-safety across a power cut: acknowledges writes it never synced.

This is PySyncObj 0.3.17 as shipped: its journal is written through ``mmap`` and never
flushed, and its term and vote are renamed into place unsynced, so a node that loses
power comes back without the log tail (and its term) it acknowledged. Its fixed twin is
``syncs_before_acknowledging``.
"""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter


class Adapter(PySyncObjAdapter):
    name = "broken-acks-before-fsync"
