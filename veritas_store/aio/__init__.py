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

This module opens the stores; the async stores are in ``stores.py``, the worker threads and
the native-async stand-in in ``workers.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator, Iterable
from typing import Any

from ..wiring.config import load_config
from ..wiring.stores import ConfigSource, Stores, build_stores, registry_with
from .stores import (
    AsyncAuditRecorder,
    AsyncAuditStore,
    AsyncBlobStore,
    AsyncScreenshotStorage,
    AsyncStores,
)
from .workers import DEFAULT_MAX_THREADS, NATIVE_ASYNC, Workers, native


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
    workers = Workers(threads)

    def open_all() -> Stores:
        workers.start_all()  # here, not on the loop: starting a thread waits for it to run
        # open_stores's steps, with each native-async backend behind its stand-in
        return build_stores(
            load_config(config), registry_with(plugins), lambda store: native(store, loop)
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
