"""Network namespaces that outlive a node's container, so the Docker host can fault links.

A container's network namespace is made anew each time the container starts, so rules put
into it die with every kill and restart. As in a Kubernetes pod, each node therefore gets a
*holder*: a container that only sleeps, owns the node's address on the run's network and is
never faulted; the node's own container joins it (``network_mode=container:HOLDER``). The
harness names the holder's namespace with ``ip netns attach``, after which the namespace
host's tools (the firewall's rules, the link proxies, netem) work in it unchanged, from the
host: nothing is needed inside the node's image.

The holder image is built offline from this machine's own ``sleep`` and the C library it
loads (no registry is asked), once per engine.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from pytest_consensus.contract.errors import HarnessError

HOLDER_REPOSITORY = "pytest-consensus/netns-holder"
SLEEP_IN_IMAGE = "/sleep"
#: ``ldd`` lines naming a library file: "libc.so.6 => /lib/.../libc.so.6 (0x...)" and the
#: loader's "/lib64/ld-linux-x86-64.so.2 (0x...)".
LIBRARY_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def libraries_of(program: Path) -> list[Path]:
    """The shared libraries ``program`` loads (none for a static one), as ``ldd`` lists."""
    try:
        listing = subprocess.run(
            ["ldd", str(program)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise HarnessError(f"cannot list the libraries of {program}: {error}") from error
    return [Path(match.group(1)) for match in LIBRARY_PATH.finditer(listing)]


def holder_tarball(program: Path, libraries: list[Path]) -> bytes:
    """A root filesystem holding ``program`` at /sleep and each library at its own path
    (symbolic links followed, so the image needs nothing else)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders: set[str] = set()
        for library in libraries:
            parts = library.parts[1:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    entry = tarfile.TarInfo(folder)
                    entry.type, entry.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(entry)
        for source, target in [(program, SLEEP_IN_IMAGE), *((lib, str(lib)) for lib in libraries)]:
            data = source.resolve().read_bytes()
            entry = tarfile.TarInfo(target.lstrip("/"))
            entry.size, entry.mode = len(data), 0o755
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def holder_image(docker_client: Any) -> str:
    """The holder image's tag on this engine, imported first if it is missing. The tag
    carries a hash of its contents, so a changed ``sleep`` makes a new image."""
    program = shutil.which("sleep")
    if program is None:
        raise HarnessError("the Docker host's network faults need `sleep` (coreutils) here")
    tarball = holder_tarball(Path(program), libraries_of(Path(program)))
    tag = f"{HOLDER_REPOSITORY}:{hashlib.sha256(tarball).hexdigest()[:12]}"
    try:
        docker_client.images.get(tag)
        return tag
    except Exception:  # ImageNotFound: import it below
        pass
    repository, _, version = tag.rpartition(":")
    try:
        docker_client.api.import_image_from_data(tarball, repository=repository, tag=version)
        docker_client.images.get(tag)
    except Exception as error:
        raise HarnessError(f"the Docker engine refused the holder image {tag}: {error}") from error
    return tag


def start_holder(
    docker_client: Any, image: str, name: str, network: str, address: str, labels: dict[str, str]
) -> int:
    """Start the holder ``name`` with ``address`` on ``network``; returns its process id,
    whose network namespace the node's container will share."""
    api = docker_client.api
    networking = api.create_networking_config(
        {network: api.create_endpoint_config(ipv4_address=address)}
    )
    try:
        created = api.create_container(
            image,
            command=[SLEEP_IN_IMAGE, "infinity"],
            name=name,
            labels=labels,
            networking_config=networking,
            host_config=api.create_host_config(network_mode=network),
        )
        api.start(created["Id"])
        pid = int(api.inspect_container(created["Id"])["State"]["Pid"])
    except Exception as error:
        raise HarnessError(
            f"the network holder {name} ({address} on {network}) did not start: {error}"
        ) from error
    if pid <= 0:
        raise HarnessError(f"the network holder {name} started but has no process")
    return pid


def network_mode_of(holder: str) -> str:
    """What a node's container passes as its network mode to share ``holder``'s."""
    return f"container:{holder}"
