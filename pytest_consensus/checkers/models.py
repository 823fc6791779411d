"""Sequential specifications the linearizability checker tests histories against.

A model is a small class: which operations constrain the history, how to partition them
(operations on different keys are independent), the initial state, and ``step``, which
returns the state after an operation or ``ILLEGAL`` when the operation's observed result
is impossible in that state. States must be hashable and compare by value. Write your own
by subclassing :class:`Model` (see docs/checkers.md).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from pytest_consensus.checkers.operations import Operation


class Illegal:
    """The one value ``step`` returns for an impossible operation."""

    _instance: ClassVar[Illegal | None] = None

    def __new__(cls) -> Illegal:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ILLEGAL"


ILLEGAL = Illegal()


class ModelError(ValueError):
    """The history holds an operation the model does not know."""


class Model:
    """Base class: a single register of any hashable value, partitioned by key."""

    name: ClassVar[str] = "model"
    #: Operation names this model understands; others are an error, not silently ignored.
    operations: ClassVar[frozenset[str]] = frozenset()
    #: Operations that are ignored: their level promises nothing linearizable.
    ignored: ClassVar[frozenset[str]] = frozenset({"stale-get", "stale-read"})
    #: Operations that never change the state, so an unknown outcome tells nothing.
    reads: ClassVar[frozenset[str]] = frozenset({"get", "read"})

    def init(self) -> Hashable:
        return None

    def partition(self, operation: Operation) -> Hashable:
        key: Hashable = operation.key
        return key

    def include(self, operation: Operation) -> bool:
        """Whether an operation constrains the history.

        Definite failures took no effect (a failed cas that observed a mismatch is the
        exception: it saw a value); reads with unknown results tell nothing.
        """
        if operation.f in self.ignored:
            return False
        if operation.f not in self.operations:
            known = ", ".join(sorted(self.operations | self.ignored))
            raise ModelError(
                f"the {self.name} model does not know operation {operation.f!r} "
                f"(knows: {known}); choose another --model"
            )
        if operation.status == "fail":
            return operation.f == "cas" and operation.error in (None, "mismatch")
        if operation.status == "info":
            return operation.f not in self.reads
        return True

    def step(self, state: Any, operation: Operation) -> Any:
        raise NotImplementedError

    def is_observation(self, operation: Operation) -> bool:
        """True when the operation leaves the state unchanged in *every* state where it is
        legal (a read, a cas that failed its compare). The checker then places it as soon
        as it is legal without exploring alternatives; claiming this for an operation that
        can change the state would make the checker wrong."""
        if operation.f in self.reads:
            return True
        return operation.f == "cas" and operation.status == "fail"

    def is_blind(self, operation: Operation) -> bool:
        """True when the operation's effect and result do not depend on the state (a plain
        write). The checker then never places an operation of unknown outcome right before
        it: such a write would be overwritten unseen, so leaving it out is equivalent."""
        return False

    def is_monotone(self, operation: Operation) -> bool:
        """True for operations that can only move the state forward in a way
        :meth:`could_reach` understands (an append only extends a string)."""
        return False

    def could_reach(self, state: Any, observation: Operation) -> bool:
        """Whether monotone operations alone could lead from ``state`` to one where
        ``observation`` is legal. False lets the checker abandon a branch early when no
        other kind of operation is left to place before the observation must be; True
        (the default) is always safe."""
        return True

    def describe(self, state: Any) -> str:
        return repr(state)


class RegisterModel(Model):
    """One register per key (initially nil): read/get, write/put, delete."""

    name = "register"
    operations = frozenset({"read", "get", "write", "put", "delete"})

    def is_blind(self, operation: Operation) -> bool:
        return operation.f in ("write", "put", "delete")

    def step(self, state: Any, operation: Operation) -> Any:
        f = operation.f
        if f == "read" or f == "get":
            return state if operation.output == state else ILLEGAL
        if f == "write" or f == "put":
            return operation.value
        if f == "delete":
            return None
        raise ModelError(f"{self.name} cannot step {f!r}")


def _freeze(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


class CasRegisterModel(RegisterModel):
    """A register with compare-and-set; a cas value is ``[expected, new]``.

    An ok cas needs the expected value; a failed one saw something else; one with an
    unknown outcome takes effect exactly when the compare matches.
    """

    name = "cas-register"
    operations = RegisterModel.operations | {"cas"}

    def step(self, state: Any, operation: Operation) -> Any:
        f = operation.f
        if f == "read" or f == "get":  # the register's own steps, inline: the hot path
            return state if operation.output == state else ILLEGAL
        if f == "write" or f == "put":
            return operation.value
        if f != "cas":
            return super().step(state, operation)
        expected, new = operation.value
        matches = state == _freeze(expected)
        if operation.status == "ok":
            return _freeze(new) if matches else ILLEGAL
        if operation.status == "fail":
            return state if not matches else ILLEGAL
        return _freeze(new) if matches else state


class KVModel(CasRegisterModel):
    """A string per key, initially empty (an absent key reads as ""), with append."""

    name = "kv"
    operations = CasRegisterModel.operations | {"append"}

    def init(self) -> Hashable:
        return ""

    def is_monotone(self, operation: Operation) -> bool:
        return operation.f == "append"

    def could_reach(self, state: Any, observation: Operation) -> bool:
        if observation.f == "get" or observation.f == "read":
            output = observation.output if observation.output is not None else ""
            return bool(output.startswith(state))
        return True

    def step(self, state: Any, operation: Operation) -> Any:
        f = operation.f
        if f == "get" or f == "read":
            output = operation.output
            return state if (output if output is not None else "") == state else ILLEGAL
        if f == "put" or f == "write":
            value = operation.value
            return value if value is not None else ""
        if f == "append":
            return state + operation.value
        if f == "delete":
            return ""
        expected, new = operation.value
        matches = state == (expected if expected is not None else "")
        if operation.status == "ok":
            return new if matches else ILLEGAL
        if operation.status == "fail":
            return state if not matches else ILLEGAL
        return new if matches else state


MODELS: dict[str, type[Model]] = {
    "register": RegisterModel,
    "cas-register": CasRegisterModel,
    "kv": KVModel,
}


def model_named(name: str) -> Model:
    try:
        return MODELS[name]()
    except KeyError:
        raise ModelError(f"unknown model {name!r}; valid: {', '.join(MODELS)}") from None
