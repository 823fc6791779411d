"""The lossy disk's model: what a power cut keeps is exactly what was synced (no FUSE here:
the model is reloaded from its backing folder, as a new filesystem process does)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pytest_consensus.hosts.disk_model import PAGE, DiskModel


def cut_power(model: DiskModel) -> DiskModel:
    """What a filesystem process mounting the same backing folder finds."""
    return DiskModel(model.backing)


def read_all(model: DiskModel, path: str) -> bytes:
    inode = model.lookup(path)
    return model.read(inode, inode.size, 0)


def test_data_survives_only_once_synced(tmp_path: Path) -> None:
    model = DiskModel(tmp_path)
    log = model.create("/log", 0o644)
    model.sync_directory(model.lookup("/"))
    model.write(log, b"synced", 0)
    model.sync_file(log)
    model.write(log, b" and not", 6)
    assert read_all(model, "/log") == b"synced and not"
    assert read_all(cut_power(model), "/log") == b"synced"


def test_a_name_survives_only_once_its_folder_is_synced(tmp_path: Path) -> None:
    model = DiskModel(tmp_path)
    model.create("/kept", 0o644)
    model.sync_directory(model.lookup("/"))
    unsynced = model.create("/lost", 0o644)
    model.write(unsynced, b"data", 0)
    model.sync_file(unsynced)  # its data, not its name (POSIX)
    after = cut_power(model)
    with pytest.raises(OSError) as missing:
        after.lookup("/lost")
    assert missing.value.errno == errno.ENOENT
    assert after.lookup("/kept").size == 0
    assert list((tmp_path / "data").iterdir()) == []  # the orphan's data was dropped


@pytest.mark.parametrize(("folder_synced", "survives"), [(False, b"term 1"), (True, b"term 2")])
def test_a_rename_survives_only_once_its_folder_is_synced(
    tmp_path: Path, folder_synced: bool, survives: bytes
) -> None:
    model = DiskModel(tmp_path)
    meta = model.create("/meta", 0o644)
    model.write(meta, b"term 1", 0)
    model.sync_file(meta)
    model.sync_directory(model.lookup("/"))
    replacement = model.create("/meta.tmp", 0o644)
    model.write(replacement, b"term 2", 0)
    model.sync_file(replacement)
    model.rename("/meta.tmp", "/meta")
    if folder_synced:
        model.sync_directory(model.lookup("/"))
    assert read_all(cut_power(model), "/meta") == survives


def test_a_truncation_and_a_regrowth_read_zeros_until_synced(tmp_path: Path) -> None:
    model = DiskModel(tmp_path)
    file = model.create("/f", 0o644)
    model.sync_directory(model.lookup("/"))
    model.write(file, b"x" * (2 * PAGE + 10), 0)
    model.sync_file(file)
    model.truncate(file, 5)
    model.truncate(file, 3 * PAGE)
    assert read_all(model, "/f") == b"x" * 5 + bytes(3 * PAGE - 5)
    assert read_all(cut_power(model), "/f") == b"x" * (2 * PAGE + 10)
    model.sync_file(file)
    assert read_all(cut_power(model), "/f") == b"x" * 5 + bytes(3 * PAGE - 5)


def test_a_directory_made_and_synced_comes_back_with_its_synced_entries(tmp_path: Path) -> None:
    model = DiskModel(tmp_path)
    model.create("/member", 0o755, is_dir=True)
    model.create("/member/wal", 0o644)
    model.sync_directory(model.lookup("/"))  # member/ is durable, its entry wal is not
    after = cut_power(model)
    assert after.lookup("/member").is_dir and after.lookup("/member").entries == {}


def test_sync_all_is_a_checkpoint_and_the_report_names_what_a_cut_would_lose(
    tmp_path: Path,
) -> None:
    model = DiskModel(tmp_path)
    model.create("/member", 0o755, is_dir=True)
    wal = model.create("/member/wal", 0o644)
    model.write(wal, b"entry", 0)
    assert model.unsynced() == {
        "names": ["/member (created or renamed)", "/member/wal (created or renamed)"],
        "data": ["/member/wal: 1 unsynced page(s), size 5 (synced: 0)"],
    }
    model.sync_all()
    assert model.unsynced() == {"names": [], "data": []}
    assert read_all(cut_power(model), "/member/wal") == b"entry"


def test_unlinking_a_name_is_undone_by_a_cut_until_the_folder_is_synced(tmp_path: Path) -> None:
    model = DiskModel(tmp_path)
    file = model.create("/segment", 0o644)
    model.write(file, b"old entries", 0)
    model.sync_file(file)
    model.sync_directory(model.lookup("/"))
    model.unlink("/segment")
    assert read_all(cut_power(model), "/segment") == b"old entries"
