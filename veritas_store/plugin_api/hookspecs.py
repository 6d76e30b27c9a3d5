"""The plugin hooks. This module holds only the markers and the specifications."""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "veritas_store"

# (major, minor) of the plugin API: these hooks, the store protocols, capabilities, errors and
# helpers exported by ``veritas_store``. A minor bump only adds; a major bump breaks plugins.
# 1.1: list() filters, the event log (capabilities); 1.2: calls on the event loop (INLINE)
PLUGIN_API_VERSION = (1, 2)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_audit_backends(register: Any) -> None:
    """Register audit backend types: ``register(type_name, factory, description="...")``.

    ``factory(**options)`` is called with the backend's options from config and returns an
    object satisfying the ``AuditStore`` protocol.
    """


@hookspec
def register_blob_backends(register: Any) -> None:
    """Register blob backend types: ``register(type_name, factory, description="...")``."""


# Observers: implement any of these to feed alerting or metrics. They are called in the thread
# that did the operation, so keep them quick; an observer that raises is logged and ignored.
# An implementation may take any subset of the arguments (pluggy's rule).


@hookspec
def backend_error(
    kind: str, backend: str, operation: str, key: str | None, error: Exception
) -> None:
    """Observe a backend failure the composite absorbed (an optional write, or a skipped read).

    ``kind`` is "audits" or "blobs"; ``backend`` the backend's config name; ``operation`` the
    store method ("create", "put", "get", ...; "read_repair" for a read-repair copy, "compare"
    for a shadow read); ``key`` the audit id or blob key (None for ``list``). A blob copy whose
    sha256 does not match its screenshot record is reported with a ``ChecksumMismatch``.
    """


@hookspec
def journal_entry(
    kind: str, operation: str, key: str, backends: tuple[str, ...], error: str
) -> None:
    """Observe a write kept in the repair journal: ``backends`` miss it; ``repair`` will fix it.

    Called after the entry is on disk, before the write returns (or raises ``WriteError``).
    """


@hookspec
def shadow_mismatch(kind: str, key: str, authoritative: str, compared: str, detail: str) -> None:
    """Observe a migration-stage read (``shadow``, ``live``) whose two sides differ.

    ``detail`` says how: "only in the authoritative backend", "fields differ: status, ...",
    "sha256 differs: ...". The caller still gets the authoritative answer.
    """
