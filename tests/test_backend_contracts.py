"""Every built-in backend, against the real thing, passes the one conformance kit."""

from __future__ import annotations

import uuid

import pytest
from conftest import drop_prefixed_tables, unique_prefix

from veritas_store.testing import AuditStoreContract, BlobStoreContract
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore
from veritas_store_plugins.sql import SqlAuditStore


class TestSqliteFile(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, tmp_path):
        store = SqlAuditStore(f"sqlite:///{tmp_path}/audits.db")
        yield store
        store.close()


class TestPostgres(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, pg_url):
        prefix = unique_prefix()
        store = SqlAuditStore(pg_url, table_prefix=prefix)
        yield store
        store.close()
        drop_prefixed_tables(pg_url, prefix)


class TestMariaDB(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, mariadb_url):
        prefix = unique_prefix()
        store = SqlAuditStore(mariadb_url, table_prefix=prefix)
        yield store
        store.close()
        drop_prefixed_tables(mariadb_url, prefix)


class TestLocalDisk(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path):
        store = FsspecBlobStore(str(tmp_path / "blobs"))
        yield store
        store.close()


class TestFsspecMemory(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        store = FsspecBlobStore(f"memory://contract-{uuid.uuid4().hex}")
        yield store
        store.close()


class TestS3(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, s3_server):
        bucket = f"contract-{uuid.uuid4().hex[:12]}"
        s3_server.make_bucket(bucket)
        store = FsspecBlobStore(
            f"s3://{bucket}/prefix", storage_options=s3_server.storage_options()
        )
        yield store
        store.close()
