"""What every composite store is: its backends in routing order, their capabilities, how it
reports, and the hooks a kind of item (audits, blobs) fills in.

Which backends are read and written, in which order, is the composite's *routing*
(``routing.py``): the read order, or a migration stage. The first backend written (and read) is
the authoritative one. Writes fan out as ``fanout.py`` says, reads follow ``reads.py``; the
audit and blob composites (``audits.py``, ``blobs.py``) are both.

What each backend can do comes from its declared capabilities, never from trying: ``list()``
asks only backends that declare ``list``, ``url()`` only those that declare ``urls``. A
composite declares what at least one of the backends it reads declares.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import attrs

from ..plugin_api.inline import may_wait
from ..plugin_api.protocols import Capability, capabilities_of
from ..records.errors import WouldBlock
from .journal import Journal
from .resilience import Guarded, Resilience
from .routing import Routing

log = logging.getLogger("veritas_store.composite")

T = TypeVar("T")
S = TypeVar("S")
V = TypeVar("V")

# What a composite can offer when one of its backends does. NATIVE_ASYNC is not passed on:
# the composite itself has no ``aio`` (the async API wraps it).
_INHERITED = frozenset({Capability.LIST, Capability.URLS, Capability.EVENTS})

Notify = Callable[..., None]  # notify(hook_name, **arguments)


@attrs.frozen
class Member(Generic[S]):
    """One backend of a composite. ``client`` is the store behind its resilience policy."""

    name: str
    store: S
    required: bool = True
    type: str = ""
    resilience: Resilience = Resilience()
    client: Any = attrs.field(init=False, repr=False, eq=False)

    @client.default
    def _guard(self) -> Any:
        if self.resilience.active:
            return Guarded(self.store, self.resilience, self.name)
        return self.store


def needs_journal(write: list[Member[Any]], parallel: bool) -> bool:
    """Whether writes to these backends (in write order) need their intents journaled.

    Only when a backend that may miss a write is ``durable``: the followers, and the first
    backend too when it may be skipped (optional) or is written alongside the rest (parallel).
    A volatile follower that misses a write is logged and reported, and is behind until the
    item is written again; a restart empties it anyway, so there is nothing to repair.
    """
    if len(write) < 2:
        return False  # one backend: nothing to miss
    may_miss = write if parallel or not write[0].required else write[1:]
    return any(Capability.DURABLE in capabilities_of(m.store) for m in may_miss)


def runs_inline(
    members: list[Member[Any]],
    concurrent_writes: bool,
    journaled: bool,
    capabilities: dict[str, frozenset[str]],
    plain_reads: bool,
) -> bool:
    """Whether a composite's calls may be attempted on the event loop (``Capability.INLINE``).

    Only when nothing but the first backend written can make the call wait before it changes
    something: every backend declares ``inline``; none has a deadline or retries (they use
    threads and sleeps); no journal is needed (its own SQLite transactions could wait); the
    writes go one after the other; and reads are plain (no read-repair, no shadow comparison).
    """
    return (
        plain_reads
        and not concurrent_writes
        and not journaled
        and all(
            Capability.INLINE in capabilities[m.name] and not m.resilience.active for m in members
        )
    )


def difference(a: V | None, b: V | None, describe: Callable[[V, V], str]) -> str | None:
    """None if the copies are equal, else a short description: which side lacks the item, or
    ``describe(a, b)`` when both have it (``a`` the authoritative side's)."""
    if a == b:
        return None
    if a is None or b is None:
        return f"only in the {'compared' if a is None else 'authoritative'} backend"
    return describe(a, b)


class Composite(Generic[S]):
    """The state and plumbing shared by the write path (``FanOut``) and the read path
    (``Reads``); a kind of item fills in ``_fetch``, ``_store``, ``_copy`` and ``_difference``."""

    kind = ""
    parallel_writes = False  # every backend at once (no precondition to decide first)

    def __init__(
        self,
        members: list[Member[S]],
        read_order: list[str] | None = None,
        notify: Notify | None = None,
        *,
        routing: Routing | None = None,
        journal: Journal | None = None,
        read_repair: bool = False,
    ) -> None:
        if not members:
            raise ValueError("a composite needs at least one backend")
        by_name = {m.name: m for m in members}
        if routing is None:
            order = list(read_order or [m.name for m in members])
            order += [m.name for m in members if m.name not in order]
            routing = Routing(read=tuple(order), write=tuple(order))
        self.routing = routing
        self._read: list[Member[S]] = [by_name[n] for n in routing.read]
        self._write: list[Member[S]] = [by_name[n] for n in routing.write]
        routed = [*self._read, *(m for m in self._write if m not in self._read)]
        # every opened backend: routed ones first, then any the stage leaves alone
        self._all: list[Member[S]] = routed + [m for m in members if m not in routed]
        self._compare = by_name[routing.compare] if routing.compare else None
        self._parallel = self.parallel_writes and not routing.ordered
        self._capabilities = {m.name: capabilities_of(m.store) for m in members}
        self.wants_journal = needs_journal(self._write, self._parallel)
        self.journal = journal if self.wants_journal else None
        self.read_repair = read_repair
        self._notify = notify
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.capabilities: frozenset[str] = _INHERITED & frozenset().union(
            *(self._capabilities[m.name] for m in self._read)
        )
        plain_reads = routing.compare is None and not read_repair
        concurrent_writes = self._parallel and len(self._write) > 1
        if runs_inline(
            routed, concurrent_writes, self.wants_journal, self._capabilities, plain_reads
        ):
            self.capabilities = self.capabilities | {Capability.INLINE}

    # -- introspection -------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, S]:
        """The backend stores by config name: in read order, then those only written to."""
        return {m.name: m.store for m in self._all}

    @property
    def members(self) -> list[Member[S]]:
        """Every backend, in the order of ``backends``."""
        return list(self._all)

    def _able(
        self, capability: Capability, members: Sequence[Member[S]] | None = None
    ) -> list[Member[S]]:
        """The backends (read from, or of ``members``) that declare ``capability``, in order."""
        among = self._read if members is None else members
        return [m for m in among if capability in self._capabilities[m.name]]

    def _needed(
        self, capability: Capability, none: str, members: Sequence[Member[S]] | None = None
    ) -> list[Member[S]]:
        """As ``_able``; ``NotImplementedError`` "none of the {none}: ..." if no backend does."""
        able = self._able(capability, members)
        if not able:
            names = ", ".join(m.name for m in (self._read if members is None else members))
            raise NotImplementedError(f"none of the {none}: {names}")
        return able

    def _listers(self) -> list[Member[S]]:
        return self._needed(Capability.LIST, f"{self.kind} backends can list")

    def member(self, name: str) -> Member[S]:
        for m in self._all:
            if m.name == name:
                return m
        raise KeyError(f"no {self.kind} backend named {name!r} is open")

    @property
    def authoritative(self) -> str:
        """The name of the backend read and written first."""
        return self.routing.authoritative

    # -- plumbing ------------------------------------------------------------------------

    def _inline_or_refuse(self) -> bool:
        """Whether this call is an attempt on the event loop; ``WouldBlock`` at once if it is
        and this composite cannot run one (``Capability.INLINE``), before anything is done."""
        if may_wait():
            return False
        if Capability.INLINE not in self.capabilities:
            raise WouldBlock(f"the {self.kind} composite cannot run a call without waiting")
        return True

    def _hook(self, name: str, **arguments: Any) -> None:
        if self._notify is not None:
            self._notify(name, **arguments)

    def _report(self, member: Member[S], operation: str, key: str | None, exc: Exception) -> None:
        if not may_wait():
            # Attempted on the event loop and nothing written yet: the observer hooks are the
            # application's code, which may block. The call runs again on a worker, and this
            # failure is reported from there.
            raise WouldBlock(f"{self.kind} backend {member.name!r} failed: reported on a worker")
        log.warning(
            "%s backend %r failed on %s(%s): %s: %s",
            self.kind,
            member.name,
            operation,
            key or "",
            type(exc).__name__,
            exc,
        )
        self._hook(
            "backend_error",
            kind=self.kind,
            backend=member.name,
            operation=operation,
            key=key,
            error=exc,
        )

    def _run(self, calls: list[Callable[[], T]], *, inline: bool = False) -> list[T | Exception]:
        """Run calls concurrently (one after the other when ``inline``: no thread hand-offs);
        each result is a value or the exception it raised."""

        def capture(call: Callable[[], T]) -> T | Exception:
            try:
                return call()
            except Exception as exc:
                return exc

        if len(calls) <= 1 or inline:
            return [capture(c) for c in calls]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=8, thread_name_prefix=f"veritas-{self.kind}"
                )
        return list(self._pool.map(capture, calls))

    # -- the kind of item (filled in by the audit and blob composites) -------------------

    def _fetch(self, store: Any, key: str) -> Any:
        """The item in ``store``, or None for "not here"."""
        raise NotImplementedError

    def _store(self, store: Any, key: str, value: Any, content_type: str | None) -> None:
        """Make ``store`` hold ``value`` (a repair's copy)."""
        raise NotImplementedError

    def _copy(self, store: Any, key: str, value: Any) -> None:
        """Copy ``value`` to a backend that lacked it (a read-repair)."""
        raise NotImplementedError

    def _difference(self, primary: Any, other: Any) -> str | None:
        """None if the two copies are the same, else what differs."""
        raise NotImplementedError

    # -- repair --------------------------------------------------------------------------

    def sync_item(
        self, key: str, source: str, targets: list[str], content_type: str | None = None
    ) -> bool:
        """Make ``targets`` hold what ``source`` holds for ``key`` (a copy, or no item).

        Idempotent. The source is read again afterwards; if a concurrent write changed it, the
        copy is made again (a few times), so a repair never leaves an older copy behind.
        Returns whether the item exists; raises what a backend raised.
        """
        origin = self.member(source)
        stores = [self.member(name).client for name in targets]
        value = self._fetch(origin.client, key)
        for _ in range(5):
            for store in stores:
                if value is None:
                    store.delete(key)
                else:
                    self._store(store, key, value, content_type)
            again = self._fetch(origin.client, key)
            if self._difference(value, again) is None:
                return value is not None
            value = again
        raise RuntimeError(f"{key!r} kept changing in {source!r} while it was being repaired")

    def close(self) -> None:
        for member in self._all:
            try:
                member.store.close()  # type: ignore[attr-defined]
            except Exception:
                log.exception("closing %s backend %r failed", self.kind, member.name)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
