"""Breaks fsm-determinism on a real cluster (black box, no `fsm` capability): restoring a
snapshot merges its keys into the replica's old state instead of replacing it, as the Go
store of consensus-rules.md does (it decodes into the existing map). A follower that
catches up through a snapshot keeps keys the majority deleted."""

from __future__ import annotations

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.adapters.pysyncobj.node import KVNode, main
from pytest_consensus.adapters.pysyncobj.statemachine import KVStateMachine
from pytest_consensus.contract import Capability

from broken_stores.fsm_bugs import RestoreMerges


class RestoreMergesNode(KVNode):
    def make_state_machine(self) -> KVStateMachine:
        return RestoreMerges()


class Adapter(PySyncObjAdapter):
    name = "broken-restore-merges"
    node_module = "broken_stores.restore_merges"
    capabilities = PySyncObjAdapter.capabilities - {Capability.FSM}


if __name__ == "__main__":
    main(node_class=RestoreMergesNode)
