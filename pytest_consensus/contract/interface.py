"""The adapter contract: what a store author implements to be certified.

Pure Python, importable without pytest. A store provides an :class:`Adapter` (registered
under the entry-point group ``pytest_consensus.adapters`` or named ``module:attr``) that
starts a :class:`Cluster` of :class:`Node` objects on hosts chosen by the harness, and a
:class:`Client` per node. Operations fail only with the errors of
:mod:`pytest_consensus.contract.errors`. See docs/writing-an-adapter.md.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pytest_consensus.contract.errors import CapabilityMissing

if TYPE_CHECKING:
    from pytest_consensus.contract.remote_process import RemoteMachine

#: The snapshot interval (in log entries) adapters give their nodes: small, so that a follower
#: that misses a few hundred writes is sent a snapshot, and restore is exercised every run.
SNAPSHOT_ENTRIES = 100


class Capability(str, enum.Enum):
    """What an adapter declares it can do; tests that need more are reported N/A."""

    STRONG_READ = "strong"
    STALE_READ = "stale"
    CAS = "cas"
    APPEND = "append"
    DELETE = "delete"
    KILL = "kill"
    PAUSE = "pause"
    RESTART = "restart"
    LEADER = "leader"
    DIGEST = "digest"
    FSM = "fsm"
    MEMBERSHIP = "membership"
    REQUEST_IDS = "request-ids"
    #: ``Client.scan``: every key under a prefix as the member asked holds it, in one call.
    SCAN = "scan"
    #: ``Node.digest_point`` / ``Node.digest_at``: a digest of the state as it stood at an
    #: earlier point every member shares (etcd: HashKV at a revision), so members can be
    #: compared while writes stream in and faults run.
    DIGEST_AT = "digest-at"

    @classmethod
    def parse(cls, name: str) -> Capability:
        """Turn a marker argument into a capability, listing the valid names on error."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown capability {name!r}; valid: {valid}") from None


class ReadLevel(str, enum.Enum):
    """Read consistency levels: strong is linearizable, stale may lag but never invents."""

    STRONG = "strong"
    STALE = "stale"


class Role(str, enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NodeStatus:
    """What a node reports about itself; fields a store cannot observe stay None."""

    node: str
    role: Role = Role.UNKNOWN
    term: int | None = None
    leader: str | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    digest: str | None = None
    #: Every term this node has led, as the node itself recorded when it became leader
    #: (kept across restarts); None where the store does not keep such a history.
    led_terms: tuple[int, ...] | None = None
    #: How many snapshots this node's process has restored since it started (its own at
    #: start-up, or one the leader sent it); None where the store does not say. Failure
    #: messages use it to name the likely cause of a divergence.
    restores: int | None = None


@dataclass(frozen=True)
class PointDigest:
    """A member's digest of its state as it stood at ``point`` of its history.

    Two members' digests at one point must be equal; ``basis`` names what else the digest
    depends on, and only digests with the same basis are compared (etcd: the revision the
    member compacted to, since HashKV leaves out what compaction removed)."""

    point: int
    digest: str
    basis: str = ""


@dataclass(frozen=True)
class HostSpec:
    """Where the harness wants node ``name`` to live.

    ``address`` is an IP the node binds to (ports are the adapter's choice, since every
    node has its own address); ``command_prefix`` must be put in front of the node's
    command line (for example ``ip netns exec NS``) so it runs on that host. On the Docker
    host, ``container`` names the container to create instead, and ``container_network``
    is its Docker network mode: a network name (join it with ``address`` as the fixed IP)
    or ``container:HOLDER`` (share that container's network namespace, which already has
    ``address``; how the host keeps faults across restarts). Adapters that cannot run in
    containers refuse it. On the SSH host, ``machine`` is the machine the node runs on
    (``data_dir`` is a path there; ``log_dir`` is here, where its log is copied):
    ``node_process`` starts the node's command there.
    """

    name: str
    address: str
    data_dir: Path
    log_dir: Path
    command_prefix: tuple[str, ...] = ()
    container: str | None = None
    container_network: str | None = None
    machine: RemoteMachine | None = None


class StateMachine(Protocol):
    """The white-box view of a store's FSM (capability ``fsm``)."""

    def apply(self, entry: bytes) -> Any: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class Client(abc.ABC):
    """One client bound to one node. Every call has a timeout in seconds.

    ``request_id`` identifies a logical write across retries: a store that honours it
    applies the write at most once however often it is retried.
    """

    node: str

    @abc.abstractmethod
    def put(self, key: str, value: str, *, timeout: float, request_id: str | None = None) -> None:
        """Write ``value`` under ``key``."""

    @abc.abstractmethod
    def get(self, key: str, *, level: ReadLevel = ReadLevel.STRONG, timeout: float) -> str | None:
        """Read ``key`` at ``level``; None when the key is absent."""

    def delete(self, key: str, *, timeout: float, request_id: str | None = None) -> None:
        """Remove ``key`` (capability ``delete``)."""
        raise CapabilityMissing("delete")

    def append(
        self, key: str, value: str, *, timeout: float, request_id: str | None = None
    ) -> None:
        """Append ``value`` to the string under ``key`` (capability ``append``)."""
        raise CapabilityMissing("append")

    def cas(
        self,
        key: str,
        expected: str | None,
        new: str,
        *,
        timeout: float,
        request_id: str | None = None,
    ) -> bool:
        """Set ``key`` to ``new`` if it holds ``expected``; False when it did not match."""
        raise CapabilityMissing("cas")

    def scan(self, prefix: str, *, timeout: float) -> dict[str, str]:
        """Every key starting with ``prefix`` and its value, from this member's own state
        (the ``stale`` level: no round to the leader) (capability ``scan``). The crash loop
        checks each member's copy of tens of thousands of writes; key by key, that reading
        would take longer than the loop."""
        raise CapabilityMissing("scan")

    def close(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Release connections; the default holds none."""


class Node(abc.ABC):
    """One member of a cluster, running as its own OS process on its own host."""

    name: str
    host: HostSpec

    @abc.abstractmethod
    def start(self) -> None:
        """Start the process with whatever data its data directory holds."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after a grace period)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Crash the process with SIGKILL; its data directory stays."""

    def restart(self) -> None:
        """Start again after a stop or kill, keeping its data."""
        if self.is_running():
            self.kill()
        self.start()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP) (capability ``pause``)."""
        raise CapabilityMissing("pause")

    def resume(self) -> None:
        """Unfreeze the process (SIGCONT) (capability ``pause``)."""
        raise CapabilityMissing("pause")

    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the process is alive (a paused process is alive)."""

    @abc.abstractmethod
    def status(self, timeout: float) -> NodeStatus:
        """Ask the node for its role, term, leader, indexes and digest."""

    def quick_status(self, timeout: float) -> NodeStatus:
        """The status without its costly parts (``digest`` may be None): what start-up polls
        and leader waits read several times a second. A digest that hashes the whole state
        (etcd's HashKV) takes seconds on a large store and slows the member it asks; only
        the replica comparisons need it. The default is :meth:`status`."""
        return self.status(timeout)

    def digest_point(self, timeout: float) -> int:
        """The latest point of this member's history it can digest (capability
        ``digest-at``; etcd: its current revision). Points are the same for every member:
        point P on one member and point P on another must describe the same state."""
        raise CapabilityMissing("digest-at")

    def digest_at(self, point: int, timeout: float) -> PointDigest:
        """A digest of the state as it stood at ``point`` (capability ``digest-at``). Raise
        a :mod:`~pytest_consensus.contract.errors` error where the member cannot (the point
        is compacted away or not reached yet): that member is left out of the comparison."""
        raise CapabilityMissing("digest-at")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the node's log, for error messages."""
        return ""


class Cluster(abc.ABC):
    """A running set of nodes; a context manager that tears everything down on exit."""

    nodes: Sequence[Node]

    @abc.abstractmethod
    def client(self, node: Node) -> Client:
        """A new client bound to ``node``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every node and release every resource; safe to call twice."""

    def node(self, name: str) -> Node:
        for candidate in self.nodes:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no node named {name!r}; nodes: {[n.name for n in self.nodes]}")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class AdapterInfo:
    """What the certificate says about the store under test."""

    name: str
    version: str
    capabilities: frozenset[Capability] = field(default_factory=frozenset)


class Adapter(abc.ABC):
    """A store's entry point into the suite.

    Subclasses set ``name`` and ``capabilities`` and implement :meth:`version` and
    :meth:`start_cluster`. The harness instantiates the class with the adapter options
    the user passed (``--consensus-adapter-option KEY=VALUE``).
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Ports every node binds on its own address; the host checks them free on each
    #: address before a cluster starts (a store of a previous run still holding one is
    #: found there, not as a node that cannot start).
    ports: ClassVar[tuple[int, ...]] = ()
    #: How many applied entries at most lie between two snapshots (log compactions) of a
    #: node this adapter starts, so that a follower kept away for longer than that catches
    #: up by installing a snapshot. Adapters configure their nodes with
    #: :data:`SNAPSHOT_ENTRIES` where the store allows it; None when the store decides.
    snapshot_entries: ClassVar[int | None] = None
    #: Which files under a node's data directory hold the store's data (log, snapshots,
    #: state), as glob patterns relative to it; the damaged-file tests pick from these.
    #: The default is every file.
    data_files: ClassVar[tuple[str, ...]] = ("**/*",)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options: Mapping[str, str] = dict(options or {})

    @abc.abstractmethod
    def version(self) -> str:
        """The store's version, as the certificate should print it."""

    @abc.abstractmethod
    def start_cluster(self, hosts: Sequence[HostSpec]) -> Cluster:
        """Start one node per host and return once every process is up.

        If a node fails to start, stop what was started and raise
        :class:`~pytest_consensus.contract.errors.NodeStartError` with its log.
        """

    def with_frequent_snapshots(self) -> Adapter:
        """This adapter with its store set to snapshot (compact its log) often: the crash
        loop runs on it, since a member killed while it snapshots is where apply and
        persist race. The default is the adapter unchanged; override it where the store
        has such a setting, and leave a value the user chose alone."""
        return self

    def snapshot_setting(self) -> str:
        """How often this adapter's nodes snapshot, in words, for the crash loop's report."""
        if self.snapshot_entries is None:
            return "snapshots as the store decides"
        return f"a snapshot every {self.snapshot_entries} entries"

    def fsm_factory(self) -> Callable[[], StateMachine]:
        """Fresh state machines for white-box FSM tests (capability ``fsm``)."""
        raise CapabilityMissing("fsm")

    def fsm_encode(self, f: str, key: str, value: Any) -> bytes:
        """The log entry the store writes for an operation, for white-box FSM tests.

        The default is the JSON the project's own state machine reads:
        ``{"f": "put", "key": "k", "value": "v"}`` (a cas puts ``expected`` beside
        ``value``). Override it for your store's entry format."""
        command: dict[str, Any] = {"f": f, "key": key, "value": value}
        if f == "cas":
            command["expected"], command["value"] = value
        return json.dumps(command, sort_keys=True).encode()

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def info(self) -> AdapterInfo:
        return AdapterInfo(self.name, self.version(), frozenset(self.capabilities))
