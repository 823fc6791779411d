"""Damage to a stopped node's data file: a flipped bit, a truncation, a zeroed block.

The damage lands where it certainly matters: on every stored copy of the acknowledged value
written last, found in the node's data files (most stores keep values as written in their
log or state files; the one written last is in the part of the log a store still reads).
Where no file holds one (compressed or encrypted storage), it lands in the middle of the
written part of the largest data file. A bit flipped in padding would test nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_consensus.contract import HostSpec
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.contract.remote_process import python_there

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
    relative: str

    def describe(self) -> str:
        return f"{self.detail}, the first in data file {self.relative} at byte {self.offset}"


def data_files(data_dir: Path, patterns: Sequence[str]) -> list[Path]:
    """Regular, non-empty files under ``data_dir`` matching any of ``patterns``."""
    found = {p for pattern in patterns for p in data_dir.glob(pattern) if p.is_file()}
    return sorted(p for p in found if p.stat().st_size > 0)


def occurrences(content: bytes, needle: bytes) -> list[int]:
    found, start = [], content.find(needle)
    while start >= 0:
        found.append(start)
        start = content.find(needle, start + 1)
    return found


def find_copies(
    files: Sequence[Path], values: Sequence[str]
) -> tuple[str | None, dict[Path, list[int]]]:
    """The acknowledged value written last that some file holds as written, and every
    offset of it in every file. Every copy is damaged: a store may keep a value in its log
    and in a snapshot, or leave old copies in bytes it no longer reads, and damaging one of
    those alone would test nothing."""
    contents = {path: path.read_bytes() for path in files}
    for value in reversed(values):
        copies = {p: occurrences(c, value.encode()) for p, c in contents.items()}
        copies = {p: offsets for p, offsets in copies.items() if offsets}
        if copies:
            return value, copies
    largest = max(files, key=lambda p: len(contents[p]))
    written = len(contents[largest].rstrip(b"\0"))
    return None, {largest: [max(0, written // 2)]}


def damage_a_data_file(
    data_dir: Path,
    patterns: Sequence[str],
    kind: str,
    values: Sequence[str],
    rng: random.Random,
) -> Damage:
    """Apply ``kind`` of damage to every stored copy of the acknowledged value written last
    (``values`` in the order they were acknowledged) in the node's data files; the node
    must be down. Where no file holds a value as written, to the middle of the largest."""
    if kind not in DAMAGES:
        raise HarnessError(f"unknown damage {kind!r}; valid: {', '.join(DAMAGES)}")
    files = data_files(data_dir, patterns)
    if not files:
        raise HarnessError(
            f"no data file matching {list(patterns)} under {data_dir}: nothing to damage "
            "(the adapter's data_files patterns may not fit what the store writes)"
        )
    value, copies = find_copies(files, values)
    where = f"on every copy of the acknowledged value {value!r}" if value else "mid-file"
    middle = len(value) // 2 if value else 0
    bit = rng.randrange(8)
    for path, offsets in copies.items():
        with open(path, "r+b") as handle:
            if kind == "truncate":
                handle.truncate(offsets[0])
                continue
            for offset in offsets:
                if kind == "flip":
                    handle.seek(offset + middle)
                    byte = handle.read(1)[0]
                    handle.seek(offset + middle)
                    handle.write(bytes([byte ^ (1 << bit)]))
                else:
                    start = offset - offset % BLOCK
                    handle.seek(start)
                    length = len(handle.read(BLOCK))
                    handle.seek(start)
                    handle.write(bytes(length))
    detail = {
        "flip": f"bit {bit} flipped",
        "truncate": "file truncated at the first copy",
        "zero": f"{BLOCK}-byte block zeroed",
    }[kind]
    placed = sorted(copies.items())
    first_path, first_offsets = placed[0]
    count = sum(len(offsets) for offsets in copies.values())
    named = ", ".join(f"{p.relative_to(data_dir)} ({len(o)})" for p, o in placed)
    return Damage(
        kind,
        first_path,
        first_offsets[0],
        f"{detail} {where} ({count} cop{'y' if count == 1 else 'ies'}: {named})",
        str(first_path.relative_to(data_dir)),
    )


class _ChosenBit(random.Random):
    """The bit the harness drew, for the damage done on another machine (the draw stays
    the harness's, so a seed damages the same bit on every host)."""

    def __init__(self, bit: int) -> None:
        super().__init__(0)
        self.bit = bit

    def randrange(self, *arguments: int, **keywords: int) -> int:  # type: ignore[override]
        return self.bit


#: Run on a node's machine by damage_node_data: the arguments as JSON on stdin, the Damage
#: as JSON on stdout.
_REMOTE_DAMAGE = """
import json, sys
from pathlib import Path
from pytest_consensus.nemesis.file_damage import _ChosenBit, damage_a_data_file
a = json.load(sys.stdin)
d = damage_a_data_file(Path(a["dir"]), a["patterns"], a["kind"], a["values"], _ChosenBit(a["bit"]))
print(json.dumps([d.kind, str(d.path), d.offset, d.detail, d.relative]))
"""


def damage_node_data(
    host: HostSpec,
    patterns: Sequence[str],
    kind: str,
    values: Sequence[str],
    rng: random.Random,
) -> Damage:
    """damage_a_data_file on the node's data directory, wherever it is: here, or on its
    machine (the SSH host), where the machine's Python does the same damage."""
    if host.machine is None:
        return damage_a_data_file(host.data_dir, patterns, kind, values, rng)
    if kind not in DAMAGES:
        raise HarnessError(f"unknown damage {kind!r}; valid: {', '.join(DAMAGES)}")
    arguments = {
        "dir": str(host.data_dir),
        "patterns": list(patterns),
        "kind": kind,
        "values": list(values),
        "bit": rng.randrange(8),
    }
    answer = host.machine.run(
        f"{python_there(host.machine, _REMOTE_DAMAGE)} <<'PYTEST_CONSENSUS_ARGUMENTS'\n"
        f"{json.dumps(arguments)}\nPYTEST_CONSENSUS_ARGUMENTS",
        timeout=120,
    )
    kind_done, path, offset, detail, relative = json.loads(answer.strip().splitlines()[-1])
    return Damage(kind_done, Path(path), int(offset), detail, relative)
