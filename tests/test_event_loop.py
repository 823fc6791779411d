"""EventLoopThread: an asyncio client driven by synchronous calls from many threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_consensus.contract import EventLoopThread, IndefiniteError, Timeout


def test_results_and_exceptions_come_back_to_the_caller() -> None:
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    async def refuse() -> None:
        raise KeyError("no such key")

    with EventLoopThread() as loop:
        assert loop.run(double(21), timeout=5) == 42
        with pytest.raises(KeyError, match="no such key"):
            loop.run(refuse(), timeout=5)


def test_calls_from_many_threads_at_once_share_the_loop() -> None:
    seen: set[int] = set()

    async def which_thread(n: int) -> int:
        await asyncio.sleep(0.01)
        seen.add(threading.get_ident())
        return n

    with EventLoopThread() as loop, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: loop.run(which_thread(n), timeout=5), range(40)))
    assert results == list(range(40))
    assert len(seen) == 1  # every coroutine ran on the loop's one thread


def test_a_slow_call_is_an_indefinite_timeout_and_is_cancelled() -> None:
    cancelled = threading.Event()

    async def never_answers() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with EventLoopThread() as loop:
        with pytest.raises(Timeout, match="no outcome within 0.2 s") as raised:
            loop.run(never_answers(), timeout=0.2)
        assert isinstance(raised.value, IndefiniteError)
        assert cancelled.wait(5)


def test_close_cancels_what_runs_and_leaves_no_thread() -> None:
    loop = EventLoopThread(name="closing-loop")
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    asyncio.run_coroutine_threadsafe(forever(), loop.loop)
    assert started.wait(5)
    loop.close()
    loop.close()  # twice is fine
    assert "closing-loop" not in [thread.name for thread in threading.enumerate()]
    with pytest.raises(RuntimeError, match="closed: make a new one"):
        loop.run(asyncio.sleep(0), timeout=1)


def test_run_from_the_loop_itself_says_to_await() -> None:
    with EventLoopThread() as loop:

        async def nested() -> None:
            loop.run(asyncio.sleep(0), timeout=1)

        with pytest.raises(RuntimeError, match="await the coroutine instead"):
            loop.run(nested(), timeout=5)
