"""Composite stores: write to every enabled backend, read in priority order.

Audit writes go to a *leader* first: the first backend in write order (the authoritative one,
first in ``read_order``) that answers. The leader decides the logical outcome — ``AuditExists``,
``AuditNotFound`` — before any other backend is touched, so a rejected write changes nothing.
The other backends then follow in parallel; a follower that disagrees only because it is behind
(a create that finds a stale copy, an update of an audit it never saw) is brought in line.
Blob writes have no precondition, so every blob backend is written at once.

A failure on a ``required`` backend fails the operation with ``WriteError`` (every backend's
outcome attached); a failure on an optional one is logged and reported to the
``backend_error`` hook. Reads skip a backend that raises, which is not the same as one that
answers "not here"; when every backend raised the read raises ``BackendUnavailable``.

What each backend can do comes from its declared capabilities, never from trying: ``list()``
asks only backends that declare ``list``, ``url()`` only those that declare ``urls``. A
composite declares what at least one of its backends does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import attrs

from .errors import (
    AuditExists,
    AuditNotFound,
    BackendUnavailable,
    BlobNotFound,
    NotAttempted,
    WriteError,
)
from .keys import validate_audit_id, validate_blob_key, validate_blob_prefix
from .model import (
    Audit,
    AuditPage,
    AuditStatus,
    BlobInfo,
    decode_cursor,
    validate_limit,
    validate_status,
)
from .protocols import Capability, capabilities_of

log = logging.getLogger("veritas_store.composite")

# What a composite can offer when one of its backends does. NATIVE_ASYNC is not passed on:
# the composite itself has no ``aio`` (the async API wraps it).
_INHERITED = frozenset({Capability.LIST, Capability.URLS})

T = TypeVar("T")
S = TypeVar("S")

# Errors that are answers, not failures: the leader raising one ends the write unchanged.
_LOGICAL = (AuditExists, AuditNotFound)


@attrs.frozen
class Member(Generic[S]):
    """One backend of a composite."""

    name: str
    store: S
    required: bool = True
    type: str = ""


class _Composite(Generic[S]):
    kind = ""

    def __init__(
        self,
        members: list[Member[S]],
        read_order: list[str] | None = None,
        on_error: Callable[..., None] | None = None,
    ) -> None:
        if not members:
            raise ValueError("a composite needs at least one backend")
        by_name = {m.name: m for m in members}
        order = list(read_order or [m.name for m in members])
        order += [m.name for m in members if m.name not in order]
        self._read: list[Member[S]] = [by_name[n] for n in order]
        # The authoritative backend is written first, the others in declaration order.
        self._write: list[Member[S]] = [self._read[0]] + [
            m for m in members if m is not self._read[0]
        ]
        self._on_error = on_error
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._capabilities = {m.name: capabilities_of(m.store) for m in members}
        self.capabilities: frozenset[str] = _INHERITED & frozenset().union(
            *self._capabilities.values()
        )

    # -- introspection -------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, S]:
        """The backend stores by config name, in read order."""
        return {m.name: m.store for m in self._read}

    @property
    def members(self) -> list[Member[S]]:
        return list(self._read)

    @property
    def authoritative(self) -> str:
        return self._read[0].name

    def _listers(self) -> list[Member[S]]:
        listers = [m for m in self._read if Capability.LIST in self._capabilities[m.name]]
        if not listers:
            raise NotImplementedError(
                f"none of the {self.kind} backends can list: {', '.join(self.backends)}"
            )
        return listers

    # -- plumbing ------------------------------------------------------------------------

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
        if self._on_error is not None:
            self._on_error(
                kind=self.kind, backend=member.name, operation=operation, key=key, error=exc
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

    def _fan_out(
        self,
        operation: str,
        key: str,
        lead: Callable[[S], T],
        follow: Callable[[S], Any] | None = None,
        *,
        parallel: bool = False,
    ) -> tuple[T, list[Any]]:
        """Write through every backend; return the leader's result and the followers' results.

        ``parallel`` writes every backend at once, for writes without a precondition (blob
        put and delete): there is nothing for a leader to decide, so nothing to wait for.
        """
        follow = follow or lead
        outcomes: dict[str, BaseException | None] = {}
        remaining = list(self._write)
        leader_result: Any = None
        while remaining and not parallel:
            member = remaining.pop(0)
            try:
                leader_result = lead(member.store)
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
            if not parallel:
                raise WriteError(f"{operation}({key}) failed on every backend", outcomes)

        results = self._run([(lambda m=m: follow(m.store)) for m in remaining])
        if parallel:
            answers = [r for r in results if not isinstance(r, Exception)]
            if not answers:
                failures = dict(zip((m.name for m in remaining), results, strict=True))
                raise WriteError(f"{operation}({key}) failed on every backend", failures)
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

    def _first_answer(
        self,
        operation: str,
        key: str | None,
        call: Callable[[S], T],
        members: list[Member[S]] | None = None,
    ) -> T:
        """The answer of the first backend (in read order, of ``members``) that does not raise."""
        errors: dict[str, Exception] = {}
        for member in self._read if members is None else members:
            try:
                return call(member.store)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, operation, key, exc)
        raise BackendUnavailable(
            f"{operation}({key or ''}) failed on every {self.kind} backend: "
            + "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in errors.items()),
            errors,
        )

    def close(self) -> None:
        for member in self._read:
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

    def create(self, audit: Audit) -> None:
        validate_audit_id(audit.id)

        def follow(store: Any) -> None:
            try:
                store.create(audit)
            except AuditExists:  # a stale copy the leader did not have: replace it
                store.update(audit)

        self._fan_out("create", audit.id, lambda s: s.create(audit), follow)

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
        errors: dict[str, Exception] = {}
        for member in self._read:
            try:
                audit = member.store.get(audit_id)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "get", audit_id, exc)
                continue
            if audit is not None:
                return audit, member.name
        if len(errors) == len(self._read):
            raise BackendUnavailable(f"get({audit_id}) failed on every audit backend", errors)
        return None, None

    def list(
        self,
        status: AuditStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditPage:
        validate_status(status)
        validate_limit(limit)
        if cursor is not None:
            decode_cursor(cursor)  # a bad cursor is the caller's error, not a backend failure
        return self._first_answer(
            "list",
            None,
            lambda s: s.list(status=status, limit=limit, cursor=cursor),
            self._listers(),
        )


class CompositeBlobStore(_Composite[Any]):
    """A ``BlobStore`` over several blob backends."""

    kind = "blobs"

    def put(self, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"blob data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        info, _ = self._fan_out("put", key, lambda s: s.put(key, data, content_type), parallel=True)
        return info

    def delete(self, key: str) -> bool:
        validate_blob_key(key)
        _, answers = self._fan_out("delete", key, lambda s: s.delete(key), parallel=True)
        return any(answers)

    def get(self, key: str) -> bytes:
        return self.get_with_source(key)[0]

    def get_with_source(self, key: str) -> tuple[bytes, str]:
        validate_blob_key(key)
        errors: dict[str, Exception] = {}
        for member in self._read:
            try:
                return member.store.get(key), member.name
            except BlobNotFound:
                continue
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "get", key, exc)
        if len(errors) == len(self._read):
            raise BackendUnavailable(f"get({key}) failed on every blob backend", errors)
        raise BlobNotFound(f"blob {key!r} not found")

    def exists(self, key: str) -> bool:
        validate_blob_key(key)
        return self._first_answer("exists", key, lambda s: s.exists(key))

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
        makers = [m for m in self._read if Capability.URLS in self._capabilities[m.name]]
        if not makers:
            raise NotImplementedError(
                f"none of the blob backends can make URLs: {', '.join(self.backends)}"
            )
        errors: dict[str, Exception] = {}
        for member in makers:
            try:
                if member.store.exists(key):
                    return member.store.url(key, expires=expires)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "url", key, exc)
        holders = []
        for member in self._read:
            if member in makers:
                continue
            try:
                if member.store.exists(key):
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
