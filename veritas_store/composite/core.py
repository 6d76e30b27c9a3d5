"""Composite stores: write to every enabled backend, read in priority order.

Which backends are read and written, in which order, is the composite's *routing*
(``routing.py``): the read order, or a migration stage. The first backend written (and read) is
the authoritative one.

Audit writes go to a *leader* first: the first backend in write order that answers. The leader
decides the logical outcome — ``AuditExists``, ``AuditNotFound`` — before any other backend is
touched, so a rejected write changes nothing. The other backends then follow in parallel; a
follower that disagrees only because it is behind (a create that finds a stale copy, an update
of an audit it never saw) is brought in line. Blob writes have no precondition, so every blob
backend is written at once, unless a migration stage pins the order.

A failure on a ``required`` backend fails the operation with ``WriteError`` (every backend's
outcome attached); a failure on an optional one is logged and reported to the
``backend_error`` hook. With a journal (``journal.py``), each write's intent is recorded before
it fans out and kept when a backend misses it, for ``repair`` to complete. Reads skip a backend
that raises, which is not the same as one that answers "not here"; when every backend raised
the read raises ``BackendUnavailable``.

What each backend can do comes from its declared capabilities, never from trying: ``list()``
asks only backends that declare ``list``, ``url()`` only those that declare ``urls``. A
composite declares what at least one of the backends it reads declares.
"""

from __future__ import annotations

import builtins  # the class's list() method hides the builtin in its annotations
import contextlib
import functools
import hashlib
import logging
import mimetypes
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

from ..plugin_api.protocols import AuditStore, BlobStore, Capability, capabilities_of
from ..records.errors import (
    AuditExists,
    AuditNotFound,
    BackendUnavailable,
    BlobNotFound,
    ChecksumMismatch,
    NotAttempted,
    WriteError,
)
from ..records.keys import validate_audit_id, validate_blob_key, validate_blob_prefix
from ..records.model import (
    MAX_EVENTS_PAGE,
    Audit,
    AuditEvent,
    AuditPage,
    AuditStatus,
    BlobInfo,
    ListFilter,
    decode_cursor,
    number_events,
    validate_after,
    validate_limit,
)
from .journal import Journal
from .querying import list_with
from .resilience import Guarded, Resilience
from .routing import Routing

log = logging.getLogger("veritas_store.composite")

T = TypeVar("T")
S = TypeVar("S")

# What a composite can offer when one of its backends does. NATIVE_ASYNC is not passed on:
# the composite itself has no ``aio`` (the async API wraps it).
_INHERITED = frozenset({Capability.LIST, Capability.URLS, Capability.EVENTS})

# Errors that are answers, not failures: the leader raising one ends the write unchanged.
_LOGICAL = (AuditExists, AuditNotFound)

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


class _Composite(Generic[S]):
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

    # -- introspection -------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, S]:
        """The backend stores by config name: in read order, then those only written to."""
        return {m.name: m.store for m in self._all}

    @property
    def members(self) -> list[Member[S]]:
        """Every backend, in the order of ``backends``."""
        return list(self._all)

    def _able(self, capability: Capability) -> list[Member[S]]:
        """The backends read from that declare ``capability``, in read order."""
        return [m for m in self._read if capability in self._capabilities[m.name]]

    def _listers(self) -> list[Member[S]]:
        listers = self._able(Capability.LIST)
        if not listers:
            names = ", ".join(m.name for m in self._read)
            raise NotImplementedError(f"none of the {self.kind} backends can list: {names}")
        return listers

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

    def _hook(self, name: str, **arguments: Any) -> None:
        if self._notify is not None:
            self._notify(name, **arguments)

    def _report(self, member: Member[S], operation: str, key: str | None, exc: Exception) -> None:
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

    def _run(self, calls: list[Callable[[], T]]) -> list[T | Exception]:
        """Run calls concurrently; each result is a value or the exception it raised."""

        def capture(call: Callable[[], T]) -> T | Exception:
            try:
                return call()
            except Exception as exc:
                return exc

        if len(calls) <= 1:
            return [capture(c) for c in calls]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=8, thread_name_prefix=f"veritas-{self.kind}"
                )
        return list(self._pool.map(capture, calls))

    # -- writes --------------------------------------------------------------------------

    def _fan_out(
        self,
        operation: str,
        key: str,
        lead: Callable[[Any], T],
        follow: Callable[[Any], Any] | None = None,
        *,
        content_type: str | None = None,
    ) -> tuple[T, list[Any]]:
        """Write through every backend; return the leader's result and the followers' results.

        The write's intent is journaled first; it is cleared when every backend has the write
        (or a logical refusal left every backend untouched), and kept otherwise.
        """
        entry_id = None
        if self.journal is not None:
            try:
                entry_id = self.journal.intent(
                    self.kind, operation, key, [m.name for m in self._write], content_type
                )
            except Exception as exc:
                raise WriteError(
                    f"{operation}({key}) not attempted: the repair journal "
                    f"{str(self.journal.path)!r} could not record it: {exc}",
                    {m.name: NotAttempted("journal failed") for m in self._write},
                ) from exc
        outcomes: dict[str, BaseException | None] = {}
        try:
            result = self._write_through(operation, key, lead, follow or lead, outcomes)
        except _LOGICAL:
            self._settle(entry_id, operation, key, None)
            raise
        except BaseException:
            self._settle(entry_id, operation, key, outcomes)
            raise
        self._settle(entry_id, operation, key, outcomes)
        return result

    def _settle(
        self,
        entry_id: int | None,
        operation: str,
        key: str,
        outcomes: dict[str, BaseException | None] | None,
    ) -> None:
        """Clear or keep the journal entry of a finished write (``None``: nothing written)."""
        if entry_id is None or self.journal is None:
            return
        missing = [
            m.name
            for m in self._write
            if outcomes is not None and outcomes.get(m.name, NotAttempted()) is not None
        ]
        try:
            if not missing:
                self.journal.clear(entry_id)
                return
            error = "; ".join(
                f"{name}: {type(outcomes[name]).__name__}: {outcomes[name]}"
                if outcomes and name in outcomes
                else f"{name}: interrupted"
                for name in missing
            )
            self.journal.keep(entry_id, missing, error)
        except Exception:
            # The intent stays on disk, so repair still finds this write.
            log.exception("the repair journal could not settle %s(%s)", operation, key)
            return
        log.warning("%s %s(%s) journaled for repair: %s", self.kind, operation, key, error)
        self._hook(
            "journal_entry",
            kind=self.kind,
            operation=operation,
            key=key,
            backends=tuple(missing),
            error=error,
        )

    def _write_through(
        self,
        operation: str,
        key: str,
        lead: Callable[[Any], T],
        follow: Callable[[Any], Any],
        outcomes: dict[str, BaseException | None],
    ) -> tuple[T, list[Any]]:
        remaining = list(self._write)
        leader_result: Any = None
        while remaining and not self._parallel:
            member = remaining.pop(0)
            try:
                leader_result = lead(member.client)
            except _LOGICAL:
                raise  # nothing was written anywhere
            except Exception as exc:
                outcomes[member.name] = exc
                if member.required:
                    for m in remaining:
                        outcomes[m.name] = NotAttempted(f"{member.name!r} failed first")
                    raise WriteError(
                        f"{operation}({key}) failed on required backend {member.name!r}", outcomes
                    ) from exc
                self._report(member, operation, key, exc)
                continue
            outcomes[member.name] = None
            break
        else:
            if not self._parallel:
                raise WriteError(f"{operation}({key}) failed on every backend", outcomes)

        results = self._run([functools.partial(follow, m.client) for m in remaining])
        if self._parallel:
            answers = [r for r in results if not isinstance(r, Exception)]
            if not answers:
                outcomes.update(zip((m.name for m in remaining), results, strict=True))
                raise WriteError(f"{operation}({key}) failed on every backend", outcomes)
            leader_result = answers[0]
        failed_required: Exception | None = None
        for member, result in zip(remaining, results, strict=True):
            if isinstance(result, Exception):
                outcomes[member.name] = result
                if member.required:
                    failed_required = failed_required or result
                else:
                    self._report(member, operation, key, result)
            else:
                outcomes[member.name] = None
        if failed_required is not None:
            names = [n for n, e in outcomes.items() if e is not None]
            raise WriteError(
                f"{operation}({key}) failed on backend(s) {', '.join(map(repr, names))}", outcomes
            ) from failed_required
        return leader_result, [r for r in results if not isinstance(r, Exception)]

    # -- reads ---------------------------------------------------------------------------

    def _lookup(
        self, key: str, fetch: Callable[[Any], Any], accept: Callable[[Member[S], Any], bool]
    ) -> tuple[Any, Member[S] | None, list[Member[S]], dict[str, Exception]]:
        """The first answer in read order that ``accept`` takes.

        ``fetch`` returns the item or None for "not here". Returns the item (or None), the
        member that answered, the members before it that did not have it (or whose copy was
        not accepted), and the errors of those that raised.
        """
        missed: list[Member[S]] = []
        errors: dict[str, Exception] = {}
        for position, member in enumerate(self._read):
            try:
                value = fetch(member.client)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "get", key, exc)
                continue
            if value is None or not accept(member, value):
                missed.append(member)
                continue
            if position > 0 and self._deleted_in(member, key):
                missed.append(member)  # a delete this backend missed: not a live copy
                continue
            return value, member, missed, errors
        return None, None, missed, errors

    def _deleted_in(self, member: Member[S], key: str) -> bool:
        """The journal says this backend missed (or may still miss) a delete of ``key``."""
        if self.journal is None:
            return False
        try:
            entry = self.journal.latest(self.kind, key)
        except Exception:
            log.exception("the repair journal could not be read for %r", key)
            return False
        return entry is not None and entry.operation == "delete" and member.name in entry.behind

    def _read_repair(
        self, key: str, value: Any, source: Member[S], missed: list[Member[S]]
    ) -> None:
        """Copy an item found lower in read order to the backends above that lacked it."""
        targets = [m for m in missed if m in self._write]
        if not targets:
            return
        if self.journal is not None:
            try:
                entry = self.journal.latest(self.kind, key)
            except Exception:
                log.exception("the repair journal could not be read for %r", key)
                return
            if entry is not None and (entry.in_flight() or entry.operation == "delete"):
                return  # a write of this item is under way or unsettled: leave it to it
        for member in targets:
            try:
                self._copy(member.client, key, value)
            except Exception as exc:
                self._report(member, "read_repair", key, exc)
            else:
                log.info(
                    "read-repair copied %s %r from %r to %r",
                    self.kind,
                    key,
                    source.name,
                    member.name,
                )

    def _copy(self, store: Any, key: str, value: Any) -> None:
        raise NotImplementedError

    def _compare_copies(
        self, key: str, value: Any, source: Member[S] | None, errors: dict[str, Exception]
    ) -> None:
        """Shadow read: compare the authoritative answer with the compared side's (sampled)."""
        shadow = self._compare
        if shadow is None or random.random() >= self.routing.compare_ratio:
            return
        first = self._read[0]
        if first.name in errors:
            return  # the authoritative side did not answer: nothing to compare
        primary = value if source is first else None
        if source is shadow:
            other = value
        else:
            try:
                other = self._fetch(shadow.client, key)
            except Exception as exc:
                self._report(shadow, "compare", key, exc)
                return
        detail = self._difference(primary, other)
        if detail is None:
            return
        log.warning(
            "%s %r differs between %r and %r: %s", self.kind, key, first.name, shadow.name, detail
        )
        self._hook(
            "shadow_mismatch",
            kind=self.kind,
            key=key,
            authoritative=first.name,
            compared=shadow.name,
            detail=detail,
        )

    def _fetch(self, store: Any, key: str) -> Any:
        raise NotImplementedError

    def _difference(self, primary: Any, other: Any) -> str | None:
        raise NotImplementedError

    def _first_answer(
        self,
        operation: str,
        key: str | None,
        call: Callable[[Any], T],
        members: list[Member[S]] | None = None,
    ) -> T:
        """The answer of the first backend (in read order, of ``members``) that does not raise."""
        errors: dict[str, Exception] = {}
        for member in self._read if members is None else members:
            try:
                return call(member.client)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, operation, key, exc)
        raise BackendUnavailable(
            f"{operation}({key or ''}) failed on every {self.kind} backend: "
            + "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in errors.items()),
            errors,
        )

    def _get(self, key: str) -> tuple[Any, str | None]:
        value, source, missed, errors = self._lookup(
            key, lambda s: self._fetch(s, key), lambda m, v: True
        )
        if source is None and len(errors) == len(self._read):
            raise BackendUnavailable(f"get({key}) failed on every {self.kind} backend", errors)
        self._compare_copies(key, value, source, errors)
        if source is not None and self.read_repair and missed:
            self._read_repair(key, value, source, missed)
        return value, source.name if source else None

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

    def _store(self, store: Any, key: str, value: Any, content_type: str | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for member in self._all:
            try:
                member.store.close()  # type: ignore[attr-defined]
            except Exception:
                log.exception("closing %s backend %r failed", self.kind, member.name)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class CompositeAuditStore(_Composite[Any]):
    """An ``AuditStore`` over several audit backends."""

    kind = "audits"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if Capability.LIST in self.capabilities:  # it filters for backends that cannot
            self.capabilities = self.capabilities | {Capability.FILTERS}

    def create(self, audit: Audit) -> None:
        validate_audit_id(audit.id)
        self._fan_out("create", audit.id, lambda s: s.create(audit), lambda s: _upsert(s, audit))

    def update(self, audit: Audit) -> None:
        validate_audit_id(audit.id)

        def follow(store: Any) -> None:
            try:
                store.update(audit)
            except AuditNotFound:  # a backend that joined later, or lost its memory
                store.create(audit)

        self._fan_out("update", audit.id, lambda s: s.update(audit), follow)

    def delete(self, audit_id: str) -> bool:
        validate_audit_id(audit_id)
        first, rest = self._fan_out("delete", audit_id, lambda s: s.delete(audit_id))
        return bool(first) or any(rest)

    def get(self, audit_id: str) -> Audit | None:
        return self.get_with_source(audit_id)[0]

    def get_with_source(self, audit_id: str) -> tuple[Audit | None, str | None]:
        """The audit and the name of the backend that answered (None, None if nowhere)."""
        validate_audit_id(audit_id)
        return self._get(audit_id)

    def list(
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
        query = ListFilter(status, risk_level, url, created_after, created_before, order)
        validate_limit(limit)
        if cursor is not None:
            decode_cursor(cursor)  # a bad cursor is the caller's error, not a backend failure
        listers = self._listers()
        capabilities = {id(m.client): self._capabilities[m.name] for m in listers}
        page: AuditPage = self._first_answer(
            "list",
            None,
            lambda s: list_with(s, capabilities[id(s)], query, limit, cursor),
            listers,
        )
        return page

    # -- the event log (Capability.EVENTS) ------------------------------------------------

    def _keepers(self, members: Sequence[Member[Any]]) -> Sequence[Member[Any]]:
        keepers = [m for m in members if Capability.EVENTS in self._capabilities[m.name]]
        if not keepers:
            names = ", ".join(m.name for m in members)
            raise NotImplementedError(f"none of the audit backends keeps events: {names}")
        return keepers

    def append_events(self, audit_id: str, events: Iterable[AuditEvent]) -> tuple[AuditEvent, ...]:
        """Append to the log like any write: the authoritative backend (the first written that
        keeps events) numbers them, every other backend that keeps events gets the numbered
        events (idempotent by ``seq``, so a replay or a repair appends each once); journaled."""
        validate_audit_id(audit_id)
        events = list(events)
        number_events(0, events)  # bad input raises here, before anything is written
        numberer = self._keepers(self._write)[0].client
        keeps = {id(m.client) for m in self._keepers(self._write)}
        numbered: list[tuple[AuditEvent, ...]] = []

        def lead(store: Any) -> tuple[AuditEvent, ...]:
            numbered.append(numberer.append_events(audit_id, events))
            if store is not numberer and id(store) in keeps:
                store.append_events(audit_id, numbered[0])
            return numbered[0]

        def follow(store: Any) -> None:
            if id(store) in keeps:
                store.append_events(audit_id, numbered[0])

        return self._fan_out("append_events", audit_id, lead, follow)[0]

    def events(
        self, audit_id: str, after: int | None = None, limit: int = 1000
    ) -> tuple[AuditEvent, ...]:
        """The log from the first backend in read order that keeps events and has the audit
        (like ``get``); ``AuditNotFound`` if none has it."""
        validate_audit_id(audit_id)
        validate_after(after, limit)

        def ask(store: Any) -> tuple[AuditEvent, ...] | None:
            try:
                return store.events(audit_id, after=after, limit=limit)  # type: ignore[no-any-return]
            except AuditNotFound:
                return None  # "not here", an answer: ask the next

        unavailable: list[BackendUnavailable] = []
        for member in self._keepers(self._read):
            try:
                found = self._first_answer("events", audit_id, ask, [member])
            except BackendUnavailable as exc:
                unavailable.append(exc)
                continue
            if found is not None:
                return found
        if unavailable and len(unavailable) == len(self._keepers(self._read)):
            raise BackendUnavailable(
                "; ".join(str(e) for e in unavailable),
                {k: v for e in unavailable for k, v in e.errors.items()},
            )
        raise AuditNotFound(f"audit {audit_id!r} not found")

    def sync_item(
        self, key: str, source: str, targets: builtins.list[str], content_type: str | None = None
    ) -> bool:
        """As for any composite, and the event log too: what the source holds beyond each
        target's last event (a repair of an interrupted ``append_events``)."""
        exists = super().sync_item(key, source, targets, content_type)
        origin = self.member(source)
        if not exists or Capability.EVENTS not in self._capabilities[source]:
            return exists
        for name in targets:
            if Capability.EVENTS not in self._capabilities[name]:
                continue
            target = self.member(name).client
            after = 0
            while have := target.events(key, after=after, limit=MAX_EVENTS_PAGE):
                after = have[-1].seq or 0
            while True:
                missing = origin.client.events(key, after=after, limit=MAX_EVENTS_PAGE)
                if not missing:
                    break
                target.append_events(key, missing)
                after = missing[-1].seq
        return exists

    # -- hooks of the generic read path ---------------------------------------------------

    def _fetch(self, store: AuditStore, key: str) -> Audit | None:
        return store.get(key)

    def _store(self, store: Any, key: str, value: Audit, content_type: str | None) -> None:
        _upsert(store, value)

    def _copy(self, store: Any, key: str, value: Audit) -> None:
        with contextlib.suppress(AuditExists):  # written meanwhile: at least as new as ours
            store.create(value)

    def _difference(self, primary: Audit | None, other: Audit | None) -> str | None:
        return audit_difference(primary, other)


def _upsert(store: Any, audit: Audit) -> None:
    try:
        store.create(audit)
    except AuditExists:  # a stale copy the leader did not have: replace it
        store.update(audit)


def audit_difference(a: Audit | None, b: Audit | None) -> str | None:
    """None if equal, else a short description (which side lacks it, or which fields differ)."""
    if a == b:
        return None
    if a is None or b is None:
        return f"only in the {'compared' if a is None else 'authoritative'} backend"
    fields = [f.name for f in attrs.fields(Audit) if getattr(a, f.name) != getattr(b, f.name)]
    return f"fields differ: {', '.join(fields)}"


class CompositeBlobStore(_Composite[Any]):
    """A ``BlobStore`` over several blob backends."""

    kind = "blobs"
    parallel_writes = True

    def put(self, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"blob data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        info: BlobInfo
        info, _ = self._fan_out(
            "put", key, lambda s: s.put(key, data, content_type), content_type=content_type
        )
        return info

    def delete(self, key: str) -> bool:
        validate_blob_key(key)
        first, answers = self._fan_out("delete", key, lambda s: s.delete(key))
        return bool(first) or any(answers)

    def get(self, key: str) -> bytes:
        return self.get_with_source(key)[0]

    def get_with_source(self, key: str) -> tuple[bytes, str]:
        validate_blob_key(key)
        data, source = self._get(key)
        if source is None:
            raise BlobNotFound(f"blob {key!r} not found")
        return data, source

    def get_verified(self, key: str, sha256: str) -> bytes:
        """The first copy in read order whose sha256 is ``sha256``.

        A copy that does not match counts as a failed read: it is reported (``backend_error``
        with a ``ChecksumMismatch``) and the next backend is tried. With ``read_repair`` the
        intact copy replaces missing and corrupt ones higher in read order.
        """
        validate_blob_key(key)
        corrupt: dict[str, Exception] = {}

        def intact(member: Member[Any], data: bytes) -> bool:
            if hashlib.sha256(data).hexdigest() == sha256:
                return True
            exc = ChecksumMismatch(f"blob {key!r} in {member.name!r} does not match its sha256")
            corrupt[member.name] = exc
            self._report(member, "get", key, exc)
            return False

        data: bytes
        data, source, missed, errors = self._lookup(key, lambda s: self._fetch(s, key), intact)
        if source is None:
            problems = {**errors, **corrupt}
            if not problems:
                raise BlobNotFound(f"blob {key!r} not found")
            raise BackendUnavailable(
                f"no {self.kind} backend returned an intact copy of {key!r}", problems
            )
        self._compare_copies(key, data, source, {**errors, **corrupt})
        if self.read_repair and missed:
            self._read_repair(key, data, source, missed)
        return data

    def exists(self, key: str) -> bool:
        validate_blob_key(key)
        found: bool = self._first_answer("exists", key, lambda s: s.exists(key))
        return found

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_blob_prefix(prefix)
        # Materialised so a backend that fails mid-listing is skipped, not half-used.
        return iter(
            self._first_answer("list", prefix, lambda s: list(s.list(prefix)), self._listers())
        )

    def url(self, key: str, expires: int = 3600) -> str:
        """A URL from the first backend in read order that declares ``urls`` and has the blob.

        ``NotImplementedError`` if no backend declares ``urls``, or if the blob is only in
        backends that do not.
        """
        validate_blob_key(key)
        if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
            # the caller's error, not a backend failure to skip
            raise ValueError(f"expires must be a positive number of seconds, got {expires!r}")
        makers = self._able(Capability.URLS)
        if not makers:
            names = ", ".join(m.name for m in self._read)
            raise NotImplementedError(f"none of the blob backends can make URLs: {names}")
        errors: dict[str, Exception] = {}
        for member in makers:
            try:
                if member.client.exists(key):
                    url: str = member.client.url(key, expires=expires)
                    return url
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "url", key, exc)
        holders = []
        for member in self._read:
            if member in makers:
                continue
            try:
                if member.client.exists(key):
                    holders.append(member.name)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "url", key, exc)
        if len(errors) == len(self._read):
            raise BackendUnavailable(f"url({key}) failed on every blob backend", errors)
        if holders:
            raise NotImplementedError(
                f"blob {key!r} is only in backends that cannot make URLs: {', '.join(holders)}"
            )
        raise BlobNotFound(f"blob {key!r} not found")

    # -- hooks of the generic read path ---------------------------------------------------

    def _fetch(self, store: BlobStore, key: str) -> bytes | None:
        try:
            return store.get(key)
        except BlobNotFound:
            return None

    def _store(self, store: Any, key: str, value: bytes, content_type: str | None) -> None:
        store.put(key, value, content_type or guess_content_type(key))

    def _copy(self, store: Any, key: str, value: bytes) -> None:
        store.put(key, value, guess_content_type(key))

    def _difference(self, primary: bytes | None, other: bytes | None) -> str | None:
        return blob_difference(primary, other)


def blob_difference(a: bytes | None, b: bytes | None) -> str | None:
    if a == b:
        return None
    if a is None or b is None:
        return f"only in the {'compared' if a is None else 'authoritative'} backend"
    return (
        f"sha256 differs: {hashlib.sha256(a).hexdigest()[:12]}… ({len(a)} bytes) vs "
        f"{hashlib.sha256(b).hexdigest()[:12]}… ({len(b)} bytes)"
    )


def guess_content_type(key: str) -> str | None:
    """A blob's content type from its key's extension (``.png`` -> ``image/png``)."""
    return mimetypes.guess_type(key, strict=False)[0]
