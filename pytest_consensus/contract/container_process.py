"""A node's process run in a container of its own, for the Docker host.

Adapters whose nodes are local programs (PySyncObj's Python, nats-server, ZooKeeper's Java,
a user's binary) need no image of their own on the Docker host: the node's command runs in a
container that sees this machine's programs read-only (``/usr``, ``/etc``, the libraries,
Python's prefix and import path, any folder the command names), its own node folder
writable, and the network namespace of the node's holder container (``container:HOLDER``,
the Docker host's ``HostSpec.container_network``). It shares the host's process ids
(``pid_mode=host``), so a kill or a pause is the same signal to the same process as on the
other hosts, and a node's watch of the harness's pid keeps working.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_consensus.contract import reaper
from pytest_consensus.contract.errors import HarnessError, NodeStartError
from pytest_consensus.contract.interface import HostSpec
from pytest_consensus.contract.process import NodeProcess

#: This machine's folders of programs, libraries and their settings, shared read-only.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
#: Never shared whole: scratch space stays the container's own (a module inside is shared
#: by its own folder), and the kernel's file systems are the engine's to mount.
NOT_SHARED = ("/", "/tmp", "/var/tmp", "/dev", "/proc", "/sys", "/run")
#: How long a killed or stopped node's container may take to be seen as exited.
EXIT_TIMEOUT = 10.0


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths with those inside another one left out (one mount covers them)."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path == other or other in path.parents for other in kept):
            kept.append(path)
    return kept


_ENGINE: Any = None


def _engine() -> Any:
    """One engine client for every node process of this pytest process (a client per node
    would hold a connection pool per node for the whole run)."""
    global _ENGINE
    if _ENGINE is None:
        import docker

        _ENGINE = docker.from_env(timeout=60)
    return _ENGINE


def _module_files() -> list[str]:
    files = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return [f for f in files if isinstance(f, str) and f.startswith("/")]


def mounts_for(
    argv: Sequence[str], env: Mapping[str, str], writable: Sequence[Path]
) -> dict[str, dict[str, str]]:
    """Docker bind mounts (host path -> where and how) for running ``argv`` as it would run
    here: system folders, Python's prefixes, import path and the folders of the modules
    loaded here, and every existing absolute path the command names, read-only;
    ``writable`` read-write."""
    named: list[Path] = [Path(folder) for folder in SYSTEM_FOLDERS]
    named += [Path(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, *sys.path) if p]
    named += [Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    # Where this process found its modules: an editable install maps packages to a source
    # tree that no import path names, and a node importing the same modules needs it.
    named += [Path(f).parent for f in _module_files()]
    named += [Path(arg) for arg in argv if arg.startswith("/")]
    read_only = []
    for path in named:
        if not path.is_absolute() or not path.exists():
            continue
        folder = path if path.is_dir() else path.parent
        if str(folder) not in NOT_SHARED:
            read_only.append(folder)
    writable = _outermost(writable)
    mounts = {
        str(path): {"bind": str(path), "mode": "ro"}
        for path in _outermost(read_only)
        if not any(w == path or w in path.parents for w in writable)
    }
    mounts.update({str(path): {"bind": str(path), "mode": "rw"} for path in writable})
    return mounts


class ContainerNodeProcess(NodeProcess):
    """A :class:`NodeProcess` whose process lives in a container: started and restarted
    with the engine, signalled by its host pid like any other node's."""

    def __init__(
        self,
        host: HostSpec,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str],
        cwd: Path | None = None,
    ) -> None:
        super().__init__(host.name, argv, log_path, env, cwd)
        if host.container is None or not (host.container_network or "").startswith("container:"):
            raise HarnessError(
                f"{host.name}: a node process runs in a container only on the Docker host "
                "with network faults (a holder's namespace to join)"
            )
        self.host = host
        self.container = host.container
        self._holder = (host.container_network or "").removeprefix("container:")
        self._id: str | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    def _api(self) -> Any:
        return _engine().api

    def _create(self) -> str:
        """The container, made once: later starts run it again, as a restart runs the
        process again. Its output goes to the node's log through the host's shell."""
        api = self._api()
        holder = api.inspect_container(self._holder)
        writable = [self.log_path.parent, self.host.data_dir]
        for folder in writable:
            folder.mkdir(parents=True, exist_ok=True)
        command = ["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1', str(self.log_path), *self.argv]
        created = api.create_container(
            holder["Config"]["Image"],
            command=command,
            name=self.container,
            labels=holder["Config"]["Labels"],  # the run's label: swept with its holder
            environment=dict(self.env),
            working_dir=str(self.cwd) if self.cwd else None,
            host_config=api.create_host_config(
                network_mode=self.host.container_network,
                pid_mode="host",
                binds=mounts_for(self.argv, self.env, writable),
            ),
        )
        return str(created["Id"])

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        try:
            if self._id is None:
                self._id = self._create()
            api = self._api()
            api.start(self._id)
            self._pid = int(api.inspect_container(self._id)["State"]["Pid"])
        except Exception as error:
            raise NodeStartError(
                self.name, f"its container {self.container} did not start: {error}", ""
            ) from error
        if self._pid:
            reaper.register(self._pid)
            self._registered = True

    def _state(self) -> dict[str, Any]:
        if self._id is None:
            return {}
        try:
            return dict(self._api().inspect_container(self._id)["State"])
        except Exception:
            return {}

    def is_running(self) -> bool:
        return bool(self._state().get("Running"))

    def exit_code(self) -> int | None:
        """As a local process's: negative for the signal that ended it (the engine reports
        128 plus the signal, as a shell does)."""
        state = self._state()
        if not state or state.get("Running"):
            return None
        code = int(state.get("ExitCode", 0))
        return -(code - 128) if 128 < code < 128 + 65 else code

    def signal(self, signum: int) -> None:
        if self._pid and self.is_running():
            try:
                os.kill(self._pid, signum)
            except ProcessLookupError:
                pass

    def _wait_exited(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def kill(self) -> None:
        """SIGKILL and wait for the container to exit; a paused process dies too."""
        if self._id is None:
            return
        self.signal(signal.SIGKILL)
        if not self._wait_exited(EXIT_TIMEOUT):
            self._api().kill(self._id)
        self._forget_pid()

    def _forget_pid(self) -> None:
        if self._registered and self._pid:
            reaper.unregister(self._pid)
            self._registered = False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (after SIGCONT), then SIGKILL after ``grace``."""
        if self._id is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self._wait_exited(grace):
            self.kill()
        self._forget_pid()


def node_process(
    host: HostSpec,
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str],
    cwd: Path | None = None,
) -> NodeProcess:
    """The process of node ``host``: a local one, on the Docker host one in a container of
    its own, on the SSH host one on the node's machine. Adapters whose nodes are programs
    call this and run on every host."""
    if host.machine is not None:
        from pytest_consensus.contract.remote_process import RemoteNodeProcess

        return RemoteNodeProcess(host.name, host.machine, argv, log_path, env, cwd)
    if host.container:
        return ContainerNodeProcess(host, argv, log_path, env, cwd)
    return NodeProcess(host.name, argv, log_path, env, cwd)
