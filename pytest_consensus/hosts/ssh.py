"""The SSH host: every node on a machine of its own, reached by SSH, listed in an inventory.

The harness drives the machines as a Jepsen control node does: through OpenSSH's client
with connection sharing (one master connection per machine, every command a new session
on it, a few milliseconds each), never through anything but SSH and the nodes' own ports.
On each machine it starts and signals node processes (contract/remote_process.py), cuts
links with the machine's iptables in a chain of the run's own, and keeps node data and
logs under ``work_dir/pytest-consensus-<run>/``; logs are copied back into each test's
evidence. At the end of a run (and, for a run that died, at the start of a later one from
this machine) its node processes are killed, its folder removed and its chain deleted.

Inventory (TOML; docs/hosts.md)::

    [defaults]                        # optional, for every machine
    user = "root"                     # default root: iptables needs it
    port = 22
    identity_file = "~/.ssh/id_ed25519"   # default: the agent and ~/.ssh/config
    known_hosts = "~/.ssh/known_hosts"    # default: ssh's own
    work_dir = "/var/tmp/pytest-consensus"
    ssh_options = ["StrictHostKeyChecking=accept-new"]
    [defaults.programs]               # a program here -> where the machine has it
    "/usr/bin/etcd" = "/opt/etcd/etcd"

    [[machine]]
    address = "10.0.0.11"             # what the node binds and clients connect to
    ssh_address = "m1.example"        # optional: where SSH connects (default: address)
    name = "m1"                       # optional (default m1, m2, ...)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_consensus.contract import HostSpec, reaper
from pytest_consensus.contract.child_python import python_environment
from pytest_consensus.contract.errors import HarnessError
from pytest_consensus.contract.remote_process import (
    RemoteNodeProcess,
    kill_nodes_script,
    remove_folder_script,
)
from pytest_consensus.hosts.allocation import Allocation
from pytest_consensus.hosts.base import owner_alive_since, pid_alive, process_started_at
from pytest_consensus.hosts.firewall import CLIENT, Firewall
from pytest_consensus.hosts.link_proxy import BYPASS_MARK, CONTROL_PORT, PROXY_PORT
from pytest_consensus.hosts.links import PROXY_MODULE, LinkProxies
from pytest_consensus.hosts.netns import base36, run_tag

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_WORK_DIR = "/var/tmp/pytest-consensus"
#: Remote run folders: pytest-consensus-<control machine>-<pid>-<worker>.
RUN_PREFIX = "pytest-consensus-"
#: A command on a machine that takes longer is stuck (iptables waits for its lock).
COMMAND_TIMEOUT = 60.0
#: Idle master connections end on their own this long after a run that died.
CONTROL_PERSIST_SECONDS = 300
MACHINE_KEYS = {
    "address",
    "ssh_address",
    "name",
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "work_dir",
    "ssh_options",
    "programs",
}


class InventoryError(HarnessError):
    """An inventory file that cannot be used; the message says what to change."""


def control_machine_code() -> str:
    """Four characters naming this machine in remote names, so that runs from two control
    machines on the same nodes never take each other's leftovers for their own."""
    return base36(zlib.crc32(socket.gethostname().encode()) % 36**4, 4)


@dataclass(frozen=True)
class MachineEntry:
    """One machine of the inventory."""

    name: str
    address: str
    ssh_address: str
    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    known_hosts: str | None = None
    work_dir: str = DEFAULT_WORK_DIR
    ssh_options: tuple[str, ...] = ()
    programs: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.name} ({self.user}@{self.ssh_address}:{self.port})"


def read_inventory(path: Path) -> list[MachineEntry]:
    """The machines of an inventory file, or an InventoryError that says what to fix."""
    where = f"--consensus-ssh-inventory={path}"
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise InventoryError(f"{where}: cannot read it: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise InventoryError(f"{where}: not TOML: {error}") from None
    defaults = document.get("defaults", {})
    machines = document.get("machine", [])
    if not isinstance(defaults, dict) or not isinstance(machines, list) or not machines:
        raise InventoryError(
            f"{where}: lists no machine; add one [[machine]] table per machine, each with "
            'address = "IP" (docs/hosts.md)'
        )
    entries = []
    for number, machine in enumerate(machines, 1):
        if not isinstance(machine, dict):
            raise InventoryError(f"{where}: machine {number} is not a table")
        merged: dict[str, Any] = {**defaults, **machine}
        merged["programs"] = {**defaults.get("programs", {}), **machine.get("programs", {})}
        unknown = sorted(set(merged) - MACHINE_KEYS)
        if unknown:
            raise InventoryError(
                f"{where}: machine {number}: unknown key(s) {unknown}; known: "
                f"{', '.join(sorted(MACHINE_KEYS))}"
            )
        address = merged.get("address")
        if not isinstance(address, str) or not address:
            raise InventoryError(f'{where}: machine {number} has no address = "IP"')
        try:
            socket.inet_aton(address)
        except OSError:
            raise InventoryError(
                f"{where}: machine {number}: address {address!r} is not an IPv4 address (the "
                "node binds it and firewall rules name it; put a host name in ssh_address)"
            ) from None
        options = merged.get("ssh_options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise InventoryError(f'{where}: machine {number}: ssh_options must be ["K=V", ...]')
        try:
            port = int(merged.get("port", 22))
        except (TypeError, ValueError):
            raise InventoryError(f"{where}: machine {number}: port must be a number") from None
        for key in ("identity_file", "known_hosts"):
            named = _expand(merged.get(key))
            if named is not None and not Path(named).is_file():
                raise InventoryError(f"{where}: machine {number}: {key} {named} does not exist")
        entries.append(
            MachineEntry(
                name=str(merged.get("name", f"m{number}")),
                address=address,
                ssh_address=str(merged.get("ssh_address", address)),
                user=str(merged.get("user", "root")),
                port=port,
                identity_file=_expand(merged.get("identity_file")),
                known_hosts=_expand(merged.get("known_hosts")),
                work_dir=str(merged.get("work_dir", DEFAULT_WORK_DIR)),
                ssh_options=tuple(options),
                programs={str(k): str(v) for k, v in merged["programs"].items()},
            )
        )
    names = [e.name for e in entries]
    addresses = [e.address for e in entries]
    for what, values in (("name", names), ("address", addresses)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise InventoryError(f"{where}: two machines share the {what} {repeated[0]}")
    return entries


def _expand(value: Any) -> str | None:
    return None if value in (None, "") else os.path.expanduser(str(value))


class SshMachine:
    """One machine through OpenSSH with a shared master connection (implements
    contract.remote_process.RemoteMachine)."""

    def __init__(
        self, entry: MachineEntry, control_dir: Path, local_root: Path, remote_root: PurePosixPath
    ) -> None:
        self.entry = entry
        self.name = entry.name
        self.address = entry.address
        self.control_path = control_dir / entry.name
        self.local_root = local_root
        self.remote_root = remote_root
        self._session: subprocess.Popen[bytes] | None = None
        self._master_pid: int | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def ssh_command(self) -> list[str]:
        command = [
            "ssh",
            "-T",
            "-p",
            str(self.entry.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control_path}",
            "-o",
            f"ControlPersist={CONTROL_PERSIST_SECONDS}",
        ]
        if self.entry.identity_file:
            command += ["-i", self.entry.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.entry.known_hosts:
            command += ["-o", f"UserKnownHostsFile={self.entry.known_hosts}"]
        for option in self.entry.ssh_options:
            command += ["-o", option]
        return [*command, f"{self.entry.user}@{self.entry.ssh_address}"]

    def _shell(self) -> subprocess.Popen[bytes]:
        """The machine's shell session, opened at first use: one ``sh`` reading commands,
        so a command costs a round trip, not a login (whose shell may read a slow
        ~/.bashrc: 170 ms a login with pyenv's)."""
        if self._session is None or self._session.poll() is not None:
            self._start_master()
            try:
                self._session = subprocess.Popen(
                    [*self.ssh_command(), "exec sh"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                reaper.register(self._session.pid)  # gone with this process, however it ends
            except FileNotFoundError:
                raise HarnessError(
                    "the SSH host needs OpenSSH's client (ssh) on this machine: apt-get "
                    "install openssh-client"
                ) from None
            self._buffer = b""
        return self._session

    def _start_master(self) -> None:
        """The shared connection, in the background on its own (``-f -N``), so that no
        session's pipes are held open by it; a no-op while one is up."""
        try:
            subprocess.run(
                [*self.ssh_command()[:-1], "-f", "-N", self.ssh_command()[-1]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise HarnessError(
                "the SSH host needs OpenSSH's client (ssh) on this machine: apt-get install "
                "openssh-client"
            ) from None
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.entry.describe()}: no SSH connection in 60 s") from None
        if self._master_pid is None:
            check = subprocess.run(
                [*self.ssh_command()[:-1], "-O", "check", self.ssh_command()[-1]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            found = re.search(r"pid=(\d+)", check.stderr + check.stdout)
            if found is not None:
                self._master_pid = int(found.group(1))
                reaper.register(self._master_pid)

    def _drop_session(self) -> str:
        """End a session that failed or hung; what its ssh said on stderr, if it said it."""
        session, self._session = self._session, None
        if session is None:
            return ""
        session.kill()
        session.wait()
        reaper.unregister(session.pid)
        said = b""
        if session.stderr is not None:
            if select.select([session.stderr], [], [], 0.5)[0]:
                said = os.read(session.stderr.fileno(), 65536)
            session.stderr.close()
        for pipe in (session.stdin, session.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return said.decode(errors="replace").strip()

    def _read_until(
        self, session: subprocess.Popen[bytes], marker: bytes, deadline: float
    ) -> bytes:
        """Everything the session prints up to ``marker`` (a line of its own), or an error."""
        assert session.stdout is not None
        while marker not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([session.stdout], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(session.stdout.fileno(), 65536)
            if not chunk:
                raise ConnectionError
            self._buffer += chunk
        before, _, self._buffer = self._buffer.partition(marker)
        return before

    def call(self, script: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of ``script`` run on the machine, in a subshell of
        the session (an ``exit`` or ``cd`` in it ends or moves that subshell only)."""
        token = f"__pytest_consensus_{uuid.uuid4().hex}"
        errors = f"${{TMPDIR:-/tmp}}/{token}.err"
        wrapped = (
            f"(\n{script}\n) </dev/null 2>{errors}; status=$?; echo; "
            f"echo {token} $status; cat {errors}; rm -f {errors}; echo {token}\n"
        )
        first_line = script.strip().splitlines()[0][:200] if script.strip() else ""
        with self._lock:
            deadline = time.monotonic() + timeout
            try:
                session = self._shell()
                assert session.stdin is not None
                session.stdin.write(wrapped.encode())
                session.stdin.flush()
                output = self._read_until(session, f"\n{token} ".encode(), deadline)
                status = int(self._read_until(session, b"\n", deadline) or b"1")
                stderr = self._read_until(session, f"{token}\n".encode(), deadline)
            except TimeoutError:
                self._drop_session()
                raise HarnessError(
                    f"{self.entry.describe()}: no answer in {timeout:.0f} s to: {first_line}"
                ) from None
            except (ConnectionError, BrokenPipeError, OSError):
                said = self._drop_session()
                raise HarnessError(
                    f"ssh to {self.entry.describe()} failed: {said or 'the connection ended'}"
                ) from None
        return status, output, stderr

    def run(self, script: str, *, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> str:
        status, output, stderr = self.call(script, timeout)
        if check and status != 0:
            raise HarnessError(
                f"on {self.name}: {script.strip().splitlines()[0][:200]} failed "
                f"(exit {status}): {stderr.decode(errors='replace').strip()}"
            )
        return output.decode(errors="replace")

    def program(self, path: str) -> str:
        programs = self.entry.programs
        return programs.get(path) or programs.get(os.path.basename(path)) or path

    def remote_path(self, local: os.PathLike[str] | str) -> PurePosixPath:
        try:
            relative = Path(local).relative_to(self.local_root)
        except ValueError:
            raise HarnessError(
                f"{local} is outside the run's folder {self.local_root}: the SSH host keeps "
                "node files under the run's folder on each machine"
            ) from None
        return self.remote_root / relative.as_posix()

    def fetch(self, remote: PurePosixPath, local: os.PathLike[str] | str) -> None:
        _, output, _ = self.call(f"cat {shlex.quote(str(remote))} 2>/dev/null")
        Path(local).write_bytes(output)

    def client_address(self) -> str:
        """The address this machine sees the harness at (SSH_CONNECTION's first field)."""
        fields = self.run('echo "$SSH_CONNECTION"').split()
        if not fields:
            raise HarnessError(f"{self.entry.describe()}: SSH_CONNECTION is not set there")
        return fields[0]

    def close(self) -> None:
        """End the session and the master connection (a run that died leaves it to time
        out)."""
        with self._lock:
            if self._session is not None and self._session.poll() is None:
                assert self._session.stdin is not None
                with contextlib.suppress(OSError):
                    self._session.stdin.close()
                try:
                    self._session.wait(10)
                    reaper.unregister(self._session.pid)
                except subprocess.TimeoutExpired:
                    self._drop_session()
            self._session = None
        subprocess.run(
            [*self.ssh_command()[:-1], "-O", "exit", self.ssh_command()[-1]],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if self._master_pid is not None:
            reaper.unregister(self._master_pid)
            self._master_pid = None


def chain_name(tag: str) -> str:
    return f"PCONS-{tag}"[:28]  # iptables' limit


class SshFirewall(Firewall):
    """The firewall of the SSH host: the same rules as the namespace host's, in a chain of
    the run's own on each node's machine (hooked into INPUT and OUTPUT), always letting SSH
    through, so that no cut ever cuts the harness off from a machine."""

    def __init__(
        self, machines: dict[str, SshMachine], client: str, chain: str, ssh_ports: dict[str, int]
    ) -> None:
        self.machines = machines
        self.client = client
        self.chain = chain
        self.ssh_ports = ssh_ports
        #: Each node's folder here (its log's), where its link proxy's files go.
        self.node_folders: dict[str, Path] = {}

    def address(self, name: str) -> str:
        return self.client if name == CLIENT else self.machines[name].address

    def add_rule(self, node: str, *rule: str) -> None:
        iptables = " ".join(shlex.quote(part) for part in ("iptables", "-A", self.chain, *rule))
        self.machines[node].run(iptables)

    def client_address(self) -> str:
        return self.client

    def heal(self) -> None:
        for node, machine in self.machines.items():
            machine.run(self.reset_script(self.ssh_ports[node]))

    def reset_script(self, port: int) -> str:
        """Flush the chain, then let SSH and the link proxies' control through before any
        rule a fault adds."""
        ports = f"{port},{CONTROL_PORT}"
        return (
            f"iptables -F {self.chain} && iptables -A {self.chain} -p tcp -m multiport "
            f"--dports {ports} -j RETURN && iptables -A {self.chain} -p tcp -m multiport "
            f"--sports {ports} -j RETURN"
        )

    def set_netem(self, node: str, *arguments: str) -> None:
        raise HarnessError("netem is not used on the SSH host (it would slow SSH too)")

    def clear_netem(self, node: str) -> None:
        pass

    def link_proxies(self) -> LinkProxies:
        return SshLinkProxies(self)


class SshLinkProxies(LinkProxies):
    """The link proxies on the SSH host: one on each node's machine (the proxy module run
    by the machine's Python), its control over TCP, and the redirect rules in the machine's
    ``nat`` table, in the run's chain there, never catching SSH or the control port."""

    def __init__(self, firewall: SshFirewall) -> None:
        self.firewall = firewall
        self.machines = firewall.machines
        self._begin({name: m.address for name, m in self.machines.items()}, firewall.client)

    def _start_proxies(self) -> None:
        for name, machine in self.machines.items():
            self._start_there(name, machine)

    def _start_there(self, name: str, machine: SshMachine) -> None:
        folder = self.firewall.node_folders[name]
        config = {
            "node": name,
            "names": self.names,
            "control_address": machine.address,
            "control_port": CONTROL_PORT,
        }
        remote = machine.remote_path(folder / "link-proxy.json")
        machine.run(
            f"mkdir -p {shlex.quote(str(remote.parent))} && cat > {shlex.quote(str(remote))} "
            f"<<'PYTEST_CONSENSUS_CONFIG'\n{json.dumps(config)}\nPYTEST_CONSENSUS_CONFIG"
        )
        argv = [sys.executable, "-m", PROXY_MODULE, str(remote)]
        process = RemoteNodeProcess(
            f"{name}-links", machine, argv, folder / "link-proxy.log", python_environment()
        )
        process.start()
        self.processes[name] = process

    def _connect(self, name: str, timeout: float) -> socket.socket:
        return socket.create_connection((self.machines[name].address, CONTROL_PORT), timeout)

    def _redirect(self) -> None:
        for name, machine in self.machines.items():
            peers = [m.address for other, m in self.machines.items() if other != name]
            chain = self.firewall.chain
            keep = f"{machine.entry.port},{CONTROL_PORT}"
            rules = [
                f"-p tcp -m mark --mark {hex(BYPASS_MARK)} -j RETURN",
                *(f"-p tcp -d {peer} -j REDIRECT --to-ports {PROXY_PORT}" for peer in peers),
                f"-p tcp -s {self.client} -d {machine.address} -m multiport ! --dports {keep} "
                f"-j REDIRECT --to-ports {PROXY_PORT}",
            ]
            machine.run(" && ".join(f"iptables -w 5 -t nat -A {chain} {rule}" for rule in rules))

    def close(self) -> None:
        """The redirects first (no connection is sent to a proxy that is gone), then the
        proxies."""
        for machine in self.machines.values():
            machine.run(f"iptables -w 5 -t nat -F {self.firewall.chain}", check=False)
        for process in self.processes.values():
            process.kill()
        self.processes.clear()


class SshHosts:
    """Hands out the inventory's machines, one node on each, to one cluster at a time."""

    name = "ssh"

    def __init__(self, run_dir: Path, worker: str, inventory: Path) -> None:
        if worker != "main":
            raise HarnessError(
                "the SSH host runs one cluster at a time on its machines, and pytest-xdist's "
                "workers would start theirs on the same machines and ports: run without -n "
                "(or split the run with --consensus-shard, a separate inventory per shard)"
            )
        entries = read_inventory(inventory)
        self.run_dir = run_dir
        self.code = control_machine_code()
        self.tag = f"{self.code}{run_tag(os.getpid(), worker)}"
        self.chain = chain_name(self.tag)
        control_dir = run_dir / "ssh"
        control_dir.mkdir(parents=True, exist_ok=True)
        self.machines = [
            SshMachine(
                entry,
                control_dir,
                run_dir,
                PurePosixPath(entry.work_dir) / f"{RUN_PREFIX}{self.code}-{os.getpid()}-{worker}",
            )
            for entry in entries
        ]
        self._clusters = 0
        self._prepared = False
        self.client = ""

    def _prepare(self) -> None:
        """Once, before the first cluster: sweep what dead runs from this machine left on
        each machine, then make the run's folder and firewall chain there."""
        sweep_dead_masters()
        for machine in self.machines:
            sweep_machine(machine, self.code)
            port = machine.entry.port
            machine.run(
                f"mkdir -p {shlex.quote(str(machine.remote_root))} && "
                f"iptables -N {self.chain} && iptables -I INPUT 1 -j {self.chain} && "
                f"iptables -I OUTPUT 1 -j {self.chain} && iptables -t nat -N {self.chain} && "
                f"iptables -t nat -I OUTPUT 1 -j {self.chain} && "
                f"iptables -t nat -I PREROUTING 1 -j {self.chain} && "
                + SshFirewall({}, "", self.chain, {}).reset_script(port)
            )
        self.client = self.machines[0].client_address()
        self._prepared = True

    def allocate(self, count: int, ports: Sequence[int] = ()) -> Allocation:
        if count > len(self.machines):
            raise HarnessError(
                f"a cluster of {count} nodes needs {count} machines (one node on each); the "
                f"inventory lists {len(self.machines)}"
            )
        if not self._prepared:
            self._prepare()
        self._clusters += 1
        label = f"cluster-{self._clusters}"
        local = self.run_dir / label
        chosen = self.machines[:count]
        hosts = []
        for index, machine in enumerate(chosen):
            name = f"n{index + 1}"
            hosts.append(
                HostSpec(
                    name=name,
                    address=machine.address,
                    data_dir=Path(str(machine.remote_path(local / name / "data"))),
                    log_dir=local / name,
                    machine=machine,
                )
            )
        by_node = {host.name: machine for host, machine in zip(hosts, chosen, strict=True)}
        firewall = SshFirewall(
            by_node, self.client, self.chain, {n: m.entry.port for n, m in by_node.items()}
        )
        firewall.node_folders = {host.name: host.log_dir for host in hosts}

        def release() -> None:
            for machine in chosen:
                folder = str(machine.remote_path(local))
                machine.run(
                    f"{kill_nodes_script(folder)}; {remove_folder_script(folder)}; "
                    + firewall.reset_script(machine.entry.port),
                    check=False,
                )

        return Allocation(hosts, firewall, release)

    def close(self) -> None:
        for machine in self.machines:
            try:
                if self._prepared:
                    machine.run(cleanup_script(str(machine.remote_root), self.chain), check=False)
            finally:
                machine.close()


def cleanup_script(remote_root: str, chain: str) -> str:
    """Kill a run's node processes on a machine, remove its folder and its chain."""
    return (
        f"{kill_nodes_script(remote_root)}; {remove_folder_script(remote_root)}; "
        f"while iptables -D INPUT -j {chain} 2>/dev/null; do :; done; "
        f"while iptables -D OUTPUT -j {chain} 2>/dev/null; do :; done; "
        f"iptables -F {chain} 2>/dev/null; iptables -X {chain} 2>/dev/null; "
        f"while iptables -t nat -D OUTPUT -j {chain} 2>/dev/null; do :; done; "
        f"while iptables -t nat -D PREROUTING -j {chain} 2>/dev/null; do :; done; "
        f"iptables -t nat -F {chain} 2>/dev/null; iptables -t nat -X {chain} 2>/dev/null; true"
    )


REMOTE_RUN = re.compile(rf"^{re.escape(RUN_PREFIX)}([0-9a-z]{{4}})-(\d+)-(\S+)$")


def sweep_dead_masters() -> list[str]:
    """End the SSH connections of runs on this machine that died (their control sockets
    are in run folders named with the dead pid), which the reaper missed; what was ended."""
    ended = []
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        master = DEAD_RUN_MASTER.match(command)
        if master is None:
            continue
        # The run started this ssh, so a process with the run's pid that started after it
        # got the pid when pids wrapped: the run is gone.
        started = process_started_at(int(process.name))
        if not owner_alive_since(int(master.group(1)), started):
            with contextlib.suppress(OSError):
                os.kill(int(process.name), signal.SIGTERM)
                ended.append(command.strip())
    return ended


#: An ssh of a run (a master, "ssh: <run folder>/ssh/<machine> [mux]", or a session with
#: "ControlPath=<run folder>/ssh/<machine>"): the run's pid is in its folder's name.
DEAD_RUN_MASTER = re.compile(r"^ssh[: ].*/pytest-consensus-(\d+)-[^/ ]*/ssh/")


def sweep_machine(machine: SshMachine, code: str) -> list[str]:
    """Remove what runs from this control machine that are no longer alive left on
    ``machine`` (their node processes, folders and chains); what was removed."""
    work_dir = shlex.quote(machine.entry.work_dir)
    names = machine.run(f"ls -1 {work_dir} 2>/dev/null; true").split()
    removed = []
    for name in names:
        match = REMOTE_RUN.match(name)
        if match is None or match.group(1) != code or pid_alive(int(match.group(2))):
            continue
        tag = f"{code}{run_tag(int(match.group(2)), match.group(3))}"
        root = str(PurePosixPath(machine.entry.work_dir) / name)
        machine.run(cleanup_script(root, chain_name(tag)), check=False)
        removed.append(f"{machine.name}:{root}")
    return removed


def ssh_network_faults_unavailable(inventory: Path) -> str | None:
    """Why the SSH host cannot cut links (no iptables, or not root on a machine), probed
    once: every machine must answer, or the inventory is unusable (an error)."""
    entries = read_inventory(inventory)
    for entry in entries:
        machine = SshMachine(entry, Path("/nonexistent"), Path("/"), PurePosixPath("/"))
        answer = _probe(machine)
        if answer is not None:
            return answer
    return None


def _probe(machine: SshMachine) -> str | None:
    try:
        done = subprocess.run(
            _without_control(machine.ssh_command()) + ["sh", "-s"],
            input=b"id -u; command -v iptables >/dev/null && echo iptables",
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(f"{machine.entry.describe()}: no answer over SSH in 30 s") from None
    except FileNotFoundError:
        raise InventoryError(
            "the SSH host needs OpenSSH's client: apt-get install openssh-client"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").splitlines()
        said = "; ".join(line.strip() for line in lines if line.strip())
        raise InventoryError(
            f"cannot log in to {machine.entry.describe()} over SSH: "
            f"{said or f'exit {done.returncode}'} (check the inventory's address, user, "
            "identity_file and known_hosts)"
        )
    lines = done.stdout.decode().split()
    if lines[:1] != ["0"]:
        return f"the SSH user on {machine.name} is not root, so iptables cannot cut links there"
    if "iptables" not in lines:
        return f"{machine.name} has no iptables (apt-get install iptables there)"
    return None


def _without_control(command: list[str]) -> list[str]:
    """An ssh command line without connection sharing (a probe before the run's folder)."""
    kept: list[str] = []
    skip = False
    for index, part in enumerate(command):
        if skip:
            skip = False
            continue
        if part == "-o" and command[index + 1].startswith("Control"):
            skip = True
            continue
        kept.append(part)
    return kept
