"""Every error veritas-store raises. All are re-exported from ``veritas_store``."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any


class VeritasStoreError(Exception):
    """Base class of every veritas-store error."""


class ConfigError(VeritasStoreError):
    """A config file or dict is malformed: says which file, which key, what was expected."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ", ".join(
            part for part in (source and f"in {source}", key and f"at '{key}'") if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(VeritasStoreError):
    """A plugin failed to load, or two plugins registered the same backend type."""


class InvalidKey(VeritasStoreError, ValueError):
    """An audit id or blob key is not valid; nothing was read or written."""


class InvalidCursor(VeritasStoreError, ValueError):
    """A pagination cursor was not produced by ``list()``."""


class AuditNotFound(VeritasStoreError, KeyError):
    """The audit does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "audit not found"


class BlobNotFound(VeritasStoreError, KeyError):
    """The blob does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "blob not found"


class AuditExists(VeritasStoreError):
    """``create()`` was called for an id that is already stored."""


class InvalidRecord(VeritasStoreError, ValueError):
    """Data for a record (a result dict, an event) is malformed; the stored audit is unchanged."""


class InvalidImage(VeritasStoreError, ValueError):
    """Screenshot data is not valid base64 or not a PNG, JPEG, WebP or GIF image."""


class ChecksumMismatch(VeritasStoreError):
    """A backend returned a blob whose sha256 differs from its record (counted as a failed read)."""


class NotAttempted(VeritasStoreError):
    """Outcome of a backend that was not written because an earlier required backend failed."""


class WouldBlock(VeritasStoreError):
    """A call made without waiting (``veritas_store.may_wait()`` is False) would have had to
    wait: for a lock another thread or process holds, a disk flush, the network. Raised only
    before the call changed anything; the async API then runs the call on a worker thread.

    ``until``, if given, is a ``concurrent.futures.Future`` that completes when what the call
    would wait for is over (a short job of the store's own): the async API then awaits it and
    attempts the call again, instead of handing it to a worker.
    """

    def __init__(self, message: str, *, until: Future[Any] | None = None) -> None:
        super().__init__(message)
        self.until = until


class WriteError(VeritasStoreError):
    """A write failed on a required backend.

    ``outcomes`` maps every enabled backend's name to the exception it raised, or None where
    the write succeeded (a :class:`NotAttempted` where it was not tried).
    """

    def __init__(self, message: str, outcomes: Mapping[str, BaseException | None]):
        self.outcomes = dict(outcomes)
        details = "; ".join(
            f"{name}: {'ok' if exc is None else f'{type(exc).__name__}: {exc}'}"
            for name, exc in self.outcomes.items()
        )
        super().__init__(f"{message} ({details})")


class BackendUnavailable(VeritasStoreError):
    """A read failed because every backend that was asked raised (or a backend failed to open)."""

    def __init__(self, message: str, errors: Mapping[str, BaseException] | None = None):
        self.errors = dict(errors or {})
        super().__init__(message)


class SchemaError(VeritasStoreError):
    """A backend's stored schema is not the one this code works with (outdated, newer, or not
    recognisable). The message says which database and what to run, e.g. ``veritas-store db
    upgrade``."""


__all__ = [
    "AuditExists",
    "AuditNotFound",
    "BackendUnavailable",
    "BlobNotFound",
    "ChecksumMismatch",
    "ConfigError",
    "InvalidCursor",
    "InvalidImage",
    "InvalidKey",
    "InvalidRecord",
    "NotAttempted",
    "PluginError",
    "SchemaError",
    "VeritasStoreError",
    "WouldBlock",
    "WriteError",
]
