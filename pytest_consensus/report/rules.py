"""The five rules the suite certifies, by id (see docs/rules.md and DESIGN.md)."""

from __future__ import annotations

RULES: dict[str, str] = {
    "consensus-safety": "build on a proven consensus library",
    "fsm-determinism": "the state machine applies deterministically and snapshots correctly",
    "leader-gating": "only the leader accepts writes",
    "read-levels": "strong and stale reads are distinct, advertised levels",
    "partition-retries": "clients time out and retry through partitions",
}


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown rule id {rule!r}; valid: {', '.join(RULES)}")
    return rule
