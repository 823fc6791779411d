"""Machines reached only by SSH, made on this one for the SSH host's tests: each a network
namespace on a bridge with its own address and an ``sshd`` (Debian's openssh-server) that
listens there with a host key of its own, and a generated client key that logs in as root.
The inventory names each machine's address, the client key, a known_hosts file with the
machines' host keys (strict checking) and a work folder per machine.

As a command, it keeps machines up while another command runs (benchmarks/README.md):

    python3 tests/ssh_machines.py 3 -- pytest --consensus-host=ssh \\
        --consensus-ssh-inventory={inventory} --consensus-adapter=pysyncobj

``{inventory}`` in the command is replaced by the inventory's path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_consensus.hosts.netns import NamespaceCluster, NamespaceNetwork

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 200
MaxStartups 200
"""


def sshd_unavailable() -> str | None:
    """Why these machines cannot be made here, or None."""
    if os.geteuid() != 0:
        return "machines for the SSH host need root (network namespaces, sshd)"
    for program in (SSHD, "ssh", "ssh-keygen", "ip", "iptables"):
        if shutil.which(program) is None:
            return f"{program} is missing (apt-get install openssh-server iproute2 iptables)"
    return None


@dataclass
class Machines:
    inventory: Path
    addresses: list[str]
    namespaces: list[str]
    work_dirs: list[Path]


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def _wait_for_port(address: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, 22), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on {address} did not listen in {timeout:.0f} s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def ssh_machines(count: int, folder: Path) -> Iterator[Machines]:
    """``count`` machines, up until the block ends; then nothing is left of them."""
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation
    folder.mkdir(parents=True, exist_ok=True)
    network = NamespaceNetwork(folder / "network", "ssh")
    servers: list[subprocess.Popen[bytes]] = []
    cluster: NamespaceCluster | None = None
    try:
        cluster = network.allocate(count)
        client_key = folder / "client_key"
        authorized = folder / "authorized_keys"
        authorized.write_text(_keygen(client_key) + "\n")
        known_hosts = folder / "known_hosts"
        lines, machines, work_dirs = [], [], []
        for index, name in enumerate(sorted(cluster.addresses)):
            address = cluster.addresses[name]
            machine = folder / f"m{index + 1}"
            machine.mkdir()
            host_key = machine / "host_key"
            lines.append(f"{address} {_keygen(host_key)}")
            config = machine / "sshd_config"
            config.write_text(
                SSHD_CONFIG.format(
                    address=address,
                    host_key=host_key,
                    folder=machine,
                    authorized_keys=authorized,
                )
            )
            log = open(machine / "sshd.log", "ab")  # noqa: SIM115 - sshd's, closed with it
            servers.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        cluster.namespaces[name],
                        SSHD,
                        "-D",
                        "-e",
                        "-f",
                        str(config),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
            work_dirs.append(machine / "work")
            machines.append(
                f'[[machine]]\naddress = "{address}"\nwork_dir = "{machine / "work"}"\n'
            )
        known_hosts.write_text("\n".join(lines) + "\n")
        inventory = folder / "inventory.toml"
        inventory.write_text(
            "[defaults]\n"
            f'identity_file = "{client_key}"\n'
            f'known_hosts = "{known_hosts}"\n'
            'ssh_options = ["StrictHostKeyChecking=yes"]\n\n' + "\n".join(machines)
        )
        for address in cluster.addresses.values():
            _wait_for_port(address)
        yield Machines(
            inventory,
            [cluster.addresses[n] for n in sorted(cluster.addresses)],
            [cluster.namespaces[n] for n in sorted(cluster.namespaces)],
            work_dirs,
        )
    finally:
        for server in servers:
            server.kill()
            server.wait()
        if cluster is not None:
            for namespace in cluster.namespaces.values():
                _kill_everything_in(namespace)  # sshd's connection processes too
            network.release(cluster)
        network.close()


def _kill_everything_in(namespace: str) -> None:
    """SIGKILL every process in a machine's network namespace: a killed sshd leaves the
    processes of its open connections, which would outlive the namespace's name."""
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    reason = sshd_unavailable()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pytest-consensus-ssh-machines-") as scratch:
        with ssh_machines(int(sys.argv[1]), Path(scratch)) as machines:
            command = [
                part.replace("{inventory}", str(machines.inventory)) for part in sys.argv[3:]
            ]
            return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
