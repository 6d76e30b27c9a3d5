"""The conformance kit, run through the async API, so async and sync behaviour cannot drift.

Each store is opened with ``open_async_stores`` on a loop in a thread of its own, and the
kit's blocking calls are turned into coroutine calls on that loop (``aio_support.Synced``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aio_support import LoopThread, Synced
from native_async import NativeAsyncPlugin

from veritas_store.aio import open_async_stores
from veritas_store.testing import AuditStoreContract, BlobStoreContract


class AsyncAudits(AuditStoreContract):
    """Provide ``audit_config`` (and ``plugins``); the kit runs on ``stores.audits``."""

    plugins: tuple[object, ...] = ()

    @pytest.fixture
    def audit_store(self, audit_config: dict[str, Any], tmp_path: Path) -> Iterator[Synced]:
        runner = LoopThread()
        config = {
            "audits": audit_config,
            "blobs": {"backends": {"m": {"type": "memory"}}},
            "journal": str(tmp_path / "journal.db"),
        }
        stores = runner.call(open_async_stores(config, plugins=self.plugins))
        yield Synced(stores.audits, runner)
        runner.call(stores.aclose())
        runner.close()


class AsyncBlobs(BlobStoreContract):
    """Provide ``blob_config`` (and ``plugins``); the kit runs on ``stores.blobs``."""

    plugins: tuple[object, ...] = ()

    @pytest.fixture
    def blob_store(self, blob_config: dict[str, Any], tmp_path: Path) -> Iterator[Synced]:
        runner = LoopThread()
        config = {
            "audits": {"backends": {"m": {"type": "memory"}}},
            "blobs": blob_config,
            "journal": str(tmp_path / "journal.db"),
        }
        stores = runner.call(open_async_stores(config, plugins=self.plugins))
        yield Synced(stores.blobs, runner)
        runner.call(stores.aclose())
        runner.close()


class TestAsyncSqliteAndMemory(AsyncAudits):
    """The embedded default's audit composite: SQLite read first, memory beside it."""

    @pytest.fixture
    def audit_config(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "read_order": ["sql", "memory"],
            "backends": {
                "sql": {"type": "sql", "url": f"sqlite:///{tmp_path}/audits.db"},
                "memory": {"type": "memory"},
            },
        }


class TestAsyncNativeAndMemory(AsyncAudits):
    """A native-async backend leading, a sync one following."""

    plugins = (NativeAsyncPlugin(),)

    @pytest.fixture
    def audit_config(self) -> dict[str, Any]:
        return {
            "backends": {"native": {"type": "native-async"}, "memory": {"type": "memory"}},
        }


class TestAsyncLocalDisk(AsyncBlobs):
    @pytest.fixture
    def blob_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"backends": {"local": {"type": "fsspec", "url": str(tmp_path / "blobs")}}}


class TestAsyncNativeBlobs(AsyncBlobs):
    plugins = (NativeAsyncPlugin(),)

    @pytest.fixture
    def blob_config(self) -> dict[str, Any]:
        return {"backends": {"native": {"type": "native-async"}}}
