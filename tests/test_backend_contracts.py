"""Every built-in backend, against the real thing, passes the one conformance kit; so do
composites of them opened through ``open_stores`` from a config dict."""

from __future__ import annotations

import uuid

import pytest
from conftest import drop_prefixed_tables, unique_prefix

import veritas_store as vs
from veritas_store.testing import AuditStoreContract, BlobStoreContract
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore
from veritas_store_plugins.sql import SqlAuditStore

# -- sql -------------------------------------------------------------------------------------


class TestSqliteFile(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, tmp_path):
        store = SqlAuditStore(f"sqlite:///{tmp_path}/audits.db")
        yield store
        store.close()

    @pytest.fixture
    def reopen_audit_store(self, tmp_path):
        return lambda: SqlAuditStore(f"sqlite:///{tmp_path}/audits.db")


class TestPostgres(AuditStoreContract):
    @pytest.fixture
    def prefix(self, pg_url):
        prefix = unique_prefix()
        yield prefix
        drop_prefixed_tables(pg_url, prefix)

    @pytest.fixture
    def audit_store(self, pg_url, prefix):
        store = SqlAuditStore(pg_url, table_prefix=prefix)
        yield store
        store.close()

    @pytest.fixture
    def reopen_audit_store(self, pg_url, prefix):
        return lambda: SqlAuditStore(pg_url, table_prefix=prefix)


class TestMariaDB(AuditStoreContract):
    @pytest.fixture
    def prefix(self, mariadb_url):
        prefix = unique_prefix()
        yield prefix
        drop_prefixed_tables(mariadb_url, prefix)

    @pytest.fixture
    def audit_store(self, mariadb_url, prefix):
        store = SqlAuditStore(mariadb_url, table_prefix=prefix)
        yield store
        store.close()

    @pytest.fixture
    def reopen_audit_store(self, mariadb_url, prefix):
        return lambda: SqlAuditStore(mariadb_url, table_prefix=prefix)


# -- fsspec ----------------------------------------------------------------------------------


class TestLocalDisk(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path):
        store = FsspecBlobStore(str(tmp_path / "blobs"))
        yield store
        store.close()

    @pytest.fixture
    def reopen_blob_store(self, tmp_path):
        return lambda: FsspecBlobStore(str(tmp_path / "blobs"))


class TestFsspecMemory(BlobStoreContract):
    # memory:// is one filesystem per process: a new store over the same url sees the data
    @pytest.fixture
    def url(self):
        return f"memory://contract-{uuid.uuid4().hex}"

    @pytest.fixture
    def blob_store(self, url):
        store = FsspecBlobStore(url)
        yield store
        store.close()

    @pytest.fixture
    def reopen_blob_store(self, url):
        return lambda: FsspecBlobStore(url)


@pytest.fixture(scope="module")
def s3_bucket(s3_server):
    return s3_server.make_bucket()


class TestS3(BlobStoreContract):
    @pytest.fixture
    def url(self, s3_bucket):
        return f"s3://{s3_bucket}/{uuid.uuid4().hex}"  # a fresh, empty store per test

    @pytest.fixture
    def blob_store(self, s3_server, url):
        store = FsspecBlobStore(url, storage_options=s3_server.storage_options())
        yield store
        store.close()

    @pytest.fixture
    def reopen_blob_store(self, s3_server, url):
        return lambda: FsspecBlobStore(url, storage_options=s3_server.storage_options())


# -- composites from a config dict -----------------------------------------------------------


def _config(tmp_path):
    return {
        "audits": {
            "read_order": ["db", "mem"],
            "backends": {
                "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/audits.db"},
                "mem": {"type": "memory", "required": False},
            },
        },
        "blobs": {
            "read_order": ["mem", "disk"],  # memory first: URLs must come from disk
            "backends": {
                "disk": {"type": "fsspec", "url": str(tmp_path / "blobs")},
                "mem": {"type": "memory"},
            },
        },
    }


def _reopen(tmp_path, kind):
    def reopen():
        cfg = _config(tmp_path)
        cfg[kind]["backends"]["mem"]["enabled"] = False  # memory does not survive a restart
        stores = vs.open_stores(cfg)
        return getattr(stores, kind)  # closing the composite closes its backends

    return reopen


class TestCompositeSqliteAndMemory(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, tmp_path):
        with vs.open_stores(_config(tmp_path)) as stores:
            yield stores.audits

    @pytest.fixture
    def reopen_audit_store(self, tmp_path):
        return _reopen(tmp_path, "audits")


class TestCompositeMemoryAndLocalDisk(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path):
        with vs.open_stores(_config(tmp_path)) as stores:
            assert stores.blobs.capabilities == {vs.Capability.LIST, vs.Capability.URLS}
            yield stores.blobs

    @pytest.fixture
    def reopen_blob_store(self, tmp_path):
        return _reopen(tmp_path, "blobs")
