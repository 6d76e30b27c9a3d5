"""Drive the async API from sync test code, so the sync suites run through it unchanged.

``LoopThread`` runs an event loop in a thread of its own; ``Synced`` wraps an async object so
that each coroutine method becomes a blocking call (run on that loop) and each async iterator
a plain iterator. The conformance kit and the recorder tests use these to check that the async
API behaves exactly like the sync one.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, awaitable: Awaitable[T], timeout: float = 120) -> T:
        async def wait() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Synced:
    """A blocking view of an async object (its coroutine methods run on ``runner``'s loop)."""

    def __init__(self, target: Any, runner: LoopThread) -> None:
        self._target = target
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._runner.call(result)
            if hasattr(result, "__aiter__"):
                return iter(self._runner.call(_collect(result)))
            return result

        return call


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]
