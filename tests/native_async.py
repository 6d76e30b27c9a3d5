"""A native-async test backend: its real implementation is its coroutines.

``NativeAsyncAuditStore`` / ``NativeAsyncBlobStore`` declare the ``native_async`` capability and
expose ``aio``, an object with the protocol's methods as coroutines (``aio.list`` of the blob
store is an async iterator). Every coroutine yields to the event loop before it answers, so it
only completes if the loop is free, and records the loop and thread it ran on. The blocking
methods work too (the protocol requires them) but count their calls, so a test can assert that
the async API never used them. The data lives in a real memory backend.

``NativeAsyncPlugin`` registers both as backend type ``native-async``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import veritas_store as vs
from veritas_store_plugins.memory import MemoryAuditStore, MemoryBlobStore


class _Native:
    capabilities = frozenset({"native_async", "list"})

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sync_calls: Counter[str] = Counter()
        self.aio_calls: Counter[str] = Counter()
        self.aio_threads: set[int] = set()
        self.aio_loops: set[asyncio.AbstractEventLoop] = set()
        self.closed = False

    def _sync(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.sync_calls[name] += 1
        return getattr(self.inner, name)(*args, **kwargs)

    async def _native(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.aio_calls[name] += 1
        self.aio_threads.add(threading.get_ident())
        self.aio_loops.add(asyncio.get_running_loop())
        await asyncio.sleep(0)  # a real suspension: completes only if the loop runs
        return getattr(self.inner, name)(*args, **kwargs)

    def close(self) -> None:
        self.sync_calls["close"] += 1
        self.closed = True


class NativeAsyncAuditStore(_Native):
    def __init__(self) -> None:
        super().__init__(MemoryAuditStore())
        self.aio = _AuditCoroutines(self)

    def create(self, audit: vs.Audit) -> None:
        self._sync("create", audit)

    def get(self, audit_id: str) -> vs.Audit | None:
        return self._sync("get", audit_id)

    def update(self, audit: vs.Audit) -> None:
        self._sync("update", audit)

    def delete(self, audit_id: str) -> bool:
        return self._sync("delete", audit_id)

    def list(self, status: Any = None, limit: int = 100, cursor: str | None = None) -> Any:
        return self._sync("list", status=status, limit=limit, cursor=cursor)


class _AuditCoroutines:
    def __init__(self, owner: NativeAsyncAuditStore) -> None:
        self._owner = owner

    async def create(self, audit: vs.Audit) -> None:
        await self._owner._native("create", audit)

    async def get(self, audit_id: str) -> vs.Audit | None:
        return await self._owner._native("get", audit_id)

    async def update(self, audit: vs.Audit) -> None:
        await self._owner._native("update", audit)

    async def delete(self, audit_id: str) -> bool:
        return await self._owner._native("delete", audit_id)

    async def list(self, status: Any = None, limit: int = 100, cursor: str | None = None) -> Any:
        return await self._owner._native("list", status=status, limit=limit, cursor=cursor)

    async def close(self) -> None:
        await self._owner._native("close")
        self._owner.closed = True


class NativeAsyncBlobStore(_Native):
    def __init__(self) -> None:
        super().__init__(MemoryBlobStore())
        self.aio = _BlobCoroutines(self)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> vs.BlobInfo:
        return self._sync("put", key, data, content_type)

    def get(self, key: str) -> bytes:
        return self._sync("get", key)

    def exists(self, key: str) -> bool:
        return self._sync("exists", key)

    def delete(self, key: str) -> bool:
        return self._sync("delete", key)

    def list(self, prefix: str = "") -> Any:
        return self._sync("list", prefix)

    def url(self, key: str, expires: int = 3600) -> str:
        return self._sync("url", key, expires=expires)


class _BlobCoroutines:
    def __init__(self, owner: NativeAsyncBlobStore) -> None:
        self._owner = owner

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> vs.BlobInfo:
        return await self._owner._native("put", key, data, content_type)

    async def get(self, key: str) -> bytes:
        return await self._owner._native("get", key)

    async def exists(self, key: str) -> bool:
        return await self._owner._native("exists", key)

    async def delete(self, key: str) -> bool:
        return await self._owner._native("delete", key)

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        for key in await self._owner._native("list", prefix):
            await asyncio.sleep(0)
            yield key

    async def url(self, key: str, expires: int = 3600) -> str:
        return await self._owner._native("url", key, expires=expires)

    async def close(self) -> None:
        await self._owner._native("close")
        self._owner.closed = True


class NativeAsyncPlugin:
    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        register("native-async", NativeAsyncAuditStore, description="test: native async audits")

    @vs.hookimpl
    def register_blob_backends(self, register: Any) -> None:
        register("native-async", NativeAsyncBlobStore, description="test: native async blobs")
