"""Schema migrations of the ``sql`` backend on SQLite, PostgreSQL and MariaDB (no mocks).

The snapshot test is the guard against drift: it runs every shipped migration on an empty
database and asks Alembic to compare the result with the models the backend uses (types,
collations, indexes, keys); any difference fails it. When you change the models, add a
migration (plugins/sql_migrations/versions/) until it passes again.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from conftest import drop_prefixed_tables, unique_prefix
from test_cli import ok, ok_json, run, write

import veritas_store as vs
from veritas_store.testing import sample_audit
from veritas_store_plugins import sql_schema
from veritas_store_plugins.sql import SqlAuditStore
from veritas_store_plugins.sql_tables import build_tables


class Db(NamedTuple):
    url: str
    prefix: str


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """An empty schema: a fresh SQLite file, or a prefix nobody uses on the shared servers."""
    prefix = unique_prefix()
    if request.param == "sqlite":
        yield Db(f"sqlite:///{tmp_path}/audits.db", prefix)
        return
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    yield Db(url, prefix)
    drop_prefixed_tables(url, prefix)


def _differences(url: str, prefix: str, metadata: sa.MetaData) -> list[Any]:
    """What Alembic would have to change to turn the database's tables into ``metadata``."""

    def ours(name: str | None, type_: str, _parent: Any) -> bool:  # other tests share the db
        return type_ != "table" or bool(name and name.startswith(prefix))

    def compare_type(_ctx: Any, _insp_col: Any, _meta_col: Any, inspected: Any, model: Any) -> Any:
        # Alembic compares type and length; the order of ids depends on the collation and
        # MariaDB keeps microseconds only with fsp=6, so compare those too.
        dialect = engine.dialect
        model = model.dialect_impl(dialect)
        if isinstance(model, sa.TypeDecorator):
            model = model.load_dialect_impl(dialect)
        for attr in ("collation", "fsp"):  # where the model's type has them (not JSON)
            if hasattr(model, attr) and getattr(model, attr) != getattr(inspected, attr, None):
                return True
        return None  # and Alembic's own comparison for the rest

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": f"{prefix}alembic_version",
                    "include_name": ours,
                    "compare_type": compare_type,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_from_empty_build_exactly_the_models(db: Db) -> None:
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        assert admin.schema_current()["state"] == "empty"
        result = admin.schema_upgrade()
        assert result == {"before": "empty", "from": None, "to": sql_schema.head(), "changed": True}
        assert _differences(db.url, db.prefix, admin.metadata) == []
        assert admin.schema_current()["state"] == "current"
        assert admin.schema_upgrade()["changed"] is False  # a second run does nothing
    finally:
        admin.close()
    store = SqlAuditStore(db.url, table_prefix=db.prefix)
    try:
        store.create(sample_audit())
        assert store.get("audit-1") == sample_audit()
    finally:
        store.close()


def test_the_snapshot_check_sees_drift(db: Db) -> None:
    # The comparison above must be able to fail: models that differ from the migrated tables.
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        admin.schema_upgrade()
    finally:
        admin.close()
    dialect = sa.make_url(db.url).get_backend_name()
    drifted, audits, _findings, _shots = build_tables(db.prefix, dialect)
    sa.Index(f"ix_{db.prefix}audits_drift", audits.c.pages_scanned)
    audits.append_column(sa.Column("drift", sa.Integer()))
    kinds = {d[0] for d in _differences(db.url, db.prefix, drifted)}
    assert kinds == {"add_index", "add_column"}
    if not db.url.startswith("sqlite"):  # SQLite has no column collations to drift
        plain, *_ = build_tables(db.prefix, dialect)
        plain.tables[f"{db.prefix}audits"].c.id.type = sa.String(128)
        assert [d[0][0] for d in _differences(db.url, db.prefix, plain)] == ["modify_type"]


def test_opening_an_empty_database_creates_the_latest_schema(db: Db) -> None:
    store = SqlAuditStore(db.url, table_prefix=db.prefix)
    try:
        current = store.schema_current()
        assert current["state"] == "current" and current["revision"] == sql_schema.head()
        assert current["version_table"] == f"{db.prefix}alembic_version"
        assert _differences(db.url, db.prefix, store.metadata) == []
        assert [h["applied"] for h in store.schema_history()] == [True] * len(
            store.schema_history()
        )
    finally:
        store.close()


def _at_revision(db: Db, revision: str) -> None:
    """The schema exactly as ``revision`` left it (what that version of veritas-store made)."""
    script = sql_schema._script()
    engine = sa.create_engine(db.url)
    try:
        with engine.begin() as conn:
            env = EnvironmentContext(
                Config(), script, fn=lambda rev, _ctx: script._upgrade_revs(revision, rev),
                destination_rev=revision,
            )  # fmt: skip
            with env:
                env.configure(
                    connection=conn,
                    version_table=f"{db.prefix}alembic_version",
                    table_prefix=db.prefix,
                )
                env.run_migrations()
    finally:
        engine.dispose()


def _legacy_database(db: Db) -> None:
    """Tables as veritas-store made them before it had migrations: revision 0001's schema
    without a version table."""
    _at_revision(db, "0001")
    engine = sa.create_engine(db.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {db.prefix}alembic_version"))
    finally:
        engine.dispose()


# The columns of revision 0001, as veritas-store 1.0 (today's main before 0002) wrote them.
_COLUMNS_0001 = {
    "audits": (
        "id", "url", "tier", "verdict_mode", "status", "created_at", "started_at",
        "completed_at", "updated_at", "trust_score", "risk_level", "narrative", "signal_scores",
        "site_type", "site_type_confidence", "security_results", "pages_scanned",
        "elapsed_seconds", "error_message",
    ),
    "findings": (
        "audit_id", "position", "category", "pattern_type", "severity", "confidence",
        "description", "screenshot_index", "evidence",
    ),
    "screenshots": (
        "audit_id", "position", "idx", "label", "blob_key", "size_bytes", "content_type", "sha256",
    ),
}  # fmt: skip
_JSON_0001 = ("signal_scores", "security_results")


def _write_as_0001(db: Db, audit: vs.Audit) -> None:
    """Write ``audit`` the way the 0001 code path did: exactly its columns, naive UTC times."""

    def table(name: str) -> Any:
        columns = [
            sa.column(c, sa.JSON() if c in _JSON_0001 else None) for c in _COLUMNS_0001[name]
        ]
        return sa.table(f"{db.prefix}{name}", *columns)

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None)
        return value.value if isinstance(value, vs.AuditStatus) else value

    row = {c: plain(getattr(audit, c)) for c in _COLUMNS_0001["audits"]}
    findings = [
        {
            "audit_id": audit.id,
            "position": i,
            **{c: getattr(f, c) for c in _COLUMNS_0001["findings"][2:]},
        }
        for i, f in enumerate(audit.findings)
    ]
    shots = [
        {"audit_id": audit.id, "position": i, "idx": s.index,
         **{c: getattr(s, c) for c in _COLUMNS_0001["screenshots"][3:]}}
        for i, s in enumerate(audit.screenshots)
    ]  # fmt: skip
    engine = sa.create_engine(db.url)
    try:
        with engine.begin() as conn:
            conn.execute(table("audits").insert(), [row])
            if findings:
                conn.execute(table("findings").insert(), findings)
            if shots:
                conn.execute(table("screenshots").insert(), shots)
    finally:
        engine.dispose()


def test_a_database_at_0001_upgrades_in_place_and_loses_nothing(db: Db) -> None:
    _at_revision(db, "0001")
    written = [
        sample_audit(),
        sample_audit("audit-2", findings=(), screenshots=(), narrative=None, trust_score=None),
        sample_audit("audit-3", status=vs.AuditStatus.ERROR, error_message="boom"),
    ]
    for audit in written:
        _write_as_0001(db, audit)
    with pytest.raises(vs.SchemaError, match="revision 0001, this veritas-store needs 0002"):
        SqlAuditStore(db.url, table_prefix=db.prefix)
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        assert admin.schema_upgrade()["from"] == "0001"
    finally:
        admin.close()
    assert (
        _differences(
            db.url, db.prefix, build_tables(db.prefix, sa.make_url(db.url).get_backend_name())[0]
        )
        == []
    )
    store = SqlAuditStore(db.url, table_prefix=db.prefix)
    try:
        for audit in written:
            assert store.get(audit.id) == audit  # new fields: None, extra {}
        # same created_at: newest first falls back to the id, descending
        assert [a.id for a in store.list().items] == ["audit-3", "audit-2", "audit-1"]
        full = attrs.evolve(
            written[0], recommendations=["a"], domain_info={"age_days": 3}, extra={"k": [1]},
            findings=(vs.Finding("c", "p", "low", 0.1, "d", id="f-1", plain_english="plain"),),
        )  # fmt: skip
        store.update(full)
        assert store.get(full.id) == full
    finally:
        store.close()


def test_a_database_made_before_migrations_is_refused_then_adopted(db: Db) -> None:
    _legacy_database(db)
    _write_as_0001(db, sample_audit())  # data written by the old version
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    with pytest.raises(vs.SchemaError, match=r"veritas-store db upgrade") as info:
        SqlAuditStore(db.url, table_prefix=db.prefix)
    assert "before veritas-store had schema migrations" in str(info.value)
    try:
        assert admin.schema_current()["state"] == "unversioned"
        assert not any(h["applied"] for h in admin.schema_history())
        assert admin.schema_upgrade() == {
            "before": "unversioned",
            "from": None,
            "to": sql_schema.head(),
            "changed": True,
        }
    finally:
        admin.close()
    store = SqlAuditStore(db.url, table_prefix=db.prefix)
    try:
        assert store.get("audit-1") == sample_audit()
        assert store.schema_current()["state"] == "current"
    finally:
        store.close()


def test_auto_upgrade_adopts_on_open(db: Db) -> None:
    _legacy_database(db)
    store = SqlAuditStore(db.url, table_prefix=db.prefix, auto_upgrade=True)
    try:
        assert store.schema_current()["state"] == "current"
    finally:
        store.close()


def test_a_partial_schema_is_not_adopted(db: Db) -> None:
    engine = sa.create_engine(db.url)
    try:
        metadata = build_tables(db.prefix, sa.make_url(db.url).get_backend_name())[0]
        metadata.tables[f"{db.prefix}audits"].create(engine)
    finally:
        engine.dispose()
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        with pytest.raises(vs.SchemaError, match=rf"missing {db.prefix}findings"):
            admin.schema_upgrade()
        assert admin.schema_current()["state"] == "unversioned"  # nothing was recorded
    finally:
        admin.close()


def test_a_database_from_a_newer_version_is_refused(db: Db) -> None:
    SqlAuditStore(db.url, table_prefix=db.prefix).close()
    engine = sa.create_engine(db.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {db.prefix}alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(vs.SchemaError, match="revision 9999, which this veritas-store"):
        SqlAuditStore(db.url, table_prefix=db.prefix, auto_upgrade=True)
    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        assert admin.schema_current()["state"] == "ahead"
        with pytest.raises(vs.SchemaError, match="newer veritas-store"):
            admin.schema_upgrade()
    finally:
        admin.close()


# --- a second revision ----------------------------------------------------------------------

_SECOND = '''"""Test only: an index on pages_scanned."""
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    p = op.get_context().opts["table_prefix"]
    op.create_index(f"ix_{p}audits_pages", f"{p}audits", ["pages_scanned"])


def downgrade():
    p = op.get_context().opts["table_prefix"]
    op.drop_index(f"ix_{p}audits_pages", f"{p}audits")
'''


@pytest.fixture
def second_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The shipped migrations plus a revision 0003 (made after the database was): a newer
    veritas-store meeting a database of the current one."""
    folder = tmp_path / "migrations"
    shutil.copytree(sql_schema.MIGRATIONS, folder)
    (folder / "versions" / "0003_test_index.py").write_text(_SECOND, encoding="utf-8")

    def switch() -> None:
        monkeypatch.setattr(sql_schema, "MIGRATIONS", folder)
        sql_schema._script.cache_clear()

    yield switch  # type: ignore[misc]
    monkeypatch.undo()
    sql_schema._script.cache_clear()


def _indexes(db: Db) -> list[str]:
    engine = sa.create_engine(db.url)
    try:
        return sorted(i["name"] for i in sa.inspect(engine).get_indexes(f"{db.prefix}audits"))
    finally:
        engine.dispose()


def test_upgrade_from_an_older_revision(db: Db, second_revision: Any) -> None:
    store = SqlAuditStore(db.url, table_prefix=db.prefix)  # at 0002
    store.create(sample_audit())
    store.close()
    second_revision()
    with pytest.raises(vs.SchemaError) as info:
        SqlAuditStore(db.url, table_prefix=db.prefix)
    assert "at schema revision 0002, this veritas-store needs 0003" in str(info.value)
    assert "run `veritas-store db upgrade` (or set auto_upgrade = true" in str(info.value)

    admin = SqlAuditStore.open_for_migrations(url=db.url, table_prefix=db.prefix)
    try:
        assert admin.schema_current()["state"] == "outdated"
        assert [(h["revision"], h["applied"]) for h in admin.schema_history()] == [
            ("0001", True),
            ("0002", True),
            ("0003", False),
        ]
        assert admin.schema_upgrade() == {
            "before": "outdated",
            "from": "0002",
            "to": "0003",
            "changed": True,
        }
    finally:
        admin.close()
    assert f"ix_{db.prefix}audits_pages" in _indexes(db)
    store = SqlAuditStore(db.url, table_prefix=db.prefix)
    try:
        assert store.get("audit-1") == sample_audit()
    finally:
        store.close()


def test_instances_starting_at_once_upgrade_once(db: Db, second_revision: Any) -> None:
    # Rolling out a new version: several processes open the old database with auto_upgrade at
    # the same moment. The schema lock lets one migrate; the others wait and find it current.
    SqlAuditStore(db.url, table_prefix=db.prefix).close()
    second_revision()
    barrier = threading.Barrier(6)
    stores: list[SqlAuditStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            stores.append(SqlAuditStore(db.url, table_prefix=db.prefix, auto_upgrade=True))
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert {s.schema_current()["revision"] for s in stores} == {"0003"}
        assert _indexes(db).count(f"ix_{db.prefix}audits_pages") == 1
    finally:
        for s in stores:
            s.close()


def test_auto_upgrade_must_be_a_boolean() -> None:
    with pytest.raises(TypeError, match="auto_upgrade"):
        SqlAuditStore("sqlite://", auto_upgrade="yes")  # type: ignore[arg-type]


# --- the CLI --------------------------------------------------------------------------------


def _config(tmp_path: Path, *backends: str) -> Path:
    return write(tmp_path / "veritas.toml", "\n".join(backends) + _BLOBS)


_BLOBS = """
[audits.backends.memory]
type = "memory"

[blobs.backends.local]
type = "fsspec"
url = "blobs"
"""


def _sql(name: str, url: str, prefix: str = "veritas_", enabled: bool = True) -> str:
    return (
        f'[audits.backends.{name}]\ntype = "sql"\nurl = "{url}"\n'
        f'table_prefix = "{prefix}"\nenabled = {str(enabled).lower()}\n'
    )


def test_db_commands_act_on_every_enabled_sql_backend(tmp_path: Path, pg_url: str) -> None:
    prefix = unique_prefix()
    _legacy_database(Db(f"sqlite:///{tmp_path}/old.db", "veritas_"))
    config = _config(
        tmp_path,
        _sql("old", "sqlite:///old.db"),
        _sql("pg", pg_url, prefix),
        _sql("off", "sqlite:///never.db", enabled=False),
    )
    try:
        current = ok_json(tmp_path, "db", "current", "--config", str(config))
        states = {r["backend"]: r["result"]["state"] for r in current["backends"]}
        assert states == {"old": "unversioned", "pg": "empty"}
        assert {(s["backend"], s["type"]) for s in current["skipped"]} == {
            ("memory", "memory"),
            ("local", "fsspec"),
        }
        refused = run(tmp_path, "list", "--config", str(config))
        assert refused.returncode == 1
        assert "SchemaError" in refused.stderr and "veritas-store db upgrade" in refused.stderr
        checked = run(tmp_path, "check", "--config", str(config), "--json")
        assert checked.returncode == 1
        (old,) = [r for r in json.loads(checked.stdout)["backends"] if r["backend"] == "old"]
        assert old["status"] == "error" and "veritas-store db upgrade" in old["detail"]

        out = ok(tmp_path, "db", "upgrade", "--config", str(config))
        assert "audits.old: adopted" in out
        # check opened pg like the service would: an empty database gets the latest schema
        assert f"audits.pg: already at {sql_schema.head()}" in out
        assert "skipped audits.memory (type memory): no schema" in out
        again = ok_json(tmp_path, "db", "upgrade", "--config", str(config))
        assert [r["result"]["changed"] for r in again["backends"]] == [False, False]
        history = ok_json(tmp_path, "db", "history", "--config", str(config), "--backend", "pg")
        ((only,),) = [[r["backend"] for r in history["backends"]]]
        assert only == "pg"
        assert [h["applied"] for h in history["backends"][0]["result"]] == [True, True]
        assert ok(tmp_path, "list", "--config", str(config))
        report = ok_json(tmp_path, "check", "--config", str(config))
        schemas = {r["backend"]: r.get("schema", {}).get("revision") for r in report["backends"]}
        assert schemas == {"old": "0002", "pg": "0002", "off": None, "memory": None, "local": None}
        assert not (tmp_path / "never.db").exists()  # disabled: never opened
    finally:
        drop_prefixed_tables(pg_url, prefix)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("memory", "backend 'memory' (type 'memory') has no versioned schema"),
        ("off", "backend 'off' is disabled"),
        ("nope", "--backend 'nope' is not a backend of this config"),
    ],
)
def test_db_backend_option_errors(tmp_path: Path, backend: str, message: str) -> None:
    config = _config(tmp_path, _sql("off", "sqlite:///off.db", enabled=False))
    result = run(tmp_path, "db", "upgrade", "--config", str(config), "--backend", backend)
    assert result.returncode == 2
    assert message in result.stderr


def test_db_upgrade_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test"  # nothing listens on port 1
    config = _config(tmp_path, _sql("down", url), _sql("up", "sqlite:///up.db"))
    result = run(tmp_path, "db", "upgrade", "--config", str(config))
    assert result.returncode == 1
    assert "audits.up: created at" in result.stdout  # the other backend still got upgraded
    assert "audits.down:" in result.stderr and "hunter2" not in result.stdout + result.stderr


def test_the_embedded_default_upgrades_its_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A developer's ./veritas-data/audits.db from before migrations keeps working.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAS_STORE_CONFIG", raising=False)
    monkeypatch.delenv("USE_DB_PERSISTENCE", raising=False)
    (tmp_path / "veritas-data").mkdir()
    _legacy_database(Db(f"sqlite:///{tmp_path}/veritas-data/audits.db", "veritas_"))
    with vs.open_stores() as stores:
        assert stores.audits.backends["sql"].schema_current()["state"] == "current"


def test_the_cheap_head_is_alembics_head(second_revision: Any) -> None:
    """Opening a store reads the head from the migration files without Alembic: it must be
    the revision Alembic itself calls the head, for the shipped scripts and with one more."""
    shipped = sql_schema.head()
    assert [shipped] == sql_schema._script().get_heads()
    second_revision()
    assert [sql_schema.head()] == sql_schema._script().get_heads()
    assert sql_schema.head() != shipped  # the added revision is the new head
