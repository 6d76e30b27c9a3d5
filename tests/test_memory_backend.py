"""The memory backends, and composites of them, pass the conformance kit."""

import pytest

from veritas_store.composite import CompositeAuditStore, CompositeBlobStore, Member
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


class TestCompositeAuditStore(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        store = CompositeAuditStore(
            [Member("a", MemoryAuditStore()), Member("b", MemoryAuditStore(), required=False)]
        )
        yield store
        store.close()


class TestCompositeBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        store = CompositeBlobStore([Member("a", MemoryBlobStore()), Member("b", MemoryBlobStore())])
        yield store
        store.close()
