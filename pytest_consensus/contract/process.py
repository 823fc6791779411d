"""A node's OS process: start with logs captured, signal it, and never leave it behind."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_consensus.contract import reaper
from pytest_consensus.contract.errors import NodeStartError


class NodeProcess:
    """One child process with its output appended to a log file.

    Each process gets its own session, so a Ctrl-C in the terminal reaches pytest (which
    tears clusters down in order) rather than every node at once; and is registered with the
    run's reaper (contract.reaper), which kills it if pytest dies without stopping it.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None
        # Whether the reaper still knows this process: unregistered once, when it is reaped.
        # A second unregister could forget another process that was given the reused pid.
        self._registered = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self._process = self._spawn(log)
            except OSError as error:
                raise NodeStartError(
                    self.name, f"cannot run {self.argv[0]!r}: {error}", ""
                ) from error
        reaper.register(self._process.pid)  # killed even if pytest dies first (kill -9)
        self._registered = True

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            close_fds=True,
        )

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def signal(self, signum: int) -> None:
        if self.is_running():
            assert self._process is not None
            os.kill(self._process.pid, signum)

    def kill(self) -> None:
        """SIGKILL and reap; a paused process dies too."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._registered:
            reaper.unregister(self._process.pid)
            self._registered = False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after ``grace``."""
        if self._process is None or self._process.poll() is not None:
            self.kill()
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self._process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # reaps and unregisters it, whether it stopped or not

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
