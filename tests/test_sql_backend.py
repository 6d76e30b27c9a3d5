"""SQL-specific behaviour of the ``sql`` audit backend, on a real SQLite file, PostgreSQL and
MariaDB (no mocks). The shared conformance kit runs against it in test_backend_contracts.py.

PostgreSQL and MariaDB are expected on 127.0.0.1 (see DESIGN.md; ``.ci/run`` starts them).
A test whose server is unreachable is skipped, naming the service, unless ``CI`` is set: then
it fails, so a broken CI set-up cannot pass by skipping everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

import attrs
import pytest
import sqlalchemy as sa
from conftest import drop_prefixed_tables, unique_prefix
from hypothesis import given, settings
from hypothesis import strategies as st

import veritas_store as vs
from veritas_store.testing import sample_audit
from veritas_store_plugins.sql import SqlAuditStore


class Db(NamedTuple):
    url: str
    prefix: str


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Db]:
    """A database URL and a table prefix no other test uses; tables are dropped afterwards.

    The server URLs come from conftest's ``pg_url`` / ``mariadb_url``, which skip (or, with
    ``CI`` set, fail) naming the service when it is unreachable.
    """
    if request.param == "sqlite":
        yield Db(f"sqlite:///{tmp_path}/not-yet/audits.db", "veritas_")  # folder made on open
        return
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    prefix = unique_prefix()
    yield Db(url, prefix)
    drop_prefixed_tables(url, prefix)


@pytest.fixture
def store(db: Db) -> Iterator[SqlAuditStore]:
    s = SqlAuditStore(db.url, table_prefix=db.prefix)
    yield s
    s.close()


def _rows(store: SqlAuditStore, suffix: str) -> int:
    """Rows in this store's table whose name ends with ``suffix`` (read behind its back)."""
    (table,) = [t for name, t in store.metadata.tables.items() if name.endswith(suffix)]
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


class _Statements:
    """The SQL statements a store sends while the context is open."""

    def __init__(self, store: SqlAuditStore) -> None:
        self.engine = store.engine
        self.sql: list[str] = []

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sql.append(statement.strip().upper())

    def __enter__(self) -> list[str]:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self.sql

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


def full_audit(audit_id: str = "full-1") -> vs.Audit:
    """Everything a database could get wrong: offsets, microseconds, floats, unicode, order."""
    zone = timezone(timedelta(hours=-7, minutes=-30))
    created = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=zone)  # next year in UTC
    return vs.Audit(
        id=audit_id,
        url="https://exämple.test/päth?q=🍪&x=" + "long/" * 14_000,  # >64 KiB: not TEXT
        tier="",  # empty, not None
        verdict_mode="expert",
        status=vs.AuditStatus.RUNNING,
        created_at=created,
        started_at=created + timedelta(microseconds=1),
        completed_at=None,
        updated_at=created + timedelta(seconds=3, microseconds=500001),
        trust_score=0.1,
        risk_level="",
        narrative="Zeile 1\r\nligne 2\t«ß» 中文 🙈🙉🙊  trailing spaces  ",
        signal_scores={"visual": 0.1, "count": 3, "big": 2**53, "neg": -0.0, "tiny": 5e-324},
        site_type=None,
        site_type_confidence=1 / 3,
        security_results={"nested": {"ints": [1, 2, 3], "floats": [1.0, 2.5], "deep": {"n": 0}}},
        pages_scanned=2**31 - 1,
        elapsed_seconds=123456789.12345679,
        error_message=None,
        findings=tuple(
            vs.Finding(f"cat-{i}", "pt", "high", i / 10, f"finding {i} ✓", (9 - i) or None, "")
            for i in range(9, -1, -1)
        ),
        screenshots=(
            vs.Screenshot(
                5, "last first", f"{audit_id}/0005.png", 2**31 - 1, "image/png", "f" * 64
            ),
            vs.Screenshot(1, "", f"{audit_id}/0001.webp", 0, "image/webp", "0" * 64),
        ),
    )


def test_fully_populated_audit_round_trips(store: SqlAuditStore) -> None:
    audit = full_audit()
    store.create(audit)
    got = store.get(audit.id)
    assert got == audit
    assert got.created_at == datetime(2026, 1, 1, 7, 29, 59, 999999, tzinfo=UTC)
    assert got.created_at.utcoffset() == timedelta(0)
    assert type(got.signal_scores["count"]) is int and type(got.signal_scores["visual"]) is float
    assert got.tier == "" and got.site_type is None
    assert [f.category for f in got.findings] == [f"cat-{i}" for i in range(9, -1, -1)]
    assert [s.index for s in got.screenshots] == [5, 1]
    assert store.list().items == (audit,)


def test_ids_are_case_sensitive_and_sorted_by_code_point(store: SqlAuditStore) -> None:
    at = datetime(2026, 2, 1, tzinfo=UTC)
    ids = ["case", "Case", "CASE", "b", "B", "a-1", "a_1", "a.1", "Z"]
    for audit_id in ids:  # a case-insensitive collation would call these duplicates
        store.create(vs.Audit(id=audit_id, url=f"https://{audit_id}.test", created_at=at))
    assert store.get("Case").url == "https://Case.test"
    listed = [a.id for a in store.list(limit=4).items]
    assert listed == sorted(ids, reverse=True)[:4]  # Python's order: by code point


def test_create_twice_raises_and_writes_nothing_more(store: SqlAuditStore) -> None:
    audit = full_audit()
    store.create(audit)
    with pytest.raises(vs.AuditExists):
        store.create(attrs.evolve(audit, findings=audit.findings[:1], narrative="second"))
    assert store.get(audit.id) == audit
    assert _rows(store, "findings") == len(audit.findings)


def test_update_replaces_children_and_missing_raises(store: SqlAuditStore) -> None:
    audit = full_audit()
    store.create(audit)
    smaller = attrs.evolve(
        audit, findings=audit.findings[3:5], screenshots=(), status=vs.AuditStatus.COMPLETED
    )
    store.update(smaller)
    assert store.get(audit.id) == smaller
    assert (_rows(store, "findings"), _rows(store, "screenshots")) == (2, 0)

    with pytest.raises(vs.AuditNotFound):
        store.update(full_audit("never-created"))
    assert store.get("never-created") is None
    assert _rows(store, "findings") == 2  # the failed update left no children behind


def test_delete_cascades_to_children(store: SqlAuditStore) -> None:
    store.create(full_audit("keep"))
    store.create(full_audit("drop"))
    assert store.delete("drop") is True
    assert store.delete("drop") is False
    assert store.get("drop") is None
    assert store.get("keep") == full_audit("keep")
    assert _rows(store, "findings") == len(full_audit().findings)
    assert _rows(store, "screenshots") == len(full_audit().screenshots)


def test_pagination_newest_first_with_ties_and_an_insert_between_pages(
    store: SqlAuditStore,
) -> None:
    base = datetime(2026, 3, 1, 8, 0, 0, 500000, tzinfo=UTC)
    written = [
        vs.Audit(
            id=f"{'xY'[i % 2]}{i:02d}", url="u", created_at=base + timedelta(microseconds=i // 3)
        )
        for i in range(20)
    ]  # groups of three share a created_at (to the microsecond): the id breaks the tie
    for audit in reversed(written):
        store.create(audit)
    expected = sorted(written, key=lambda a: (a.created_at, a.id), reverse=True)

    first = store.list(limit=7)
    assert list(first.items) == expected[:7]
    last = first.items[-1]
    # Inserted after the first page, with the same created_at as its last item: one sorts
    # before that item (so is never shown), one after it (so shows up in its place).
    above = vs.Audit(id="z-above", url="u", created_at=last.created_at)
    below = vs.Audit(id="A-below", url="u", created_at=last.created_at)
    store.create(above)
    store.create(below)
    rest, cursor = [], first.next_cursor
    while cursor is not None:
        page = store.list(limit=7, cursor=cursor)
        rest.extend(page.items)
        cursor = page.next_cursor
    assert rest == sorted([*expected[7:], below], key=lambda a: (a.created_at, a.id), reverse=True)


def test_status_filter_and_bad_arguments(store: SqlAuditStore) -> None:
    base = datetime(2026, 4, 1, tzinfo=UTC)
    for i, status in enumerate(list(vs.AuditStatus) * 3):
        store.create(vs.Audit(id=f"s{i}", url="u", status=status, created_at=base + timedelta(i)))
    errors = store.list(status="error", limit=2)
    assert [a.id for a in errors.items] == ["s11", "s7"]
    assert [a.id for a in store.list(vs.AuditStatus.ERROR, cursor=errors.next_cursor).items] == [
        "s3"
    ]
    with pytest.raises(ValueError, match="status must be one of"):
        store.list(status="done")
    for limit in (0, 10_001, True, 1.5):
        with pytest.raises(ValueError, match="limit"):
            store.list(limit=limit)  # type: ignore[arg-type]


def test_list_loads_children_without_n_plus_1_queries(store: SqlAuditStore) -> None:
    audits = [full_audit(f"n{i:02d}") for i in range(30)]
    for audit in audits:
        store.create(audit)
    with _Statements(store) as sql:
        page = store.list(limit=30)
    assert list(page.items) == sorted(audits, key=lambda a: a.id, reverse=True)
    assert len([s for s in sql if s.startswith("SELECT")]) == 3  # audits, findings, screenshots


def test_invalid_id_is_rejected_before_the_database_is_touched(store: SqlAuditStore) -> None:
    bad = full_audit()
    object.__setattr__(bad, "id", "../../etc/passwd")  # a record the model would never build
    with _Statements(store) as sql:
        for call in (
            lambda: store.create(bad),
            lambda: store.update(bad),
            lambda: store.get("../../etc/passwd"),
            lambda: store.delete("../../etc/passwd"),
        ):
            with pytest.raises(vs.InvalidKey):
                call()
    assert sql == []
    assert store.list().items == ()
    assert _rows(store, "findings") == 0


def test_reads_never_mix_two_versions_of_a_record(store: SqlAuditStore) -> None:
    # get() and list() read the row, then its children: both must come from one snapshot.
    x = full_audit("torn")
    y = attrs.evolve(x, narrative="Y", findings=x.findings[:1], screenshots=())
    store.create(x)
    stop = time.monotonic() + 1.5
    seen: list[Any] = []

    def write() -> None:
        while time.monotonic() < stop:
            store.update(y)
            store.update(x)

    def read() -> None:
        while time.monotonic() < stop:
            seen.append(store.get("torn"))
            seen.extend(store.list().items)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) > 20
    assert [a for a in seen if a not in (x, y)] == []


def test_listeners_see_every_statement_and_get_the_same_records(store: SqlAuditStore) -> None:
    # With a cursor listener (a tracer) attached, statements go through SQLAlchemy's Connection.
    audit = full_audit("traced")
    smaller = attrs.evolve(audit, findings=audit.findings[:2], screenshots=())
    with _Statements(store) as sql:
        store.create(audit)
        store.update(smaller)
        traced = store.get("traced")
        assert store.delete("traced") is True
    verbs = [s.split()[0] for s in sql if not s.startswith(("BEGIN", "SET", "SHOW", "SELECT @@"))]
    assert verbs == (
        ["INSERT", "INSERT", "INSERT"]  # audit, findings, screenshots
        + ["UPDATE", "DELETE", "DELETE", "INSERT"]  # no screenshots left to insert
        + ["SELECT", "SELECT", "SELECT"]
        + ["DELETE"]
    )
    assert traced == smaller
    store.create(audit)  # and without the listener, the same records
    assert store.get("traced") == audit


def test_a_write_that_fails_half_way_changes_nothing(db: Db) -> None:
    # The screenshots table disappears behind the store's back, so update() fails after it has
    # already updated the audit row and replaced the findings: all of it must be rolled back.
    store = SqlAuditStore(db.url, table_prefix=db.prefix, busy_timeout=2)
    try:
        audit = full_audit("half")
        store.create(audit)
        shots = next(t for n, t in store.metadata.tables.items() if n.endswith("screenshots"))
        moved = f"{shots.name}_moved"
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {shots.name} RENAME TO {moved}")
        with pytest.raises(sa.exc.DBAPIError):
            store.update(attrs.evolve(audit, narrative="changed", findings=audit.findings[:1]))
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {moved} RENAME TO {shots.name}")
        assert store.get("half") == audit
        # the failed transaction released its connection and locks: the next write goes through
        store.update(attrs.evolve(audit, narrative="second try"))
        assert store.get("half").narrative == "second try"  # type: ignore[union-attr]
    finally:
        store.close()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_snapshot_reads_leave_the_pooled_connection_as_they_found_it(
    server: str, request: pytest.FixtureRequest
) -> None:
    # get() reads at REPEATABLE READ; the one pooled connection must go back at the default.
    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mariadb_url")
    prefix = unique_prefix()
    store = SqlAuditStore(url, table_prefix=prefix, pool_size=1, max_overflow=0)
    try:
        with store.engine.connect() as conn:
            before = conn.get_isolation_level()
        store.create(full_audit("iso"))
        assert store.get("iso") == full_audit("iso")
        with store.engine.connect() as conn:
            assert conn.get_isolation_level() == before != "REPEATABLE READ"
    finally:
        store.close()
        drop_prefixed_tables(url, prefix)


def test_a_lost_server_connection_is_replaced(pg_url: str) -> None:
    # Without pre-ping, the first call on a connection the server dropped fails; the connection
    # is discarded, so the next call gets a fresh one.
    prefix = unique_prefix()
    store = SqlAuditStore(
        pg_url, table_prefix=prefix, pool_size=1, max_overflow=0, pool_pre_ping=False
    )
    killer = sa.create_engine(pg_url)
    try:
        store.create(full_audit("lost"))
        with store.engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with killer.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(sa.exc.DBAPIError) as failure:
            store.get("lost")
        assert failure.value.connection_invalidated
        assert store.get("lost") == full_audit("lost")
    finally:
        killer.dispose()
        store.close()
        drop_prefixed_tables(pg_url, prefix)


def test_concurrent_first_open_creates_the_tables_once(db: Db) -> None:
    # Several workers starting at once against an empty database all open, and share tables.
    stores: list[SqlAuditStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(SqlAuditStore(db.url, table_prefix=db.prefix))
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        stores[0].create(sample_audit())
        assert all(s.get("audit-1") == sample_audit() for s in stores)
    finally:
        for s in stores:
            s.close()


# --- SQLite as an application store ---------------------------------------------------------


def test_sqlite_is_tuned_and_writes_begin_immediate(tmp_path: Any) -> None:
    store = SqlAuditStore(f"sqlite:///{tmp_path}/a/b/audits.db", busy_timeout=7.5)
    try:
        assert (tmp_path / "a" / "b" / "audits.db").exists()
        with store.engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": 1,
            "busy_timeout": 7500,
            "foreign_keys": 1,
        }
        with _Statements(store) as sql:
            store.create(sample_audit())
        assert sql[0] == "BEGIN IMMEDIATE"  # takes the write lock up front
        with _Statements(store) as sql:
            store.get("audit-1")
        assert sql[0] == "BEGIN"  # readers do not queue behind writers
    finally:
        store.close()


def test_concurrent_writers_on_a_sqlite_file(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/busy.db"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            # Each thread opens its own store on the fresh file (as separate processes would),
            # so table creation races too.
            store = SqlAuditStore(url)
            try:
                for i in range(25):
                    audit = full_audit(f"w{worker}-{i}")
                    store.create(audit)
                    store.list(limit=5)  # reads interleaved with other threads' writes
                    store.update(attrs.evolve(audit, status=vs.AuditStatus.COMPLETED))
                    if i % 5 == 0:
                        assert store.delete(audit.id)
            finally:
                store.close()
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = SqlAuditStore(url)
    try:
        items = store.list(limit=1000).items
        assert {a.id for a in items} == {f"w{w}-{i}" for w in range(8) for i in range(25) if i % 5}
        assert all(a.status == vs.AuditStatus.COMPLETED for a in items)
        assert _rows(store, "findings") == len(items) * len(full_audit().findings)
    finally:
        store.close()


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    store = SqlAuditStore("sqlite://")
    try:
        threads = [
            threading.Thread(target=store.create, args=(sample_audit(f"m{i}"),)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.list().items) == 8
        assert store.get("m3") == sample_audit("m3")
    finally:
        store.close()


_SCRIPT = """
import json, sys
from veritas_store.testing import sample_audit
from veritas_store_plugins.sql import SqlAuditStore
url, prefix, action = sys.argv[1:]
store = SqlAuditStore(url, table_prefix=prefix)
if action == "write":
    store.create(sample_audit("restart-1"))
else:
    print(json.dumps(store.get("restart-1").to_dict()))
store.close()
"""


def test_records_survive_a_restart(db: Db) -> None:
    def run(action: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, db.url, db.prefix, action],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("write")
    assert vs.Audit.from_dict(json.loads(run("read"))) == sample_audit("restart-1")


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"url": 42}, TypeError, "url"),
        ({"url": "not a url, password hunter2"}, ValueError, "not a valid SQLAlchemy"),
        ({"url": "nosuchdb://u:hunter2@h/d"}, ValueError, r"nosuchdb://u:\*\*\*@h/d"),
        ({"table_prefix": "bad-prefix"}, ValueError, "table_prefix"),
        ({"table_prefix": "x" * 33}, ValueError, "table_prefix"),
        ({"busy_timeout": -1}, ValueError, "busy_timeout"),
        ({"busy_timeout": "30"}, TypeError, "busy_timeout"),
        ({"echo": "yes"}, TypeError, "echo"),
        ({"pool_size": "5"}, TypeError, "pool_size"),
        ({"max_overflow": -2}, ValueError, "max_overflow"),
        ({"pool_size": 5}, ValueError, "in-memory"),
    ],
)
def test_bad_options_raise_clear_errors(options: dict[str, Any], error: type, match: str) -> None:
    options = {"url": "sqlite://", **options}
    with pytest.raises(error, match=match) as info:
        SqlAuditStore(**options)
    assert "hunter2" not in str(info.value)


def test_password_never_shown() -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test"  # nothing listens on port 1
    with pytest.raises(vs.BackendUnavailable) as info:
        SqlAuditStore(url)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_repr_names_the_database_and_prefix(tmp_path: Any) -> None:
    store = SqlAuditStore(f"sqlite:///{tmp_path}/r.db", table_prefix="app_")
    assert repr(store) == f"SqlAuditStore(url='sqlite:///{tmp_path}/r.db', table_prefix='app_')"
    store.close()


def test_repr_hides_a_server_password(pg_url: str) -> None:
    url = sa.engine.make_url(pg_url)
    if url.password is None:
        url = url.set(password="hunter2")  # the test server trusts loopback: any password works
    secret = str(url.password)
    prefix = unique_prefix()
    store = SqlAuditStore(url.render_as_string(hide_password=False), table_prefix=prefix)
    try:
        assert secret not in repr(store) and "***" in repr(store)
    finally:
        store.close()
        drop_prefixed_tables(pg_url, prefix)


def test_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="veritas_store") if ep.name == "sql"]
    registered: dict[str, Any] = {}
    ep.load().register_audit_backends(
        register=lambda name, factory, description: registered.update({name: factory})
    )
    assert registered == {"sql": SqlAuditStore}


def test_sqlite_held_connections_are_replaced_when_invalidated_and_returned_on_close(
    tmp_path: Any,
) -> None:
    """File SQLite keeps one writer and one reader connection out of the pool: one that was
    invalidated (a driver error that lost it) is replaced at the next call, and close()
    gives both back to the pool."""
    store = SqlAuditStore(f"sqlite:///{tmp_path / 'held.db'}")
    held: list[Any] = []
    try:
        store.create(full_audit("held-1"))
        assert store.get("held-1") is not None
        store._held_writer.conn.invalidate()  # type: ignore[union-attr]
        store._held_reader.conn.invalidate()  # type: ignore[union-attr]
        store.update(attrs.evolve(full_audit("held-1"), pages_scanned=7))
        got = store.get("held-1")
        assert got is not None and got.pages_scanned == 7
        held += [store._held_writer.conn, store._held_reader.conn]  # type: ignore[union-attr]
        assert all(conn is not None and conn.is_valid for conn in held)
    finally:
        store.close()
    assert [conn.dbapi_connection for conn in held] == [None, None]  # given back to the pool


def test_child_rows_go_to_executemany_as_they_are_and_read_back_equal(store: SqlAuditStore) -> None:
    """The child-row inserts take the row tuples as built (no per-row reordering) wherever
    the driver's paramstyle is positional and no column needs a bind processor; the audit
    row (datetimes, JSON) always goes through the processors. Either way the records read
    back equal on every dialect."""
    (findings, *_), (screenshots, *_) = store._children_of
    positional = store.engine.dialect.positional
    assert findings._as_is is screenshots._as_is
    if store.engine.dialect.name == "sqlite":
        assert findings._as_is  # the embedded default takes the fast path
    assert findings._as_is <= positional
    assert not store._insert_audit._as_is
    audit = full_audit("as-is-1")
    store.create(audit)
    assert store.get(audit.id) == audit
    store.update(attrs.evolve(audit, findings=audit.findings[:3], screenshots=()))
    assert store.get(audit.id) == attrs.evolve(audit, findings=audit.findings[:3], screenshots=())


def test_optional_json_fields_are_stored_as_json_null_and_read_back(store: SqlAuditStore) -> None:
    """None in a JSON field is JSON ``null`` in the database (as SQLAlchemy writes it), and
    reads back as None; values read back as written (SQLite takes a shortcut for ``null``)."""
    values = {"recommendations": None, "domain_info": [1, "two", None], "overrides": {"a": None}}
    audit = attrs.evolve(full_audit("json-null-1"), errors=None, **values)
    store.create(audit)
    assert store.get(audit.id) == audit
    (table,) = [t for name, t in store.metadata.tables.items() if name.endswith("audits")]
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(
                sa.cast(table.c.recommendations, sa.Text), sa.cast(table.c.errors, sa.Text)
            ).where(table.c.id == audit.id)
        ).one()
    assert [json.loads(v) if v is not None else "SQL NULL" for v in stored] == [None, None]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_sqlite_json_serializer_writes_what_json_dumps_writes(value: Any) -> None:
    from veritas_store_plugins.sql_statements import json_dumps

    assert json_dumps(value) == json.dumps(value)
    assert json_dumps(vs.records.values.freeze_json(value)) == json.dumps(value)


@settings(max_examples=200, deadline=None)
@given(_JSON, st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])))
def test_the_sqlite_shortcut_processors_convert_as_sqlalchemy_s_own(
    value: Any, when: datetime
) -> None:
    """The JSON and datetime processors the prepared statements use on SQLite give what
    SQLAlchemy's processors give, both ways (they only skip SQLAlchemy's layers of calls)."""
    from veritas_store_plugins.sql_statements import _bind_processor, _result_processor, json_dumps
    from veritas_store_plugins.sql_tables import _UtcDateTime

    dialect = sa.create_engine("sqlite://", json_serializer=json_dumps).dialect
    kind = sa.JSON().dialect_impl(dialect)  # as Prepared holds the selected columns' types
    theirs_bind = kind.bind_processor(dialect)
    theirs_result = kind.result_processor(dialect, None)
    ours_bind = _bind_processor(kind, dialect)
    ours_result = _result_processor(kind, dialect, None)
    for v in (value, vs.records.values.freeze_json(value)):
        assert ours_bind(v) == theirs_bind(v)
        assert ours_result(theirs_bind(v)) == theirs_result(theirs_bind(v))
    assert ours_result(None) is None and ours_result(7) == theirs_result(7)

    stamp = _UtcDateTime()
    general = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert stamp.bind_processor(dialect)(when) == general(when.astimezone(UTC).replace(tzinfo=None))
    assert stamp.bind_processor(dialect)(None) is None


# --- the options, stated once (plugins/sql_options.py) ----------------------------------------


def test_the_store_takes_exactly_the_options_sqloptions_states(tmp_path: Any) -> None:
    """SqlAuditStore's constructor is SqlOptions' (names, defaults, annotations), and
    check_options applies SqlOptions' checks without creating anything."""
    import inspect
    import typing

    from veritas_store_plugins.sql_options import SqlOptions

    assert inspect.signature(SqlAuditStore) == inspect.signature(SqlOptions)
    assert list(inspect.signature(SqlAuditStore).parameters)[:2] == ["url", "table_prefix"]
    hints = typing.get_type_hints(SqlAuditStore.__init__)
    assert hints["busy_timeout"] is float and hints["pool_size"] == int | None
    target = tmp_path / "never" / "made.db"
    for bad, message in [
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"pool_size": "5"}, "pool_size"),
        ({"table_prefix": "9bad"}, "table_prefix"),
        ({"echo": "yes"}, "echo"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            SqlAuditStore.check_options(url=f"sqlite:///{target}", **bad)
        with pytest.raises((TypeError, ValueError), match=message):
            SqlAuditStore(f"sqlite:///{target}", **bad)
    assert not target.parent.exists()
    SqlAuditStore.check_options(url=f"sqlite:///{target}", busy_timeout=5)
    assert not target.parent.exists()
