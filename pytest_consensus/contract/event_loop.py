"""An asyncio client behind the contract's synchronous calls.

Many store clients are asyncio only (nats-py, grpc.aio, aiohttp-based ones), while the
contract's :class:`Client` and :class:`Node` methods are plain calls made from the suite's
worker threads. An adapter keeps one :class:`EventLoopThread` (per cluster, say), creates
its connections on it, and turns each call into ``loop.run(coroutine, timeout)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pytest_consensus.contract.errors import Timeout

Result = TypeVar("Result")


class EventLoopThread:
    """One event loop running in a daemon thread of its own; thread-safe.

    ``run`` may be called from any number of threads at once (never from a coroutine on
    this loop, which would wait for itself). ``close`` cancels what is still running,
    stops the loop and joins the thread; it is safe to call twice.
    """

    def __init__(self, name: str = "consensus-event-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._started.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, Result], timeout: float) -> Result:
        """The coroutine's result, or its exception, raised here. Past ``timeout`` seconds
        it is cancelled and :class:`Timeout` (indefinite: it may have taken effect) is
        raised, so an adapter maps a slow store as the taxonomy says."""
        if self.loop.is_closed() or not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("this EventLoopThread is closed: make a new one")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "EventLoopThread.run called on its own loop: await the coroutine instead"
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Timeout(f"no outcome within {timeout} s (the call was cancelled)") from None

    def close(self, timeout: float = 5.0) -> None:
        """Cancel the loop's tasks, stop it, and join its thread."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():

            async def cancel_everything() -> None:
                current = asyncio.current_task()
                tasks = [task for task in asyncio.all_tasks() if task is not current]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_everything(), self.loop).result(timeout)
            except concurrent.futures.TimeoutError:
                pass  # a task that ignores cancellation: stop the loop under it anyway
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> EventLoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["EventLoopThread"]
