"""Where the async API's calls run: a fixed set of worker threads, and native-async backends.

``Workers`` runs the blocking sync implementation off the event loop; ``native`` wraps a
backend that declares ``native_async`` so that, inside a composite on a worker, its methods
run as its ``aio`` coroutines on the loop while the worker waits.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import functools
import queue
import threading
import weakref
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

    ``run`` is the hot path: one queue put to hand a call over, one ``call_soon_threadsafe``
    to hand its outcome back. ``ThreadPoolExecutor`` plus ``asyncio.wrap_future`` cost a
    ``concurrent.futures.Future`` with its condition variable, a semaphore and two chained
    callbacks per call, ~15% of a hand-off that is already ~100 µs on a 2-vCPU VM. ``submit``
    keeps the ``concurrent.futures.Future`` for the calls that want one (opening, closing).

    Threads are started by ``start_all``, from a worker, not on demand: on the event loop
    thread ``Thread.start()`` is a stall (it waits until the new thread runs, which on a busy
    machine takes milliseconds per thread).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"veritas-aio_{i}", daemon=True)
            for i in range(size)
        ]
        self._threads[0].start()  # the others: start_all, on this one
        self._running = 0  # calls handed over by run() whose outcome the loop has not seen
        self._submitted: set[concurrent.futures.Future[Any]] = set()
        self._idle: asyncio.Future[None] | None = None  # drain() waiting for _running == 0
        self._closed = False
        _LIVE.add(self)

    def _work(self) -> None:
        get = self._jobs.get
        while (job := get()) is not None:
            job()

    @property
    def busy(self) -> bool:
        """Whether a call handed over is under way (its outcome not yet seen by the loop)."""
        return self._running > 0 or bool(self._submitted)

    def start_all(self) -> None:
        """Called on the first worker: start every other thread now."""
        for thread in self._threads[1:]:
            thread.start()

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Call ``fn`` on a worker; the future (on the running loop) gets its outcome.

        Cancelling the future before a worker takes the call means it never runs; after, it
        runs to the end and its outcome is dropped (``drain`` still waits for it).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()  # as asyncio.to_thread: the caller's contextvars

        def job() -> None:
            result: Any = None
            error: BaseException | None = None
            if not future.cancelled():  # a read of its state: cancelled before it started
                try:
                    result = context.run(fn, *args, **kwargs)
                except BaseException as exc:  # handed to the awaiting task, as run_in_executor
                    error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(self._settle, future, result, error)

        self._running += 1
        self._jobs.put(job)
        return future

    def _settle(
        self,
        future: asyncio.Future[Any],
        result: Any,
        error: BaseException | None,
    ) -> None:
        self._running -= 1
        if not future.cancelled():
            if error is None:
                future.set_result(result)
            elif isinstance(error, StopIteration):  # a future refuses it, as a coroutine does
                future.set_exception(RuntimeError(f"{type(error).__name__} raised in a worker"))
            else:
                future.set_exception(error)
        if not self._running and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Call ``fn`` on a worker, for a ``concurrent.futures.Future`` (callbacks, threads)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        context = contextvars.copy_context()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(context.run(fn, *args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self._submitted.add(future)
        future.add_done_callback(self._submitted.discard)
        self._jobs.put(job)
        return future

    async def drain(self) -> None:
        """Wait for every call handed over, cancelled callers' calls included."""
        while self.busy:
            if self._running:
                self._idle = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._idle)
            if pending := list(self._submitted):
                waits = [asyncio.wrap_future(job) for job in pending]
                await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))

    def shutdown(self) -> None:
        """Let every thread end once the calls already handed over are done."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)


# Worker threads are daemons so that a program that never closes its stores can still exit;
# at exit, as ThreadPoolExecutor does, the calls already handed over finish first (those of
# shut-down workers too: a running thread keeps its Workers, and so its entry here, alive).
_LIVE: weakref.WeakSet[Workers] = weakref.WeakSet()


def _finish_at_exit() -> None:
    for workers in list(_LIVE):
        workers.shutdown()
        for thread in workers._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join()


atexit.register(_finish_at_exit)


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
