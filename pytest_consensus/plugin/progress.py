"""Live progress for long conformance tests: which rule, which fault is active, how many
operations are done. A line every few seconds while a test runs, written past pytest's
output capture the way pytest's own live logging does, so it shows in a terminal and in CI
logs alike; tests shorter than the interval print nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_consensus.clients.history import NEMESIS, History
from pytest_consensus.plugin.keys import rule_and_adapter


@dataclass
class RunningTest:
    """The test in its call phase: what the progress line names."""

    rule: str | None
    adapter: str | None
    name: str
    #: When the test's setup began: histories made before that belong to earlier tests.
    setup_started: float
    started: float


def describe_fault(history: History | None, now: float) -> str:
    """The active fault from the latest nemesis event, or "none"."""
    event = history.last_nemesis() if history is not None else None
    if event is None or event.process != NEMESIS or event.f.startswith("heal-"):
        return "none"
    kind = event.f.removeprefix("start-")
    targets = ",".join(
        "->".join(map(str, t)) if isinstance(t, list | tuple) else str(t)
        for t in (event.value or [])
    )
    since = now - (history.origin + event.time) if history is not None else 0.0
    return f"{kind} {targets} (for {since:.0f}s)".replace("  ", " ")


def describe_operations(history: History | None) -> str:
    counts = history.completed() if history is not None else {}
    return (
        f"{counts.get('ok', 0)} ok, {counts.get('fail', 0)} failed, {counts.get('info', 0)} unknown"
    )


class ProgressReporter:
    """A pytest plugin: a thread prints a progress line every ``interval`` seconds of a
    test's call phase. The lock keeps it from writing while pytest itself writes."""

    def __init__(self, config: pytest.Config, interval: float) -> None:
        self.config = config
        self.interval = interval
        self.lock = threading.Lock()
        self.running: RunningTest | None = None
        self.setup_started = 0.0
        self.last_print = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="consensus-progress", daemon=True)
        self.thread.start()

    def line(self, test: RunningTest, now: float) -> str:
        history = History.latest()
        if history is not None and history.origin < test.setup_started:
            history = None
        what = " ".join(p for p in (test.rule, f"[{test.adapter}]" if test.adapter else "") if p)
        return (
            f"  consensus progress: {what or test.name} {now - test.started:.0f}s · "
            f"fault: {describe_fault(history, now)} · operations: {describe_operations(history)}"
        )

    def loop(self) -> None:
        while not self.stopped.wait(self.interval / 5):
            with self.lock:
                test = self.running
                now = time.monotonic()
                if test is None or now - test.started < self.interval:
                    continue
                if now - self.last_print < self.interval:
                    continue
                self.last_print = now
                self.write(self.line(test, now))

    def write(self, line: str) -> None:
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            self._write(line)
            return
        with capture.global_and_fixture_disabled():
            self._write(line)

    def _write(self, line: str) -> None:
        """To pytest's terminal; in a pytest-xdist worker, whose terminal output goes
        nowhere, to the stderr it inherited from the controller (the user's terminal or
        CI log), naming the worker."""
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        if worker is not None:
            stream = sys.__stderr__
            if stream is not None:
                stream.write(f"\n[{worker}]{line}\n")
                stream.flush()
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        rule, adapter = rule_and_adapter(item)
        with self.lock:
            self.running = RunningTest(
                rule, adapter, item.name, self.setup_started, time.monotonic()
            )
            self.last_print = time.monotonic()
        try:
            return (yield)
        finally:
            with self.lock:
                self.running = None

    def pytest_runtest_setup(self) -> None:
        self.setup_started = time.monotonic()

    def pytest_unconfigure(self) -> None:
        self.stopped.set()
        self.thread.join(5)
