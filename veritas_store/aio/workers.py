"""Where the async API's calls run: a fixed set of worker threads, and native-async backends.

``Workers`` runs the blocking sync implementation off the event loop; ``native`` wraps a
backend that declares ``native_async`` so that, inside a composite on a worker, its methods
run as its ``aio`` coroutines on the loop while the worker waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..records.errors import BackendUnavailable, PluginError

T = TypeVar("T")

NATIVE_ASYNC = "native_async"
# Enough for every connection of SQLAlchemy's default pool (5 + 10 overflow) to be in use, and
# few enough that CPU-bound Python in the workers does not starve the event loop of the GIL.
DEFAULT_MAX_THREADS = 16


class Runner(Protocol):
    """Runs a blocking call off the event loop and gives its result (``AsyncStores._run``)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]: ...


class Workers:
    """A fixed set of worker threads, every one started before the first operation.

    ``ThreadPoolExecutor`` starts threads on demand, inside ``submit()``; on the event loop
    thread that is a stall (``Thread.start()`` waits until the new thread runs, which on a busy
    machine takes milliseconds per thread). ``start_all`` starts them from a worker instead.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="veritas-aio")
        self._pending: set[concurrent.futures.Future[Any]] = set()

    def start_all(self) -> None:
        """Called on the first worker: make the pool start every other thread now."""
        barrier = threading.Barrier(self.size)
        for _ in range(self.size - 1):  # each waits, so each submit starts a new thread
            self._pool.submit(barrier.wait)
        barrier.wait()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        call = functools.partial(fn, *args, **kwargs)
        job = self._pool.submit(contextvars.copy_context().run, call)  # as asyncio.to_thread
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)
        return job

    async def drain(self) -> None:
        """Wait for every submitted call, cancelled callers' calls included."""
        while pending := list(self._pending):
            waits = [asyncio.wrap_future(job) for job in pending]
            await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)


# -- native async backends -----------------------------------------------------------------------


def native(store: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """The store itself, or a stand-in that drives its ``aio`` coroutines on ``loop``."""
    if NATIVE_ASYNC not in getattr(store, "capabilities", frozenset()):
        return store
    if getattr(store, "aio", None) is None:
        raise PluginError(
            f"{type(store).__name__} declares the {NATIVE_ASYNC!r} capability but has no "
            "'aio' attribute with its coroutine methods"
        )
    return NativeAsyncBackend(store, loop)


class NativeAsyncBackend:
    """Stands in, inside a composite, for a backend that declares ``native_async``.

    A method that ``store.aio`` also has runs as that coroutine on the event loop, while the
    calling worker thread waits; ``aio.list`` may be an async iterator. Called on the loop
    thread itself, or once the loop has stopped, the backend's blocking method runs instead.
    Everything else is the backend's own attribute.
    """

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._aio = store.aio
        self._loop = loop

    @property
    def native(self) -> Any:
        """The backend object itself."""
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        coroutine_fn = getattr(self._aio, name, None)
        if coroutine_fn is None or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._loop.is_running() or _running_loop() is self._loop:
                return attr(*args, **kwargs)
            return self._wait(coroutine_fn, args, kwargs, name)

        return call

    def _wait(self, fn: Callable[..., Any], args: Any, kwargs: Any, name: str) -> Any:
        async def drive() -> Any:
            result = fn(*args, **kwargs)
            if hasattr(result, "__aiter__"):  # aio.list of a blob store
                return iter([item async for item in result])
            return await result

        future = asyncio.run_coroutine_threadsafe(drive(), self._loop)
        while True:
            try:
                return future.result(timeout=1.0)
            except TimeoutError:
                if future.done():
                    raise  # the coroutine's own TimeoutError
                if not self._loop.is_running():
                    future.cancel()
                    raise BackendUnavailable(
                        f"the event loop driving {self._store!r} stopped during {name}()"
                    ) from None

    def __repr__(self) -> str:
        return f"{self._store!r} (native async)"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
