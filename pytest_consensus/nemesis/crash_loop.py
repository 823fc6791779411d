"""The crash loop: one member after another SIGKILLed and restarted while writes stream in.

A single kill under a gentle workload rarely lands while a member is busy applying, taking a
snapshot or catching up after its last restart, and that is where apply and persist race
(etcd-io/etcd#13766: a member killed there comes back without a transaction it had applied,
one revision behind its peers for good). The loop kills a member every 1-3 s and restarts
it 0.5-1 s later, so that over a few hundred kills such a moment is hit; one kill in three
goes to the member restarted last, which is still catching up. Kills and restarts are
recorded in the history as nemesis events, and each kill as a :class:`Kill`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from pytest_consensus.clients import stopping
from pytest_consensus.clients.history import History
from pytest_consensus.contract import Cluster, Node


@dataclass(frozen=True)
class CrashLoopPlan:
    """How long the loop runs and how it paces its kills (seconds)."""

    seconds: float
    #: Time from one kill to the next.
    interval: tuple[float, float] = (1.0, 3.0)
    #: Time a killed member stays down before it is started again.
    down: tuple[float, float] = (0.5, 1.0)
    #: Share of kills that go to the member restarted last (still catching up).
    catching_up_share: float = 1 / 3
    #: A bound on kills whatever the clock does.
    max_kills: int = 2000


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: whom, when (history seconds), and when the member was started again."""

    node: str
    at: float
    restarted_at: float
    #: The member had been restarted by the previous kill's step and was catching up.
    catching_up: bool

    def describe(self) -> str:
        state = " while it caught up" if self.catching_up else ""
        return (
            f"{self.node} killed at {self.at:.1f} s{state}, restarted at {self.restarted_at:.1f} s"
        )


class CrashLoop:
    """Runs a :class:`CrashLoopPlan` against ``cluster``; :meth:`run` blocks until it ends."""

    def __init__(
        self,
        cluster: Cluster,
        history: History,
        plan: CrashLoopPlan,
        rng: random.Random,
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.plan = plan
        self.rng = rng
        self.kills: list[Kill] = []

    def _victim(self, last: Node | None) -> tuple[Node, bool]:
        if last is not None and self.rng.random() < self.plan.catching_up_share:
            return last, True
        return self.rng.choice(list(self.cluster.nodes)), False

    def run(self) -> list[Kill]:
        """Kill and restart members until the plan's time is up; return the kills made.
        A member that does not come back raises the node's start error: the loop stops
        there, since a store that cannot restart after a SIGKILL is the finding."""
        deadline = time.monotonic() + self.plan.seconds
        last: Node | None = None
        while time.monotonic() < deadline and len(self.kills) < self.plan.max_kills:
            if stopping.stopping():
                break
            step_began = time.monotonic()
            gap = self.rng.uniform(*self.plan.interval)
            down = min(self.rng.uniform(*self.plan.down), gap)
            victim, catching_up = self._victim(last)
            self.history.nemesis("kill", [victim.name])
            killed_at = self.history.now()
            victim.kill()
            time.sleep(down)
            self.history.nemesis("restart", [victim.name])
            restarted_at = self.history.now()
            victim.start()
            self.kills.append(Kill(victim.name, killed_at, restarted_at, catching_up))
            last = victim
            time.sleep(max(0.0, gap - (time.monotonic() - step_began)))
        return self.kills


def kills_around(
    kills: list[Kill], at: float, before: float = 5.0, after: float = 2.0
) -> list[Kill]:
    """The kills from ``before`` seconds before ``at`` to ``after`` seconds past it: the
    ones a write acknowledged at ``at`` and later found missing most likely met."""
    return [k for k in kills if at - before <= k.at <= at + after]
