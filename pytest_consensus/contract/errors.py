"""The error taxonomy every adapter maps its store's failures onto.

As in Jepsen and Maelstrom, a *definite* failure means the operation did not and will
not take effect; an *indefinite* one means it may or may not have. Histories record
definite failures as ``fail`` and indefinite ones as ``info``. When in doubt, an adapter
raises an indefinite error: claiming "did not happen" wrongly makes the checkers lie.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of every error a Client operation may raise."""

    definite: bool = False
    kind: str = "unknown"


class DefiniteError(ConsensusError):
    """The operation did not take effect and never will."""

    definite = True
    kind = "definite"


class NotLeader(DefiniteError):
    """The node refused the request because it is not the leader."""

    kind = "not-leader"

    def __init__(self, message: str = "not leader", leader_hint: str | None = None) -> None:
        super().__init__(message)
        self.leader_hint = leader_hint


class Unavailable(DefiniteError):
    """The node could not even try (no leader known, connection refused, queue full)."""

    kind = "unavailable"


class Rejected(DefiniteError):
    """The store refused the request as invalid; retrying it will not help."""

    kind = "rejected"


class Unsupported(Rejected):
    """The store has no such operation or read level (the protocol's ``unsupported``): not
    applied, and no retry will change that. A test meeting it was given a capability the
    store does not have: the store's declaration, not the store, is wrong."""


class IndefiniteError(ConsensusError):
    """The outcome is unknown: the operation may take effect at any later time, or never."""

    definite = False
    kind = "indefinite"


class Timeout(IndefiniteError):
    """No answer within the operation's timeout."""

    kind = "timeout"


class NoAnswer(Timeout):
    """The node did not answer at all (the transport timed out), as opposed to answering
    that it had no outcome in time: a node that is up and reachable should answer."""

    kind = "no-answer"


class ConnectionLost(IndefiniteError):
    """The connection broke after the request was sent."""

    kind = "connection-lost"


class UnknownError(IndefiniteError):
    """Any error the adapter does not recognise; indefinite because it must be."""

    kind = "unknown"


class CapabilityMissing(Exception):
    """The adapter or host does not offer what a test or fault needs."""


class HarnessError(Exception):
    """The harness itself could not do its job (start a node, find an adapter, ...)."""


class ClusterSetupError(HarnessError):
    """The nodes started, but the adapter's set-up step after start-up (creating a bucket,
    a table, a user) failed; the message says which step and why."""


class NodeStartError(HarnessError):
    """A node process did not become ready; carries the tail of its log."""

    def __init__(self, node: str, reason: str, log_tail: str) -> None:
        message = f"node {node} failed to start: {reason}"
        if log_tail:
            message += f"\n--- last lines of {node}'s log ---\n{log_tail}"
        super().__init__(message)
        self.node = node
        self.log_tail = log_tail


class AdapterNotFound(HarnessError):
    """The name given on the command line is no installed adapter."""


class AdapterLoadError(HarnessError):
    """An adapter was found but could not be imported or instantiated."""


def harness_problem(error: BaseException, phase: str) -> str | None:
    """Why a test's error is the harness's own and no verdict on the store, or None.

    Every HarnessError is, except a node that does not start again in the test's body: it
    ran before, so a store that cannot restart (a data directory it cannot read back after
    SIGKILL) fails the test. A node that never started, in setup, is the harness's problem.
    """
    if not isinstance(error, HarnessError):
        return None
    if isinstance(error, NodeStartError) and phase == "call":
        return None
    return f"{type(error).__name__}: {error}"
