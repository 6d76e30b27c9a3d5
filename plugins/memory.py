"""The ``memory`` backends: audits and blobs in this process's memory, safe across threads.

Nothing survives the process; in a deployment with several processes each has its own copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import veritas_store as vs


class MemoryAuditStore:
    # INLINE: a call only computes and holds the lock for a few dictionary operations, so it
    # never waits in the sense of vs.Capability.INLINE and runs on the event loop as it is.
    capabilities = frozenset(
        {vs.Capability.LIST, vs.Capability.FILTERS, vs.Capability.EVENTS, vs.Capability.INLINE}
    )

    def __init__(self) -> None:
        self._audits: dict[str, vs.Audit] = {}
        self._events: dict[str, dict[int, vs.AuditEvent]] = {}  # by seq, in append order
        self._lock = threading.Lock()

    def create(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        with self._lock:
            if audit.id in self._audits:
                raise vs.AuditExists(f"audit {audit.id!r} already exists")
            self._audits[audit.id] = audit

    def get(self, audit_id: str) -> vs.Audit | None:
        vs.validate_audit_id(audit_id)
        return self._audits.get(audit_id)  # records are immutable: no copy needed

    def update(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        with self._lock:
            if audit.id not in self._audits:
                raise vs.AuditNotFound(f"audit {audit.id!r} not found")
            self._audits[audit.id] = audit

    def delete(self, audit_id: str) -> bool:
        vs.validate_audit_id(audit_id)
        with self._lock:
            self._events.pop(audit_id, None)
            return self._audits.pop(audit_id, None) is not None

    def append_events(
        self, audit_id: str, events: Iterable[vs.AuditEvent]
    ) -> tuple[vs.AuditEvent, ...]:
        vs.validate_audit_id(audit_id)
        events = list(events)
        with self._lock:
            if audit_id not in self._audits:
                raise vs.AuditNotFound(f"audit {audit_id!r} not found")
            log = self._events.setdefault(audit_id, {})
            fresh, numbered = vs.number_events(max(log, default=0), events)
            for event in fresh or numbered:
                log.setdefault(event.seq, event)  # type: ignore[arg-type]
            if numbered:  # keep seq order whatever order a replay came in
                self._events[audit_id] = dict(sorted(log.items()))
            return tuple(fresh or numbered)

    def events(
        self, audit_id: str, after: int | None = None, limit: int = 1000
    ) -> tuple[vs.AuditEvent, ...]:
        vs.validate_audit_id(audit_id)
        vs.validate_after(after, limit)
        with self._lock:
            if audit_id not in self._audits:
                raise vs.AuditNotFound(f"audit {audit_id!r} not found")
            log = list(self._events.get(audit_id, {}).values())
        start = after or 0
        return tuple(e for e in log if e.seq > start)[:limit]  # type: ignore[operator]

    def list(
        self,
        status: vs.AuditStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        **filters: Any,
    ) -> vs.AuditPage:
        with self._lock:
            snapshot = list(self._audits.values())
        return vs.paginate(snapshot, status=status, limit=limit, cursor=cursor, **filters)

    def close(self) -> None:
        pass


class MemoryBlobStore:
    # no URLS: nothing outside can read memory; INLINE as for the audits
    capabilities = frozenset({vs.Capability.LIST, vs.Capability.INLINE})

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, str | None]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str | None = None) -> vs.BlobInfo:
        vs.validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"blob data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        with self._lock:
            self._blobs[key] = (data, content_type)
        return vs.BlobInfo.of(key, data, content_type)

    def get(self, key: str) -> bytes:
        vs.validate_blob_key(key)
        try:
            return self._blobs[key][0]
        except KeyError:
            raise vs.BlobNotFound(f"blob {key!r} not found") from None

    def exists(self, key: str) -> bool:
        vs.validate_blob_key(key)
        return key in self._blobs

    def delete(self, key: str) -> bool:
        vs.validate_blob_key(key)
        with self._lock:
            return self._blobs.pop(key, None) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        vs.validate_blob_prefix(prefix)
        with self._lock:
            keys = sorted(k for k in self._blobs if k.startswith(prefix))
        return iter(keys)

    def url(self, key: str, expires: int = 3600) -> str:
        raise NotImplementedError("the memory blob backend cannot make URLs")

    def close(self) -> None:
        pass


@vs.hookimpl
def register_audit_backends(register):  # type: ignore[no-untyped-def]
    register("memory", MemoryAuditStore, description="audits in process memory (not persistent)")


@vs.hookimpl
def register_blob_backends(register):  # type: ignore[no-untyped-def]
    register("memory", MemoryBlobStore, description="blobs in process memory (not persistent)")
