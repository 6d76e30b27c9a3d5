"""A test plugin that records every observer hook call (backend errors, journal, mismatches)."""

from __future__ import annotations

import threading
from typing import Any

import veritas_store as vs


class Recorder:
    """Records the calls of every observer hook, by hook name."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {
            "backend_error": [],
            "journal_entry": [],
            "shadow_mismatch": [],
        }
        self._lock = threading.Lock()

    def _add(self, hook: str, **arguments: Any) -> None:
        with self._lock:
            self.calls[hook].append(arguments)

    @vs.hookimpl
    def backend_error(
        self, kind: str, backend: str, operation: str, key: str | None, error: Exception
    ) -> None:
        self._add("backend_error", kind=kind, backend=backend, operation=operation, key=key,
                  error=error)  # fmt: skip

    @vs.hookimpl
    def journal_entry(
        self, kind: str, operation: str, key: str, backends: tuple[str, ...], error: str
    ) -> None:
        self._add("journal_entry", kind=kind, operation=operation, key=key, backends=backends,
                  error=error)  # fmt: skip

    @vs.hookimpl
    def shadow_mismatch(
        self, kind: str, key: str, authoritative: str, compared: str, detail: str
    ) -> None:
        self._add("shadow_mismatch", kind=kind, key=key, authoritative=authoritative,
                  compared=compared, detail=detail)  # fmt: skip
