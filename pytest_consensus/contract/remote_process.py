"""A node's process on another machine, reached through a remote shell (the SSH host).

The node's command runs there under a small ``sh`` wrapper that records the node's pid and,
when it ends, its exit status in files beside its log, so that signals (kill, pause, stop)
go to the node's own pid on its machine, and an exit is seen as on the other hosts. The
node's log stays on its machine and is copied here whenever the node stops or is asked
for its last lines, so a test's evidence holds every node's log as on the other hosts.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Protocol

from pytest_consensus.contract.errors import HarnessError, NodeStartError
from pytest_consensus.contract.process import NodeProcess

if TYPE_CHECKING:
    from pytest_consensus.contract.interface import HostSpec

#: How long a killed or stopped node may take to be seen as exited on its machine.
EXIT_TIMEOUT = 10.0
#: How long the wrapper may take to write the node's pid after the start command returns.
PID_TIMEOUT = 10.0
#: The ending of the files that hold a node's pid on its machine (the SSH host kills every
#: pid in such files that a test or a run left).
PID = ".node-pid"

#: The ending of the file that holds the pid of a node's wrapper (beside its ``PID`` file).
WRAPPER_PID = ".wrapper-pid"
#: The ending of the file the wrapper writes the node's exit status to once it has ended.
EXIT = ".exit"

#: The wrapper: records its own pid, runs the node, writes the node's pid, waits, writes its
#: exit status (as a shell reports it: 128 + the signal for a killed node).
WRAPPER = (
    'pidfile=$1 exitfile=$2 log=$3; shift 3; rm -f "$exitfile"; '
    f'echo $$ >"${{pidfile%{PID}}}{WRAPPER_PID}"; '
    '"$@" >>"$log" 2>&1 </dev/null & '
    'echo $! >"$pidfile.new" && mv "$pidfile.new" "$pidfile"; '
    'wait $!; echo $? >"$exitfile"'
)


def kill_nodes_script(folder: str) -> str:
    """Shell that SIGKILLs every node a run started under ``folder`` on a machine.

    Wrappers die first: a wrapper outliving its node writes the node's exit status into the
    folder, which raced the folder's removal and left it behind. A start whose exit status
    is written has ended, so its pids (maybe reused since) are left alone."""
    quoted = shlex.quote(folder)
    return (
        f"for f in $(find {quoted} -name '*{PID}' 2>/dev/null); do "
        f'start="${{f%{PID}}}"; [ -s "$start{EXIT}" ] && continue; '
        f'[ -s "$start{WRAPPER_PID}" ] && kill -KILL $(cat "$start{WRAPPER_PID}") 2>/dev/null; '
        'kill -KILL $(cat "$f") 2>/dev/null; done; true'
    )


def remove_folder_script(folder: str, attempts: int = 50) -> str:
    """Shell that removes ``folder``, again every 0.1 s (up to ``attempts`` times) while a
    process that was dying as it began still wrote into it."""
    quoted = shlex.quote(folder)
    return (
        f"i=0; while [ -e {quoted} ] && [ $i -lt {attempts} ]; do "
        f"rm -rf {quoted} 2>/dev/null; [ -e {quoted} ] && sleep 0.1; i=$((i+1)); done; true"
    )


class RemoteMachine(Protocol):
    """A machine nodes run on, as the SSH host gives it: run a shell script there."""

    name: str

    def run(self, script: str, *, check: bool = True, timeout: float = 30.0) -> str:
        """Run ``script`` with ``sh`` on the machine; its stdout. A failure (with ``check``)
        or no answer is a HarnessError that names the machine."""
        ...

    def program(self, path: str) -> str:
        """Where the machine has the program this machine calls ``path`` (the inventory's
        ``programs`` table; the same path by default)."""
        ...

    def remote_path(self, local: os.PathLike[str] | str) -> PurePosixPath:
        """Where a node folder this harness names locally is on the machine."""
        ...

    def fetch(self, remote: PurePosixPath, local: os.PathLike[str] | str) -> None:
        """Copy a file from the machine (its log) to this machine; absent is fine."""
        ...


class RemoteNodeProcess(NodeProcess):
    """A :class:`NodeProcess` on a :class:`RemoteMachine`: same signals, same exit codes,
    its log copied back to ``log_path``."""

    def __init__(
        self,
        name: str,
        machine: RemoteMachine,
        argv: Sequence[str],
        log_path: os.PathLike[str] | str,
        env: Mapping[str, str],
        cwd: os.PathLike[str] | str | None = None,
    ) -> None:
        from pathlib import Path

        super().__init__(name, argv, Path(log_path), dict(env), None if cwd is None else Path(cwd))
        self.machine = machine
        self.remote_log = machine.remote_path(log_path)
        self.remote_cwd = machine.remote_path(cwd) if cwd is not None else self.remote_log.parent
        self._pidfile = self._exitfile = self.remote_log
        self._pid: int | None = None
        self._checked = False

    @property
    def pid(self) -> int | None:
        return self._pid

    def _command(self) -> list[str]:
        return [self.machine.program(self.argv[0]), *self.argv[1:]]

    def _environment(self) -> dict[str, str]:
        """What the adapter set or changed in its environment; the rest is this machine's,
        which another machine has its own of."""
        return {k: v for k, v in self.env.items() if os.environ.get(k) != v}

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        # Files of this start alone (of this process object or another on the same log):
        # the wrapper of a killed run may still be writing its exit status when the next
        # run starts.
        start = f"{self.remote_log.stem}.{uuid.uuid4().hex[:12]}"
        self._pidfile = self.remote_log.with_name(f"{start}{PID}")
        self._exitfile = self.remote_log.with_name(f"{start}{EXIT}")
        command = self._command()
        folders = {str(self.remote_log.parent), str(self.remote_cwd)}
        quoted = " ".join(shlex.quote(part) for part in command)
        environment = " ".join(
            shlex.quote(f"{key}={value}") for key, value in sorted(self._environment().items())
        )
        check = (
            ""
            if self._checked
            else (
                f"command -v {shlex.quote(command[0])} >/dev/null 2>&1 || "
                f"{{ echo 'no program {command[0]} on {self.machine.name}' >&2; exit 127; }}; "
            )
        )
        pidfile = shlex.quote(str(self._pidfile))
        # One step a line: only the last is a background job (``a && b &`` would put the
        # whole list in the background, racing the wait for the pid file).
        script = (
            f"{check}mkdir -p {' '.join(shlex.quote(f) for f in sorted(folders))} || exit 1\n"
            f"cd {shlex.quote(str(self.remote_cwd))} || exit 1\n"
            f"env {environment} setsid sh -c {shlex.quote(WRAPPER)} node {pidfile} "
            f"{shlex.quote(str(self._exitfile))} {shlex.quote(str(self.remote_log))} {quoted} "
            ">/dev/null 2>&1 </dev/null &\n"
            f"i=0; while [ ! -s {pidfile} ] && [ $i -lt {int(PID_TIMEOUT * 100)} ]; do "
            f"sleep 0.01; i=$((i+1)); done; cat {pidfile}"
        )
        try:
            answer = self.machine.run(script)
        except HarnessError as error:
            raise NodeStartError(self.name, f"on {self.machine.name}: {error}", "") from error
        try:
            self._pid = int(answer.split()[-1])
        except (ValueError, IndexError):
            raise NodeStartError(
                self.name,
                f"on {self.machine.name}: its start reported no pid ({answer.strip()!r})",
                self.log_tail(),
            ) from None
        self._checked = True

    def _state(self) -> tuple[bool, int | None]:
        """(running, exit status) from the node's machine."""
        if self._pid is None:
            return False, None
        exitfile = shlex.quote(str(self._exitfile))
        answer = self.machine.run(
            f"if [ -s {exitfile} ]; then echo exited $(cat {exitfile}); "
            f"elif kill -0 {self._pid} 2>/dev/null; then echo running; else echo gone; fi",
            check=False,
        ).split()
        if answer[:1] == ["running"]:
            return True, None
        if answer[:1] == ["exited"] and len(answer) > 1 and answer[1].isdigit():
            code = int(answer[1])
            return False, -(code - 128) if 128 < code < 128 + 65 else code
        return False, None

    def is_running(self) -> bool:
        return self._state()[0]

    def exit_code(self) -> int | None:
        running, code = self._state()
        return None if running else code

    def signal(self, signum: int) -> None:
        if self._pid is not None:
            self.machine.run(f"kill -{int(signum)} {self._pid} 2>/dev/null", check=False)

    def _wait_exited(self, timeout: float) -> bool:
        """Whether the node ended within ``timeout``: its wrapper recorded its exit status,
        or (a wrapper killed too) its pid is gone."""
        deadline = time.monotonic() + timeout
        while True:
            running, code = self._state()
            if not running and (code is not None or time.monotonic() > deadline - timeout / 2):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL and wait until its machine reports it gone; a paused process dies too."""
        if self._pid is None:
            return
        self.signal(signal.SIGKILL)
        if not self._wait_exited(EXIT_TIMEOUT):
            raise HarnessError(
                f"{self.name} (pid {self._pid} on {self.machine.name}) still runs "
                f"{EXIT_TIMEOUT:.0f} s after SIGKILL"
            )
        self._copy_log()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after ``grace``."""
        if self._pid is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self._wait_exited(grace):
            self.kill()
        self._copy_log()

    def _copy_log(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.machine.fetch(self.remote_log, self.log_path)
        except HarnessError:
            pass  # the evidence is short of this log; the test's verdict does not depend on it

    def log_tail(self, lines: int = 40) -> str:
        self._copy_log()
        return super().log_tail(lines)


def python_there(machine: RemoteMachine, code: str) -> str:
    """A shell command that runs ``code`` with the Python the machine maps this one's to, in
    the environment a node's Python gets (the import path of this process, which a machine
    sharing this one's folders uses, and another machine ignores)."""
    from pytest_consensus.contract.child_python import python_environment

    changed = {k: v for k, v in python_environment().items() if os.environ.get(k) != v}
    environment = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(changed.items()))
    python = shlex.quote(machine.program(sys.executable))
    return f"env {environment} {python} -c {shlex.quote(code)}"


def write_node_file(
    host: HostSpec, path: os.PathLike[str] | str, text: str, *, durable: bool = False
) -> str:
    """Write a file a node reads (its configuration, an id) where the node runs: here, or
    on its machine (the SSH host); the path to give the node. ``path`` is under the node's
    ``log_dir`` or ``data_dir`` as the HostSpec names them. With ``durable``, the file and
    its name are synced (it lives on the store's disk, which a power cut takes back)."""
    from pathlib import Path

    if host.machine is None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if durable:
            folder = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        return str(target)
    there = PurePosixPath(path)
    if Path(path).is_relative_to(host.log_dir):
        there = host.machine.remote_path(path)
    marker = "PYTEST_CONSENSUS_FILE_END"
    if marker in text:
        raise HarnessError(f"a node file for {host.name} may not contain {marker}")
    quoted = shlex.quote(str(there))
    sync = f" && sync {quoted} {shlex.quote(str(there.parent))}" if durable else ""
    host.machine.run(
        f"mkdir -p {shlex.quote(str(there.parent))} && cat > {quoted} <<'{marker}'\n"
        f"{text.removesuffix(chr(10))}\n{marker}\n: {sync}"
    )
    return str(there)


def make_node_folder(host: HostSpec, path: os.PathLike[str] | str) -> None:
    """Create a folder a node needs (its data directory) where the node runs."""
    if host.machine is None:
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
    else:
        host.machine.run(f"mkdir -p {shlex.quote(str(path))}")
