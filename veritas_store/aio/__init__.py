"""The async API: the stores of ``open_stores`` as coroutines, for asyncio services.

Every operation runs the one sync implementation (the composite's write and read rules,
``ScreenshotStorage``, ``AuditRecorder``) on a fixed set of worker threads, so the async API
cannot drift from the sync one and no call blocks the event loop. A backend that declares the
``native_async`` capability is driven through its ``aio`` coroutines on the event loop instead:
the composite rules stay in the worker thread, which waits for the coroutine.

Read-modify-write operations (``screenshots.save`` and every ``AsyncAuditRecorder`` call) queue
on a per-audit ``asyncio.Lock`` first, so tasks waiting for the same audit wait on the loop and
do not each hold a worker thread; inside the worker the sync code still takes its thread lock,
which keeps async tasks and sync threads sharing one ``Stores`` from losing each other's change.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import itertools
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ..composite.audits import CompositeAuditStore
from ..composite.blobs import CompositeBlobStore
from ..recorder import DEFAULT_TIER, DEFAULT_VERDICT_MODE, AuditRecorder
from ..records.errors import BackendUnavailable, PluginError
from ..records.keys import validate_audit_id, validate_blob_prefix
from ..records.model import Audit, AuditEvent, AuditPage, AuditStatus, BlobInfo, Screenshot
from ..wiring.config import load_config
from ..wiring.stores import ConfigSource, Stores, build_stores, registry_with

T = TypeVar("T")

NATIVE_ASYNC = "native_async"
# Enough for every connection of SQLAlchemy's default pool (5 + 10 overflow) to be in use, and
# few enough that CPU-bound Python in the workers does not starve the event loop of the GIL.
DEFAULT_MAX_THREADS = 16
_LIST_CHUNK = 1000  # blob keys fetched per worker call while iterating a listing


def open_async_stores(
    config: ConfigSource = None,
    *,
    plugins: Iterable[object] = (),
    max_threads: int = DEFAULT_MAX_THREADS,
) -> _Opening:
    """Open the stores of a config for asyncio: ``async with open_async_stores() as stores``.

    The arguments are those of ``open_stores``, plus ``max_threads``: how many worker threads
    run the sync backends (and so how many store operations run at once; more wait in line).
    ``await open_async_stores()`` works too; then close the stores with ``await
    stores.aclose()``. Opening runs in a worker thread, so a slow backend does not stall the
    loop.
    """
    if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
        raise ValueError(f"max_threads must be an int of at least 1, got {max_threads!r}")
    return _Opening(config, tuple(plugins), max_threads)


class _Opening:
    """What ``open_async_stores`` returns: awaitable, and an async context manager."""

    def __init__(self, config: ConfigSource, plugins: tuple[object, ...], threads: int) -> None:
        self._args = (config, plugins, threads)
        self._stores: AsyncStores | None = None

    def __await__(self) -> Generator[Any, None, AsyncStores]:
        return _open(*self._args).__await__()

    async def __aenter__(self) -> AsyncStores:
        self._stores = await _open(*self._args)
        return self._stores

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stores is not None:
            await self._stores.aclose()


async def _open(config: ConfigSource, plugins: tuple[object, ...], threads: int) -> AsyncStores:
    loop = asyncio.get_running_loop()
    workers = _Workers(threads)

    def open_all() -> Stores:
        workers.start_all()  # here, not on the loop: starting a thread waits for it to run
        return build_stores(
            load_config(config), registry_with(plugins), lambda store: _native(store, loop)
        )

    job = workers.submit(open_all)
    try:
        stores = await asyncio.wrap_future(job)
    except BaseException:
        # Cancelled while the worker was still opening: close what it opens, then stop.
        job.add_done_callback(_close_opened)
        workers.shutdown()
        raise
    return AsyncStores(stores, workers)


def _close_opened(job: concurrent.futures.Future[Stores]) -> None:
    if not job.cancelled() and job.exception() is None:
        job.result().close()


class AsyncStores:
    """The async stores of a config. ``async with`` it (or ``await aclose()``) to close them.

    ``audits``, ``blobs`` and ``screenshots`` mirror ``Stores``; ``sync`` is the underlying
    ``Stores`` for code that runs in a thread of its own. Use them from the event loop that
    opened them.
    """

    def __init__(self, stores: Stores, workers: _Workers) -> None:
        self.sync = stores
        self.config = stores.config
        self.registry = stores.registry
        self.max_threads = workers.size
        self._workers = workers
        self._audit_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False
        self.audits = AsyncAuditStore(stores.audits, self._run)
        self.blobs = AsyncBlobStore(stores.blobs, self._run)
        self.screenshots = AsyncScreenshotStorage(self)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise RuntimeError("these AsyncStores are closed")
        return await asyncio.wrap_future(self._workers.submit(fn, *args, **kwargs))

    async def _locked(self, audit_id: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a read-modify-write of one audit, after every earlier one on that audit."""
        validate_audit_id(audit_id)  # before it becomes a lock key
        lock = self._audit_locks.get(audit_id)
        if lock is None:  # kept alive by its holder and waiters, then dropped
            lock = self._audit_locks[audit_id] = asyncio.Lock()
        async with lock:
            return await self._run(fn, *args)

    async def aclose(self) -> None:
        """Wait for the operations under way, then close every backend. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._workers.drain()
            # On a worker: a native-async backend's close() is a coroutine on this loop.
            await asyncio.shield(asyncio.wrap_future(self._workers.submit(self.sync.close)))
        finally:
            self._workers.shutdown()

    async def __aenter__(self) -> AsyncStores:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"


class _Workers:
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
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
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


def _native(store: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """The store itself, or a stand-in that drives its ``aio`` coroutines on ``loop``."""
    if NATIVE_ASYNC not in getattr(store, "capabilities", frozenset()):
        return store
    if getattr(store, "aio", None) is None:
        raise PluginError(
            f"{type(store).__name__} declares the {NATIVE_ASYNC!r} capability but has no "
            "'aio' attribute with its coroutine methods"
        )
    return _NativeAsyncBackend(store, loop)


class _NativeAsyncBackend:
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


# -- the async stores ----------------------------------------------------------------------------


class Runner(Protocol):
    """Runs a blocking call off the event loop and gives its result (``AsyncStores._run``)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]: ...


class AsyncAuditStore:
    """``AuditStore`` as coroutines, over the composite of ``open_async_stores``."""

    def __init__(self, audits: CompositeAuditStore, run: Runner) -> None:
        self._audits = audits
        self._run = run

    @property
    def sync(self) -> Any:
        """The sync composite (its ``backends``, ``members`` and ``authoritative``)."""
        return self._audits

    @property
    def capabilities(self) -> frozenset[str]:
        """What the composite can do (``veritas_store.Capability`` values), as in the sync API."""
        return frozenset(self._audits.capabilities)

    async def create(self, audit: Audit) -> None:
        await self._run(self._audits.create, audit)

    async def get(self, audit_id: str) -> Audit | None:
        return await self._run(self._audits.get, audit_id)

    async def get_with_source(self, audit_id: str) -> tuple[Audit | None, str | None]:
        """The audit and the name of the backend that answered (None, None if nowhere)."""
        return await self._run(self._audits.get_with_source, audit_id)

    async def update(self, audit: Audit) -> None:
        await self._run(self._audits.update, audit)

    async def delete(self, audit_id: str) -> bool:
        return await self._run(self._audits.delete, audit_id)

    async def list(
        self,
        status: AuditStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        risk_level: str | None = None,
        url: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order: str = "newest",
    ) -> AuditPage:
        return await self._run(
            self._audits.list,
            status=status,
            limit=limit,
            cursor=cursor,
            risk_level=risk_level,
            url=url,
            created_after=created_after,
            created_before=created_before,
            order=order,
        )

    async def append_events(
        self, audit_id: str, events: Iterable[AuditEvent]
    ) -> tuple[AuditEvent, ...]:
        return await self._run(self._audits.append_events, audit_id, list(events))

    async def events(
        self, audit_id: str, after: int | None = None, limit: int = 1000
    ) -> tuple[AuditEvent, ...]:
        return await self._run(self._audits.events, audit_id, after=after, limit=limit)

    async def close(self) -> None:
        await self._run(self._audits.close)


class AsyncBlobStore:
    """``BlobStore`` as coroutines; ``list(prefix)`` is an async iterator."""

    def __init__(self, blobs: CompositeBlobStore, run: Runner) -> None:
        self._blobs = blobs
        self._run = run

    @property
    def sync(self) -> Any:
        """The sync composite (its ``backends``, ``members`` and ``authoritative``)."""
        return self._blobs

    @property
    def capabilities(self) -> frozenset[str]:
        """What the composite can do (``veritas_store.Capability`` values), as in the sync API."""
        return frozenset(self._blobs.capabilities)

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        return await self._run(self._blobs.put, key, data, content_type)

    async def get(self, key: str) -> bytes:
        return await self._run(self._blobs.get, key)

    async def get_with_source(self, key: str) -> tuple[bytes, str]:
        return await self._run(self._blobs.get_with_source, key)

    async def exists(self, key: str) -> bool:
        return await self._run(self._blobs.exists, key)

    async def delete(self, key: str) -> bool:
        return await self._run(self._blobs.delete, key)

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """``async for key in blobs.list("a1/")``: keys in lexicographic order.

        A bad prefix raises ``InvalidKey`` here, before any iteration.
        """
        validate_blob_prefix(prefix)
        return _AsyncKeys(self._run, functools.partial(self._blobs.list, prefix))

    async def url(self, key: str, expires: int = 3600) -> str:
        return await self._run(self._blobs.url, key, expires=expires)

    async def close(self) -> None:
        await self._run(self._blobs.close)


class _AsyncKeys:
    """An async iterator over a sync listing, fetched in chunks on the worker threads."""

    def __init__(self, run: Runner, listing: Callable[[], Iterable[str]]) -> None:
        self._run = run
        self._listing = listing
        self._keys: Any = None
        self._buffer: collections.deque[str] = collections.deque()
        self._exhausted = False

    def __aiter__(self) -> _AsyncKeys:
        return self

    async def __anext__(self) -> str:
        if not self._buffer and not self._exhausted:
            chunk = await self._run(self._next_chunk)
            self._buffer.extend(chunk)
            self._exhausted = len(chunk) < _LIST_CHUNK
        if not self._buffer:
            raise StopAsyncIteration
        return self._buffer.popleft()

    def _next_chunk(self) -> list[str]:
        if self._keys is None:
            self._keys = iter(self._listing())
        return list(itertools.islice(self._keys, _LIST_CHUNK))


class AsyncScreenshotStorage:
    """``ScreenshotStorage`` as coroutines: ``save`` and ``load``."""

    def __init__(self, stores: AsyncStores) -> None:
        self._stores = stores
        self._screenshots = stores.sync.screenshots

    async def save(self, audit_id: str, index: int, label: str, data: bytes | str) -> Screenshot:
        """Store a screenshot and add (or replace) its reference on the audit."""
        return await self._stores._locked(
            audit_id, self._screenshots.save, audit_id, index, label, data
        )

    async def load(self, audit_id: str, index: int) -> bytes:
        """The screenshot's bytes, checked against the sha256 on its reference."""
        return await self._stores._run(self._screenshots.load, audit_id, index)


class AsyncAuditRecorder:
    """``AuditRecorder`` as coroutines: the same rules, run by the sync recorder on a worker."""

    def __init__(self, stores: AsyncStores) -> None:
        if not isinstance(stores, AsyncStores):
            raise TypeError(
                "AsyncAuditRecorder needs the stores of open_async_stores(); "
                f"got {type(stores).__name__} (use AuditRecorder with open_stores())"
            )
        self._stores = stores
        self._recorder = AuditRecorder(stores.sync)

    async def started(
        self,
        audit_id: str,
        url: str,
        tier: str = DEFAULT_TIER,
        verdict_mode: str = DEFAULT_VERDICT_MODE,
    ) -> Audit:
        """The audit exists with status running and ``started_at`` set."""
        return await self._stores._locked(
            audit_id, self._recorder.started, audit_id, url, tier, verdict_mode
        )

    async def completed(self, audit_id: str, result: Mapping[str, Any]) -> Audit:
        """Status completed with every result field and the findings, in one update."""
        return await self._stores._locked(audit_id, self._recorder.completed, audit_id, result)

    async def failed(self, audit_id: str, error: str) -> Audit:
        """Status error with the message; creates the audit (url ``about:blank``) if needed."""
        return await self._stores._locked(audit_id, self._recorder.failed, audit_id, error)

    async def event(self, audit_id: str, event: Mapping[str, Any]) -> Screenshot | None:
        """Record a streamed event: a ``screenshot`` event is saved; other types are ignored."""
        return await self._stores._locked(audit_id, self._recorder.event, audit_id, event)


__all__ = [
    "DEFAULT_MAX_THREADS",
    "NATIVE_ASYNC",
    "AsyncAuditRecorder",
    "AsyncAuditStore",
    "AsyncBlobStore",
    "AsyncScreenshotStorage",
    "AsyncStores",
    "open_async_stores",
]
