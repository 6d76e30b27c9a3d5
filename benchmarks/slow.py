"""A slow backend for the fan-out benchmark: a real memory backend whose writes take 20 ms.

Registered as backend type ``slow`` (audits and blobs) through an ordinary plugin object, so
``open_stores(config, plugins=[SlowPlugin()])`` builds it from a config like any other backend.
The delay stands for a remote database or object store round trip (and the store declares
``durable`` like one, so its writes are journaled); reads are not delayed.
"""

from __future__ import annotations

import time
from typing import Any

import veritas_store as vs
from veritas_store.plugin_api.registry import get_registry

WRITES = frozenset({"create", "update", "delete", "put"})


class SlowStore:
    """Passes every call to ``inner``; a write first sleeps ``delay_ms``."""

    def __init__(self, inner: Any, delay_ms: float) -> None:
        self.inner = inner
        self.delay = delay_ms / 1000
        # it stands for a remote store, so it is journaled like one
        self.capabilities = vs.capabilities_of(inner) | {vs.Capability.DURABLE}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self.delay)
            return attr(*args, **kwargs)

        return write


class SlowPlugin:
    @staticmethod
    def _factory(kind: str) -> Any:
        def factory(delay_ms: float = 20.0) -> SlowStore:
            memory = get_registry().lookup(kind, "memory")
            assert memory is not None
            return SlowStore(memory.factory(), delay_ms)

        return factory

    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        register("slow", self._factory("audits"), description="memory, 20 ms per write")

    @vs.hookimpl
    def register_blob_backends(self, register: Any) -> None:
        register("slow", self._factory("blobs"), description="memory, 20 ms per write")
