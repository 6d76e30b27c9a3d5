"""The async stores: ``Stores``, its composites, ``ScreenshotStorage`` and ``AuditRecorder``
as coroutines.

Each coroutine is the sync method itself run on a worker thread (``_on_worker``), or, for a
read-modify-write of one audit, run after every earlier one on that audit (``_per_audit``).
Both take the sync method's signature, defaults and docstring, so the async API has no rule,
default or argument check of its own to drift from the sync one.

Single-audit calls (``inline=True``) are first attempted on the event loop itself when the
audit composite declares ``Capability.INLINE``, and handed to a worker only if they would wait
(``AsyncStores._attempt``; docs/async.md, "Where a call runs").
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import itertools
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..composite.audits import CompositeAuditStore
from ..composite.blobs import CompositeBlobStore
from ..plugin_api.inline import no_wait
from ..plugin_api.protocols import Capability
from ..recorder import AuditRecorder
from ..records.errors import WouldBlock
from ..records.keys import validate_audit_id, validate_blob_prefix
from ..records.model import AuditEvent
from ..screenshots import ScreenshotStorage
from ..wiring.stores import Stores
from .workers import Runner, Workers

P = ParamSpec("P")
T = TypeVar("T")

_LIST_CHUNK = 1000  # blob keys fetched per worker call while iterating a listing
_INLINE_TRIES = 3  # attempts on the event loop, when a store says what to wait for between
# Seconds of calls the event loop runs inline in one of its turns before it polls for I/O and
# timers again: 50 tasks whose calls were all ready at once would otherwise run back to back
# (~25-50 ms at 0.5-1 ms a call) and hold up every other task's I/O for that long.
_INLINE_TURN = 0.002


def _on_worker(
    method: Callable[Concatenate[Any, P], T], *, inline: bool = False
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The coroutine twin of a sync method: ``self._sync``'s method, run by ``self._run`` (or
    ``self._attempt``, which tries the event loop first, when ``inline``)."""
    name = method.__name__
    runner = "_attempt" if inline else "_run"

    @functools.wraps(method)
    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        run = getattr(self, runner)
        result: T = await run(getattr(self._sync, name), *args, **kwargs)
        return result

    return twin


def _per_audit(
    method: Callable[Concatenate[Any, P], T], *, inline: bool = False
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """As ``_on_worker``, queued behind the calls on the same ``audit_id`` (``self._locked``)."""
    name = method.__name__
    bind = inspect.signature(method).bind

    @functools.wraps(method)
    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        audit_id = bind(self, *args, **kwargs).arguments["audit_id"]
        fn = getattr(self._sync, name)
        result: T = await self._locked(audit_id, inline, fn, *args, **kwargs)
        return result

    return twin


class AsyncStores:
    """The async stores of a config. ``async with`` it (or ``await aclose()``) to close them.

    ``audits``, ``blobs`` and ``screenshots`` mirror ``Stores``; ``sync`` is the underlying
    ``Stores`` for code that runs in a thread of its own. Use them from the event loop that
    opened them.
    """

    def __init__(self, stores: Stores, workers: Workers) -> None:
        self.sync = stores
        self.config = stores.config
        self.registry = stores.registry
        self.max_threads = workers.size
        self._workers = workers
        self._audit_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False
        # Whether single-audit calls are attempted on the event loop first (see _attempt).
        self.inline = Capability.INLINE in stores.audits.capabilities
        self._turn_started = time.perf_counter()  # of the loop's turn running inline calls
        self._next_turn_due = False
        self.audits = AsyncAuditStore(stores.audits, self._run, self._attempt)
        self.blobs = AsyncBlobStore(stores.blobs, self._run)
        self.screenshots = AsyncScreenshotStorage(self)

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise RuntimeError("these AsyncStores are closed")
        return await self._workers.run(fn, *args, **kwargs)

    async def _attempt(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run an audit call on the event loop if it can finish without waiting, else on a
        worker. A hand-off to a worker and back costs ~100 µs on a small VM, about what a
        SQLite read does; the attempt costs a turn of the loop and, when the call would
        wait, the ``WouldBlock`` it raises before it has changed anything. While workers are
        busy, calls go to them too (below)."""
        if self.inline:
            for _ in range(_INLINE_TRIES):
                await self._inline_turn()
                if self._closed:
                    raise RuntimeError("these AsyncStores are closed")
                if self._workers.busy:
                    # A worker's Python would take the interpreter lock from the loop in the
                    # middle of the call: the loop would sit in it for whole switch intervals
                    # (5 ms each). Beside busy workers, a hand-off costs the loop less.
                    break
                try:
                    with no_wait():
                        return fn(*args, **kwargs)
                except WouldBlock as exc:
                    if exc.until is None:
                        break  # it would have waited: run it where it may
                    await asyncio.wrap_future(exc.until)  # a short job of the store's: again
        return await self._run(fn, *args, **kwargs)

    async def _inline_turn(self) -> None:
        """Yield to the event loop: the other ready tasks go first, as a hand-off would let
        them; and once this turn of the loop has run ``_INLINE_TURN`` of inline calls, wait
        for its next turn, which first polls for I/O and runs the timers that are due."""
        await asyncio.sleep(0)
        while time.perf_counter() - self._turn_started > _INLINE_TURN:
            if not self._next_turn_due:
                self._next_turn_due = True
                asyncio.get_running_loop().call_soon(self._start_turn)  # runs in the next turn
            await asyncio.sleep(0)

    def _start_turn(self) -> None:
        self._next_turn_due = False
        self._turn_started = time.perf_counter()

    async def _locked(
        self, audit_id: str, inline: bool, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Run a read-modify-write of one audit, after every earlier one on that audit
        (attempted on the event loop first when ``inline``, see ``_attempt``)."""
        validate_audit_id(audit_id)  # before it becomes a lock key
        lock = self._audit_locks.get(audit_id)
        if lock is None:  # kept alive by its holder and waiters, then dropped
            lock = self._audit_locks[audit_id] = asyncio.Lock()
        async with lock:
            return await (self._attempt if inline else self._run)(fn, *args, **kwargs)

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


class _AsyncComposite:
    """A composite's coroutines: what the audit and the blob one have in common."""

    def __init__(
        self,
        composite: CompositeAuditStore | CompositeBlobStore,
        run: Runner,
        attempt: Runner | None = None,
    ) -> None:
        self._sync = composite
        self._run = run
        self._attempt = attempt or run

    @property
    def sync(self) -> Any:
        """The sync composite (its ``backends``, ``members`` and ``authoritative``)."""
        return self._sync

    @property
    def capabilities(self) -> frozenset[str]:
        """What the composite can do (``veritas_store.Capability`` values), as in the sync API."""
        return frozenset(self._sync.capabilities)


class AsyncAuditStore(_AsyncComposite):
    """``AuditStore`` as coroutines, over the composite of ``open_async_stores``."""

    _sync: CompositeAuditStore

    async def append_events(
        self, audit_id: str, events: Iterable[AuditEvent]
    ) -> tuple[AuditEvent, ...]:
        # Listed here, on the loop: the iterable (a generator, say) is the caller's.
        return await self._run(self._sync.append_events, audit_id, list(events))

    # A line per method: delegating to the composite is all each does (see ``_on_worker``).
    create = _on_worker(CompositeAuditStore.create, inline=True)
    get = _on_worker(CompositeAuditStore.get, inline=True)
    get_with_source = _on_worker(CompositeAuditStore.get_with_source, inline=True)
    update = _on_worker(CompositeAuditStore.update, inline=True)
    delete = _on_worker(CompositeAuditStore.delete, inline=True)
    list = _on_worker(CompositeAuditStore.list)
    events = _on_worker(CompositeAuditStore.events)
    close = _on_worker(CompositeAuditStore.close)


class AsyncBlobStore(_AsyncComposite):
    """``BlobStore`` as coroutines; ``list(prefix)`` is an async iterator."""

    _sync: CompositeBlobStore

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """``async for key in blobs.list("a1/")``: keys in lexicographic order.

        A bad prefix raises ``InvalidKey`` here, before any iteration.
        """
        validate_blob_prefix(prefix)  # the composite's own check, made at the call
        return _AsyncKeys(self._run, functools.partial(self._sync.list, prefix))

    # A line per method: delegating to the composite is all each does (see ``_on_worker``).
    put = _on_worker(CompositeBlobStore.put)
    get = _on_worker(CompositeBlobStore.get)
    get_with_source = _on_worker(CompositeBlobStore.get_with_source)
    exists = _on_worker(CompositeBlobStore.exists)
    delete = _on_worker(CompositeBlobStore.delete)
    url = _on_worker(CompositeBlobStore.url)
    close = _on_worker(CompositeBlobStore.close)


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
    """``ScreenshotStorage`` as coroutines: ``save`` (one audit at a time) and ``load``."""

    def __init__(self, stores: AsyncStores) -> None:
        self._sync = stores.sync.screenshots
        self._run = stores._run
        self._locked = stores._locked

    save = _per_audit(ScreenshotStorage.save)
    load = _on_worker(ScreenshotStorage.load)


class AsyncAuditRecorder:
    """``AuditRecorder`` as coroutines: the same rules, run by the sync recorder on a worker,
    one call at a time per audit."""

    def __init__(self, stores: AsyncStores) -> None:
        if not isinstance(stores, AsyncStores):
            raise TypeError(
                "AsyncAuditRecorder needs the stores of open_async_stores(); "
                f"got {type(stores).__name__} (use AuditRecorder with open_stores())"
            )
        self._sync = AuditRecorder(stores.sync)
        self._locked = stores._locked

    # started, completed and failed write one audit once, last: they can be attempted inline
    started = _per_audit(AuditRecorder.started, inline=True)
    completed = _per_audit(AuditRecorder.completed, inline=True)
    failed = _per_audit(AuditRecorder.failed, inline=True)
    event = _per_audit(AuditRecorder.event)
