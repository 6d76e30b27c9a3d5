"""The plugin hooks. This module holds only the markers and the specifications."""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "veritas_store"

# (major, minor) of the plugin API: these hooks, the store protocols, capabilities, errors and
# helpers exported by ``veritas_store``. A minor bump only adds; a major bump breaks plugins.
PLUGIN_API_VERSION = (1, 0)

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


@hookspec
def backend_error(
    kind: str, backend: str, operation: str, key: str | None, error: Exception
) -> None:
    """Observe a backend failure the composite absorbed (an optional write, or a skipped read).

    ``kind`` is "audits" or "blobs"; ``backend`` the backend's config name. Must not raise:
    an observer's exception is logged and ignored.
    """
