"""What a backend must provide. Any object with these methods is a store (structural typing).

Backends validate ids and keys themselves (``validate_audit_id`` / ``validate_blob_key``), so a
backend used on its own is as safe as one inside a composite.

A store may also declare what it supports beyond the required methods: a ``capabilities``
attribute, a frozenset of :class:`Capability` values (plain strings). The composite and the
conformance kit read it with :func:`capabilities_of`; a store that declares nothing gets
``DEFAULT_CAPABILITIES``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..records.model import Audit, BlobInfo
from ..records.paging import AuditPage
from ..records.values import AuditStatus


class Capability(enum.StrEnum):
    """What a store can do beyond the required methods. The string values are stable API."""

    LIST = "list"
    """``list()`` works. Without it ``list()`` raises ``NotImplementedError``."""

    URLS = "urls"
    """Blob stores: ``url()`` returns a URL. Without it ``url()`` raises ``NotImplementedError``."""

    FILTERS = "filters"
    """Audit stores (plugin API 1.1): ``list()`` takes ``risk_level``, ``url``,
    ``created_after``, ``created_before`` and ``order``. Without it the composite filters a
    status-only listing itself (``vs.paginate``)."""

    EVENTS = "events"
    """Audit stores (plugin API 1.1): ``append_events(audit_id, events)`` and
    ``events(audit_id, after=None, limit=1000)``, the audit's event log."""

    NATIVE_ASYNC = "native_async"
    """``store.aio`` has the same methods as coroutines; the async API uses it directly."""

    DURABLE = "durable"
    """What the store holds outlives the process (a file, a database, object storage). A
    composite journals a write only when a backend that may miss it is durable: a volatile
    store (memory) starts empty again, so a write it missed leaves repair nothing to complete."""

    INLINE = "inline"
    """Its calls may run on the async API's event loop thread (no hand-off to a worker): they
    compute and touch this process's memory or local files, and while ``vs.may_wait()`` is
    False every call either finishes without waiting or raises ``vs.WouldBlock`` before it has
    changed anything (then it runs again on a worker). A lock held only for a few dictionary
    operations is not a wait; another process's lock, a disk flush or a network round trip
    is. See docs/plugins.md, "Running on the event loop"."""


DEFAULT_CAPABILITIES: frozenset[str] = frozenset({Capability.LIST})
"""What a store that has no ``capabilities`` attribute is taken to support."""


def capabilities_of(store: object) -> frozenset[str]:
    """The capabilities ``store`` declares, or ``DEFAULT_CAPABILITIES`` if it declares none."""
    declared = getattr(store, "capabilities", None)
    if declared is None:
        return DEFAULT_CAPABILITIES
    if isinstance(declared, str) or not isinstance(declared, set | frozenset):
        raise TypeError(
            f"{type(store).__name__}.capabilities must be a frozenset of str, "
            f"got {type(declared).__name__}"
        )
    if not all(isinstance(name, str) for name in declared):
        raise TypeError(f"{type(store).__name__}.capabilities must hold only str values")
    return frozenset(declared)


@runtime_checkable
class AuditStore(Protocol):
    def create(self, audit: Audit) -> None:
        """Store a new audit; ``AuditExists`` if its id is stored already."""

    def get(self, audit_id: str) -> Audit | None:
        """The audit, equal to what was written, or None."""

    def update(self, audit: Audit) -> None:
        """Replace the whole record; ``AuditNotFound`` if absent."""

    def delete(self, audit_id: str) -> bool:
        """True if the audit existed."""

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
        """Newest first (``order="oldest"``: oldest first) by ``created_at`` then ``id``;
        keyset pagination. The keyword filters need ``Capability.FILTERS`` (plugin API 1.1)."""

    def close(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        """Store ``data`` atomically: a reader never sees a partial blob."""

    def get(self, key: str) -> bytes:
        """The bytes; ``BlobNotFound`` if absent."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """True if the blob existed."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with the plain string ``prefix``, in lexicographic order."""

    def url(self, key: str, expires: int = 3600) -> str:
        """A URL to read the blob; ``NotImplementedError`` if the backend cannot make one."""

    def close(self) -> None: ...


@runtime_checkable
class SchemaManaged(Protocol):
    """Optional, for a backend with a versioned schema (the built-in ``sql``): what
    ``veritas-store db`` calls. Its factory also has ``open_for_migrations(**options)``, which
    opens the store like the factory does but without refusing an outdated schema (and without
    creating one), so that ``db upgrade`` can run. See docs/deploy.md."""

    def schema_current(self) -> dict[str, Any]:
        """``{"state", "revision", "head", ...}``; state is ``empty``, ``current``,
        ``outdated``, ``unversioned`` or ``ahead``."""

    def schema_history(self) -> list[dict[str, Any]]:
        """Every revision, oldest first: ``{"revision", "down_revision", "description",
        "applied", "head"}``."""

    def schema_upgrade(self) -> dict[str, Any]:
        """Upgrade to the latest revision: ``{"before", "from", "to", "changed"}``."""
