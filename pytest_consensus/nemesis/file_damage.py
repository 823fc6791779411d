"""Damage to a stopped node's data file: a flipped bit, a truncation, a zeroed block.

The damage lands where it certainly matters: on the bytes of an acknowledged value, found
in the node's data files (most stores keep values as written in their log or state files).
Where no file holds one (compressed or encrypted storage), it lands in the middle of the
written part of the largest data file. A bit flipped in padding would test nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_consensus.contract.errors import HarnessError

DAMAGES = ("flip", "truncate", "zero")
BLOCK = 4096


@dataclass(frozen=True)
class Damage:
    """What was done to which file, for the failure message and the history."""

    kind: str
    path: Path
    offset: int
    detail: str
    #: The file as the node sees it: its name under the node's data directory.
    relative: str = ""

    def describe(self) -> str:
        return f"{self.detail} in data file {self.relative or self.path} at byte {self.offset}"


def data_files(data_dir: Path, patterns: Sequence[str]) -> list[Path]:
    """Regular, non-empty files under ``data_dir`` matching any of ``patterns``."""
    found = {p for pattern in patterns for p in data_dir.glob(pattern) if p.is_file()}
    return sorted(p for p in found if p.stat().st_size > 0)


def find_target(files: Sequence[Path], values: Sequence[str]) -> tuple[Path, int, str | None]:
    """The file and offset of an acknowledged value (the first file, in order, that holds
    the most of them), or the middle of the largest file's written bytes."""
    best: tuple[int, Path, int, str] | None = None
    for path in files:
        content = path.read_bytes()
        hits = [(content.find(v.encode()), v) for v in values]
        hits = [(offset, v) for offset, v in hits if offset >= 0]
        if hits and (best is None or len(hits) > best[0]):
            offset, value = hits[len(hits) // 2]
            best = (len(hits), path, offset, value)
    if best is not None:
        return best[1], best[2], best[3]
    largest = max(files, key=lambda p: p.stat().st_size)
    written = len(largest.read_bytes().rstrip(b"\0"))
    return largest, max(0, written // 2), None


def damage_a_data_file(
    data_dir: Path,
    patterns: Sequence[str],
    kind: str,
    values: Sequence[str],
    rng: random.Random,
) -> Damage:
    """Apply ``kind`` of damage to one of the node's data files (the node must be down)."""
    if kind not in DAMAGES:
        raise HarnessError(f"unknown damage {kind!r}; valid: {', '.join(DAMAGES)}")
    files = data_files(data_dir, patterns)
    if not files:
        raise HarnessError(
            f"no data file matching {list(patterns)} under {data_dir}: nothing to damage "
            "(the adapter's data_files patterns may not fit what the store writes)"
        )
    path, offset, value = find_target(files, values)
    relative = str(path.relative_to(data_dir))
    where = f"inside the acknowledged value {value!r}" if value else "mid-file"
    if kind == "flip":
        at = offset + (len(value) // 2 if value else 0)
        bit = rng.randrange(8)
        with open(path, "r+b") as handle:
            handle.seek(at)
            byte = handle.read(1)[0]
            handle.seek(at)
            handle.write(bytes([byte ^ (1 << bit)]))
        return Damage(kind, path, at, f"bit {bit} flipped {where}", relative)
    if kind == "truncate":
        with open(path, "r+b") as handle:
            handle.truncate(offset)
        return Damage(kind, path, offset, f"file truncated {where}", relative)
    start = offset - offset % BLOCK
    with open(path, "r+b") as handle:
        handle.seek(start)
        length = len(handle.read(BLOCK))
        handle.seek(start)
        handle.write(bytes(length))
    return Damage(kind, path, start, f"{BLOCK}-byte block zeroed {where}", relative)
