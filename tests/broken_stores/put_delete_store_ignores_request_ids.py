"""Breaks partition-retries on a store with only put and delete (no append, no cas), like the
Go store of consensus-rules.md: it ignores request ids, so a put retried after its answer
was lost applies again and overwrites whatever another client wrote in between."""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import main
from pytest_consensus.contract import Capability

from broken_stores.retries_without_request_ids import ForgetsRequestIds


class Adapter(PySyncObjAdapter):
    name = "broken-put-delete-store-ignores-request-ids"
    node_module = "broken_stores.put_delete_store_ignores_request_ids"
    capabilities = PySyncObjAdapter.capabilities - {
        Capability.APPEND,
        Capability.CAS,
        Capability.FSM,
    }


if __name__ == "__main__":
    main(node_class=ForgetsRequestIds)
