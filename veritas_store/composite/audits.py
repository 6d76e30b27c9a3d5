"""The audit composite: an ``AuditStore`` over several audit backends.

Writes (``create``, ``update``, ``delete``, ``append_events``) fan out leader first
(``fanout.py``); reads (``get``, ``list``, ``events``) follow read order (``reads.py``).
"""

from __future__ import annotations

import builtins  # the class's list() method hides the builtin in its annotations
import contextlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..plugin_api.protocols import AuditStore, Capability
from ..records.errors import AuditExists, AuditNotFound, BackendUnavailable
from ..records.keys import validate_audit_id
from ..records.model import Audit, AuditEvent
from ..records.paging import (
    MAX_EVENTS_PAGE,
    AuditPage,
    ListFilter,
    decode_cursor,
    number_events,
    validate_after,
    validate_limit,
)
from ..records.values import AuditStatus
from .base import Member, difference
from .fanout import FanOut
from .querying import list_with
from .reads import Reads


class CompositeAuditStore(FanOut[Any], Reads[Any]):
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
        return self._delete(audit_id)

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
        return self._needed(Capability.EVENTS, "audit backends keeps events", members)

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

    # -- the item hooks of base.Composite (reads, read-repair, repair) ---------------------

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
    return difference(a, b, _fields_differ)


def _fields_differ(a: Audit, b: Audit) -> str:
    fields = [f.name for f in attrs.fields(Audit) if getattr(a, f.name) != getattr(b, f.name)]
    return f"fields differ: {', '.join(fields)}"
