"""What a backend must provide. Any object with these methods is a store (structural typing).

Backends validate ids and keys themselves (``validate_audit_id`` / ``validate_blob_key``), so a
backend used on its own is as safe as one inside a composite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from .model import Audit, AuditPage, AuditStatus, BlobInfo


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
    ) -> AuditPage:
        """Newest first by ``created_at`` then ``id``; keyset pagination."""

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
