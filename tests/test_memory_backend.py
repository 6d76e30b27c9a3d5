"""The memory backends, and composites of them opened from a config dict, pass the kit."""

import pytest

import veritas_store as vs
from veritas_store.testing import AuditStoreContract, BlobStoreContract
from veritas_store_plugins.memory import MemoryAuditStore, MemoryBlobStore


class TestMemoryAuditStore(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        store = MemoryAuditStore()
        yield store
        store.close()


class TestMemoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        store = MemoryBlobStore()
        yield store
        store.close()


def _two_memory_backends():
    backends = {"a": {"type": "memory"}, "b": {"type": "memory", "required": False}}
    return {"audits": {"backends": backends}, "blobs": {"backends": backends}}


class TestCompositeOfMemoryAudits(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        with vs.open_stores(_two_memory_backends()) as stores:
            yield stores.audits


class TestCompositeOfMemoryBlobs(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        with vs.open_stores(_two_memory_backends()) as stores:
            yield stores.blobs
