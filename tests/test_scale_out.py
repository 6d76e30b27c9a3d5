"""Several app instances on one shared PostgreSQL (and S3): pool options, processes writing at
once, and the read-order warning for per-process backends. Real servers, real processes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import s3server
from conftest import drop_prefixed_tables, unique_prefix
from test_cli import write
from writer_process import png, shared_version

import veritas_store as vs
from veritas_store.cli.health import _read_order_warnings
from veritas_store.wiring.config import load_config
from veritas_store_plugins.sql import SqlAuditStore

WORKER = Path(__file__).with_name("writer_process.py")


# --- pools ----------------------------------------------------------------------------------


def _pool(store: SqlAuditStore) -> dict[str, Any]:
    pool: Any = store.engine.pool
    return {
        "size": pool.size(),
        "max_overflow": pool._max_overflow,
        "recycle": pool._recycle,
        "pre_ping": pool._pre_ping,
    }


@pytest.mark.parametrize("server", ["pg_url", "mariadb_url"])
def test_server_pools_have_production_defaults(request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(server)
    prefix = unique_prefix()
    store = SqlAuditStore(url, table_prefix=prefix)
    try:
        assert _pool(store) == {"size": 5, "max_overflow": 10, "recycle": 3600, "pre_ping": True}
    finally:
        store.close()
        drop_prefixed_tables(url, prefix)


def test_pool_options_come_from_the_config(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique_prefix()
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    config = write(
        tmp_path / "pool.toml",
        f"""
        [audits.backends.pg]
        type = "sql"
        url = "{pg_url}"
        table_prefix = "{prefix}"
        pool_size = "${{DB_POOL_SIZE:-5}}"
        max_overflow = 1
        pool_recycle = 600
        pool_pre_ping = "off"
        """,
    )
    try:
        with vs.open_stores(config) as stores:
            store = stores.audits.backends["pg"]
            assert _pool(store) == {"size": 2, "max_overflow": 1, "recycle": 600, "pre_ping": False}
    finally:
        drop_prefixed_tables(pg_url, prefix)


def test_sqlite_files_keep_sqlalchemys_pool(tmp_path: Path) -> None:
    store = SqlAuditStore(f"sqlite:///{tmp_path}/a.db")
    try:
        # no server pool defaults, and no pre-ping: a SQLite connection is an open file that
        # cannot go stale (docs/config.md), so a ping would only cost time
        assert _pool(store)["recycle"] == -1 and _pool(store)["pre_ping"] is False
    finally:
        store.close()


# --- processes writing at once ----------------------------------------------------------------


def _run_workers(config: Path, count: int, *flags: str, workers: int = 2) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(config), str(w), str(count), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in processes:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def _all_audits(store: Any) -> list[vs.Audit]:
    """Every audit, through newest-first keyset pages as a client would read them."""
    items: list[vs.Audit] = []
    cursor = None
    while True:
        page = store.list(limit=1000, cursor=cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def test_processes_writing_through_one_postgresql_stay_consistent(
    pg_url: str, tmp_path: Path
) -> None:
    # Four processes record their own audits and keep overwriting eight audits they all share
    # (whole-record updates that replace the findings rows), so their transactions collide.
    prefix = unique_prefix()
    config = write(
        tmp_path / "pg.toml",
        f"""
        [audits.backends.pg]
        type = "sql"
        url = "{pg_url}"
        table_prefix = "{prefix}"

        [blobs.backends.local]
        type = "fsspec"
        url = "blobs"
        """,
    )
    store = SqlAuditStore(pg_url, table_prefix=prefix)
    try:
        for k in range(8):
            store.create(shared_version(f"shared-{k}", 0, 0))
        _run_workers(config, 100, "--shared", "8", workers=4)

        audits = _all_audits(store)
        counts = Counter(a.id for a in audits)
        assert max(counts.values()) == 1  # every audit listed once
        own = {f"w{w}-{i:05d}" for w in range(4) for i in range(100)}
        assert set(counts) == own | {f"shared-{k}" for k in range(8)}
        assert all(a.status == vs.AuditStatus.COMPLETED for a in audits if a.id in own)
        for k in range(8):
            shared = store.get(f"shared-{k}")
            worker = int(shared.narrative.split()[1])  # "worker W round R": whoever wrote last
            round_ = int(shared.narrative.split()[3])
            assert shared == shared_version(f"shared-{k}", worker, round_)  # never a mix
        with store.engine.connect() as conn:
            findings = conn.exec_driver_sql(f"SELECT count(*) FROM {prefix}findings").scalar()
        assert findings == sum(len(a.findings) for a in audits)  # no orphaned child rows
    finally:
        store.close()
        drop_prefixed_tables(pg_url, prefix)


def test_two_processes_write_5000_audits_each_through_postgresql_and_s3(
    pg_url: str, s3_server: s3server.S3Server, tmp_path: Path
) -> None:
    per_worker = 5000
    prefix = unique_prefix()
    bucket = s3_server.make_bucket()
    config = write(
        tmp_path / "prod.toml",
        f"""
        [audits.backends.pg]
        type = "sql"
        url = "{pg_url}"
        table_prefix = "{prefix}"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://{bucket}/screens"
        storage_options = {{ skip_instance_cache = true, client_kwargs = {{ endpoint_url = "{s3_server.endpoint_url}" }} }}
        """,  # noqa: E501
    )
    try:
        _run_workers(config, per_worker, "--direct", "--threads", "4", workers=2)
        with vs.open_stores(config) as stores:
            audits = _all_audits(stores.audits)
            counts = Counter(a.id for a in audits)
            expected = {f"w{w}-{i:05d}" for w in range(2) for i in range(per_worker)}
            assert set(counts) == expected and max(counts.values()) == 1
            assert all(a.status == vs.AuditStatus.COMPLETED for a in audits)
            keys = list(stores.blobs.list())
            assert len(keys) == len(set(keys)) == 2 * per_worker
            shots = {a.id: a.screenshots for a in audits}
            assert sorted(s[0].blob_key for s in shots.values()) == keys  # no orphan, no gap
            sizes = {
                name.removeprefix(f"{bucket}/screens/"): info["size"]
                for name, info in s3_server.filesystem().find(bucket, detail=True).items()
            }
            for (shot,) in shots.values():
                assert sizes[shot.blob_key] == shot.size_bytes
            for audit_id in sorted(expected)[:: per_worker // 50]:  # every byte of a sample
                (shot,) = shots[audit_id]
                worker, i = int(audit_id[1]), int(audit_id[3:])
                data = stores.blobs.get(shot.blob_key)
                assert data == png(worker, i)
                assert hashlib.sha256(data).hexdigest() == shot.sha256
        # The operator's check (one backend per section here, so it has no pair to compare;
        # the direct checks above are the proof that nothing was lost or duplicated).
        verify = subprocess.run(
            [sys.executable, "-m", "veritas_store.cli", "--config", str(config), "verify"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        drop_prefixed_tables(pg_url, prefix)


# --- read order with several instances ----------------------------------------------------------


def _warnings(sections: dict[str, Any]) -> list[str]:
    return _read_order_warnings(load_config(sections))


_SQL = {"type": "sql", "url": "postgresql+psycopg://db.internal/audits"}
_MEM = {"type": "memory"}
_DISK = {"blobs": {"backends": {"local": {"type": "fsspec", "url": "/srv/blobs"}}}}


@pytest.mark.parametrize(
    ("audits", "warned"),
    [
        ({"read_order": ["cache", "db"], "backends": {"db": _SQL, "cache": _MEM}}, True),
        ({"backends": {"cache": _MEM, "db": _SQL}}, True),  # declaration order
        ({"read_order": ["db", "cache"], "backends": {"db": _SQL, "cache": _MEM}}, False),
        ({"backends": {"cache": _MEM}}, False),  # nothing shared: nothing to be stale against
        ({"backends": {"cache": _MEM, "db": {**_SQL, "enabled": False}}}, False),
        ({"backends": {"cache": _MEM, "db": {"type": "sql", "url": "sqlite://"}}}, False),
        ({"backends": {"cache": _MEM, "db": {"type": "sql", "url": "sqlite:///a.db"}}}, True),
    ],
)
def test_check_warns_only_when_a_per_process_backend_shadows_a_shared_one(
    audits: dict[str, Any], warned: bool
) -> None:
    found = _warnings({"audits": audits, **_DISK})
    assert bool(found) is warned
    if warned:
        assert "'cache' is read before 'db'" in found[0] and found[0].startswith("[audits]")


def test_blob_sections_are_checked_too() -> None:
    blobs = {
        "backends": {
            "scratch": {"type": "fsspec", "url": "memory://scratch"},
            "s3": {"type": "fsspec", "url": "s3://bucket/prefix"},
        }
    }
    (warning,) = _warnings({"audits": {"backends": {"db": _SQL}}, "blobs": blobs})
    assert warning.startswith("[blobs]") and "'scratch' is read before 's3'" in warning
