"""The run's effective settings: one frozen object, built from options and ini keys."""

from __future__ import annotations

import shlex
import zlib
from dataclasses import dataclass, field

from pytest_consensus.plugin.profiles import DEFAULT_PROFILE, PROFILES, Profile
from pytest_consensus.plugin.sharding import Shard


@dataclass(frozen=True)
class Settings:
    """Everything the fixtures need to know about the run, and where each value came from."""

    adapters: tuple[str, ...] = ()
    nodes: int = 3
    seed: int = 0
    seed_source: str = "random"
    adapter_options: dict[str, str] = field(default_factory=dict)
    #: Per-operation timeout: generous, since time is not what most tests measure.
    operation_timeout: float = 5.0
    #: How long a cluster may take to elect its first leader.
    leader_timeout: float = 30.0
    #: Where nodes live: "netns" (a namespace per node) or "loopback".
    host: str = "loopback"
    #: Why the host is not "netns" (tests needing network faults are n/a for this reason).
    host_reason: str | None = "not configured"
    #: A fault schedule file to replay instead of generating schedules.
    replay: str | None = None
    #: How hard the run pushes: schedule length, rounds, searched examples.
    profile: Profile = PROFILES[DEFAULT_PROFILE]
    #: Schedules a Hypothesis search tries before it gives up finding a failure (the
    #: profile's figure unless --consensus-search-examples overrides it).
    search_examples: int = PROFILES[DEFAULT_PROFILE].search_examples
    #: Seconds between live progress lines during a long test; 0 turns them off.
    progress_interval: float = 5.0
    #: Seconds a search may spend shrinking a failing schedule.
    search_shrink_budget: float = 120.0
    #: The share of the selected tests this run makes (--consensus-shard), or None: all.
    shard: Shard | None = None
    #: The SSH host's inventory file (--consensus-ssh-inventory), absolute.
    ssh_inventory: str | None = None

    def command(self, adapter: str, *, replay: str | None = None, test: str | None = None) -> str:
        """The ``pytest`` command that certifies ``adapter`` as this run did: every option
        that changes what runs (adapter options, host, nodes, seed, profile, searched
        schedules, a replayed schedule), so replaying a certificate or a failure's command
        certifies the same configuration. ``test`` narrows it to one test id."""
        parts = ["pytest", f"--consensus-adapter={adapter}"]
        parts += [
            f"--consensus-adapter-option={key}={value}"
            for key, value in sorted(self.adapter_options.items())
        ]
        parts += [
            f"--consensus-host={self.host}",
            *([f"--consensus-ssh-inventory={self.ssh_inventory}"] if self.ssh_inventory else []),
            f"--consensus-nodes={self.nodes}",
            f"--consensus-seed={self.seed}",
            f"--consensus-profile={self.profile.name}",
        ]
        if self.search_examples != self.profile.search_examples:
            parts.append(f"--consensus-search-examples={self.search_examples}")
        if replay or self.replay:
            parts.append(f"--consensus-replay={replay or self.replay}")
        if self.shard is not None and not test:
            parts.append(f"--consensus-shard={self.shard}")
        if test:
            parts.append(test)
        return " ".join(shlex.quote(part) for part in parts)

    def seed_for(self, test_id: str) -> int:
        """A per-test seed: stable for one run seed and test, different across tests."""
        return (self.seed * 1_000_003 + zlib.crc32(test_id.encode())) % 2**32


def parse_adapter_options(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings into a dict; anything else is an error that shows the form."""
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"adapter option {pair!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def parse_positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def parse_non_negative_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 (off) or more, got {value}")
    return value
