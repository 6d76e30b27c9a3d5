"""The ``sql`` audit backend: audits in SQLite, PostgreSQL or MariaDB through SQLAlchemy Core.

The store is here; the rest of the backend is beside it: ``sql_options`` (its options, stated
once), ``sql_tables`` (tables, column types, rows <-> records), ``sql_statements`` and
``sql_transactions`` (statements compiled once, run on a DB-API connection), ``sql_inline``
(SQLite calls on the async API's event loop), ``sql_listing`` (``list()``), ``sql_schema``
(Alembic schema versions; migrations in ``sql_migrations/``).
Opening a store creates an empty database at the latest revision and refuses an outdated one
unless ``auto_upgrade`` is set; ``veritas-store db`` uses ``open_for_migrations`` and the
``schema_*`` methods.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import veritas_store as vs

from .sql_inline import InlineLane, not_inline
from .sql_listing import child_columns, listing_query, load_audits
from .sql_options import SqlOptions
from .sql_schema import Schema
from .sql_statements import Prepared
from .sql_tables import (
    AUDIT_FIELDS,
    FINDING_FIELDS,
    SCREENSHOT_COLUMNS,
    build_tables,
    finding_values,
    record,
    row_of,
    screenshot_values,
)
from .sql_transactions import (
    DirectTransaction,
    HeldConnection,
    Runner,
    SqlAlchemyRunner,
    tune_sqlite_engine,
)

log = logging.getLogger(__name__)

_MIGRATING: ContextVar[bool] = ContextVar("veritas_sql_migrating", default=False)

# --- the store ------------------------------------------------------------------------------


class SqlAuditStore(SqlOptions):
    """Audits in any SQLAlchemy database. Thread-safe; each method is one transaction.
    Its constructor's arguments are the options, ``SqlOptions``' fields."""

    # in-memory SQLite; a database that outlives the process adds DURABLE (see below)
    capabilities: frozenset[str] = frozenset(
        {vs.Capability.LIST, vs.Capability.FILTERS, vs.Capability.EVENTS}
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # checks the options
        parsed, table_prefix = self._parsed_url, self._table_prefix
        sqlite, memory = self._sqlite, self._in_memory
        try:
            self._engine = sa.create_engine(parsed, **self._engine_options)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise ValueError(f"cannot use database URL {self._safe_url}: {exc}") from None
        if sqlite and parsed.database and not memory and not parsed.database.startswith("file:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # an in-memory SQLite database ends with the process: nothing a journal could repair
        if not memory:
            self.capabilities = self.capabilities | {vs.Capability.DURABLE}

        # A single StaticPool connection must not be used by two threads at once.
        self._lock: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()
        # SQLite has one writer at a time. Threads of this process queue for it on a lock here,
        # handed over at once; waiting in SQLite's busy handler instead sleeps 1, 2, 5, 10...
        # ms between tries, which with many threads (the async API has 16) costs more than the
        # writes. Other processes still wait in the busy handler (busy_timeout).
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if sqlite and not memory else self._lock
        )
        # Calls attempted on the event loop (vs.Capability.INLINE): see InlineLane
        self._lane = (
            InlineLane(parsed, self._engine, self._write_lock) if self._runs_inline else None
        )
        if self._lane is not None:
            self.capabilities = self.capabilities | {vs.Capability.INLINE}
        # file SQLite only: in-memory SQLite has one StaticPool connection anyway
        held = sqlite and not memory
        self._held_writer = HeldConnection(shared=False) if held else None
        self._held_reader = HeldConnection(shared=True) if held else None
        if sqlite:
            tune_sqlite_engine(self._engine, self._busy_timeout)
            self._reader = self._engine
        else:
            # get() and list() read a row, then its children: one snapshot for both
            self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        self._writer = self._engine.execution_options(veritas_write=True)

        self._metadata, self._audits, self._findings, self._screenshots = build_tables(
            table_prefix, self._engine.dialect.name
        )
        self._prepare(self._engine.dialect)
        self._schema = Schema(
            self._engine,
            self._writer,
            table_prefix,
            self._metadata,
            self._lock,
            f"the audit tables {table_prefix}* in {self._safe_url}",
        )
        self._open_schema(self._auto_upgrade)
        log.debug("opened %r", self)

    @classmethod
    def open_for_migrations(cls, **options: Any) -> SqlAuditStore:
        """Open like the constructor, but leave the schema as it is (``veritas-store db``).

        The schema methods work on the store it returns; the record methods need the schema
        at the latest revision.
        """
        token = _MIGRATING.set(True)
        try:
            return cls(**options)
        finally:
            _MIGRATING.reset(token)

    @staticmethod
    def check_options(**options: Any) -> None:
        """Raise ValueError or TypeError for bad options, creating and connecting nothing
        (``open_stores`` asks every backend this before it opens any)."""
        SqlOptions(**options)

    def _open_schema(self, auto_upgrade: bool) -> None:
        try:
            with self._lock, self._engine.connect():
                pass
            if not _MIGRATING.get():
                self._schema.ensure(auto_upgrade)
        except sa.exc.DBAPIError as exc:
            self._engine.dispose()
            raise vs.BackendUnavailable(
                f"cannot open the sql audit store at {self._safe_url}: {exc.orig}"
            ) from exc
        except BaseException:
            self._engine.dispose()
            raise

    def _prepare(self, dialect: sa.Dialect) -> None:
        """The statements of the single-audit operations, compiled once."""
        audits = self._audits
        key = ("audit_id",)
        by_id = audits.c.id == sa.bindparam("audit_id")
        changed: dict[str, sa.BindParameter[Any]] = {
            name: sa.bindparam(name) for name in AUDIT_FIELDS[1:]
        }
        self._insert_audit = Prepared(audits.insert(), dialect, AUDIT_FIELDS)
        self._update_audit = Prepared(
            audits.update().where(by_id).values(changed), dialect, (*AUDIT_FIELDS[1:], *key)
        )
        self._delete_audit = Prepared(audits.delete().where(by_id), dialect, key)
        self._select_audit = Prepared(sa.select(*self._audit_columns()).where(by_id), dialect, key)
        self._children_of: list[tuple[Prepared, Prepared, Prepared]] = []
        for table, fields in (
            (self._findings, FINDING_FIELDS),
            (self._screenshots, SCREENSHOT_COLUMNS),
        ):
            of_audit = table.c.audit_id == sa.bindparam("audit_id")
            insert = Prepared(table.insert(), dialect, ("audit_id", "position", *fields))
            delete = Prepared(table.delete().where(of_audit), dialect, key)
            select = Prepared(
                sa.select(*child_columns(table, fields)).where(of_audit).order_by(table.c.position),
                dialect,
                key,
            )
            self._children_of.append((insert, delete, select))

    def _audit_columns(self) -> list[sa.Column[Any]]:
        return [self._audits.c[name] for name in AUDIT_FIELDS]

    def __repr__(self) -> str:
        return f"SqlAuditStore(url={self._safe_url!r}, table_prefix={self._table_prefix!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations and operator tools)."""
        return self._engine

    @property
    def metadata(self) -> sa.MetaData:
        """The tables of this store's ``table_prefix``."""
        return self._metadata

    def _transaction(self, write: bool) -> AbstractContextManager[Runner]:
        """One transaction, as ``engine.begin()`` makes it, for the prepared statements.

        Writers on SQLite take the write lock up front (``BEGIN IMMEDIATE``); readers on a
        server read one snapshot (REPEATABLE READ). See the note above ``Prepared``.
        """
        engine = self._engine
        dispatch = engine.dispatch
        listened = engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute
        if not vs.may_wait():  # attempted on the event loop
            if self._lane is None or listened:
                raise vs.WouldBlock(f"{self!r} runs its calls on a worker")
            return self._lane.transaction(write)
        if listened:
            return self._through_sqlalchemy(write)
        lock = self._write_lock if write else self._lock
        if self._sqlite:
            begin = "BEGIN IMMEDIATE" if write else "BEGIN"
            held = self._held_writer if write else self._held_reader
            return DirectTransaction(engine, lock, begin, snapshot=False, held=held)
        return DirectTransaction(engine, lock, None, snapshot=not write)

    @contextmanager
    def _through_sqlalchemy(self, write: bool) -> Iterator[Runner]:
        lock = self._write_lock if write else self._lock
        with lock, (self._writer if write else self._reader).begin() as conn:
            yield SqlAlchemyRunner(conn)

    # --- schema versions (vs.SchemaManaged: what `veritas-store db` calls) -----------------

    def schema_current(self) -> dict[str, Any]:
        """The schema's state (empty, current, outdated, unversioned, ahead) and revisions."""
        return {"table_prefix": self._table_prefix, **self._schema.current()}

    def schema_history(self) -> list[dict[str, Any]]:
        """Every migration, oldest first, marked ``applied`` up to the database's revision."""
        return self._schema.history()

    def schema_upgrade(self) -> dict[str, Any]:
        """Run the migrations up to the latest revision (under a lock; a no-op when current)."""
        return self._schema.upgrade()

    # --- the AuditStore protocol ----------------------------------------------------------

    def create(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        values = row_of(audit)
        with self._transaction(write=True) as conn:
            try:
                self._insert_audit.execute(conn, values)
            except sa.exc.IntegrityError:
                raise vs.AuditExists(f"audit {audit.id!r} already exists") from None
            self._insert_children(conn, audit)

    def get(self, audit_id: str) -> vs.Audit | None:
        vs.validate_audit_id(audit_id)
        key = (audit_id,)
        with self._transaction(write=False) as conn:
            rows = self._select_audit.rows(conn, key)
            if not rows:
                return None
            findings, screenshots = (select.rows(conn, key) for _, _, select in self._children_of)
        return record(rows[0], findings, screenshots)

    def update(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        values = row_of(audit)
        values.append(values.pop(0))  # the id goes last, into the WHERE clause
        key = (audit.id,)
        with self._transaction(write=True) as conn:
            # the row lock taken here also serialises concurrent updates of the children
            if self._update_audit.execute(conn, values) == 0:
                raise vs.AuditNotFound(f"audit {audit.id!r} not found")
            for _, delete, _ in self._children_of:
                delete.execute(conn, key)
            self._insert_children(conn, audit)

    def delete(self, audit_id: str) -> bool:
        vs.validate_audit_id(audit_id)
        with self._transaction(write=True) as conn:  # children go by ON DELETE CASCADE
            return self._delete_audit.execute(conn, (audit_id,)) > 0

    def list(
        self,
        status: vs.AuditStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        risk_level: str | None = None,
        url: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order: str = "newest",
    ) -> vs.AuditPage:
        not_inline("list()")
        query_filter = vs.ListFilter(status, risk_level, url, created_after, created_before, order)
        vs.validate_limit(limit)
        query = listing_query(
            self._audits, self._audit_columns(), query_filter, cursor, self._engine.dialect.name
        )
        with self._lock, self._reader.begin() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()  # +1: is there more?
            items = load_audits(conn, rows[:limit], self._findings, self._screenshots)
        more = len(rows) > limit
        return vs.AuditPage(tuple(items), vs.encode_cursor(items[-1]) if more else None)

    def append_events(
        self, audit_id: str, events: Iterable[vs.AuditEvent]
    ) -> tuple[vs.AuditEvent, ...]:
        vs.validate_audit_id(audit_id)
        not_inline("append_events()")
        events = list(events)
        table, audits = self._metadata.tables[f"{self._table_prefix}events"], self._audits
        with self._write_lock, self._writer.begin() as conn:
            # the audit's row lock serialises appenders (SQLite: the write transaction does)
            found = conn.execute(
                sa.select(audits.c.id).where(audits.c.id == audit_id).with_for_update()
            ).first()
            if found is None:
                raise vs.AuditNotFound(f"audit {audit_id!r} not found")
            last = conn.execute(
                sa.select(sa.func.max(table.c.seq)).where(table.c.audit_id == audit_id)
            ).scalar()
            fresh, numbered = vs.number_events(last or 0, events)
            if numbered:  # a follower's copy: skip what it holds already
                held = set(
                    conn.execute(
                        sa.select(table.c.seq).where(
                            table.c.audit_id == audit_id,
                            table.c.seq.in_([e.seq for e in numbered]),
                        )
                    ).scalars()
                )
                numbered = [e for e in numbered if e.seq not in held]
            rows = [
                {"audit_id": audit_id, "seq": e.seq, "type": e.type, "data": e.data,
                 "created_at": e.created_at}
                for e in fresh or numbered
            ]  # fmt: skip
            if rows:
                conn.execute(table.insert(), rows)
        return tuple(fresh or numbered)

    def events(
        self, audit_id: str, after: int | None = None, limit: int = 1000
    ) -> tuple[vs.AuditEvent, ...]:
        vs.validate_audit_id(audit_id)
        vs.validate_after(after, limit)
        not_inline("events()")
        table, audits = self._metadata.tables[f"{self._table_prefix}events"], self._audits
        query = (
            sa.select(table.c.type, table.c.data, table.c.seq, table.c.created_at)
            .where(table.c.audit_id == audit_id, table.c.seq > (after or 0))
            .order_by(table.c.seq)
            .limit(limit)
        )
        with self._lock, self._reader.begin() as conn:
            rows = conn.execute(query).all()
            if (
                not rows
                and conn.execute(sa.select(audits.c.id).where(audits.c.id == audit_id)).first()
                is None
            ):
                raise vs.AuditNotFound(f"audit {audit_id!r} not found")
        return tuple(vs.AuditEvent(*row) for row in rows)

    def close(self) -> None:
        if self._lane is not None:  # first: its checkpointer takes the write lock
            self._lane.close()
        if self._held_writer is not None and self._held_reader is not None:
            with self._write_lock:  # not while a write is using it
                self._held_writer.release()
                self._held_reader.release()
        self._engine.dispose()

    # --- rows <-> records -----------------------------------------------------------------

    def _insert_children(self, conn: Runner, audit: vs.Audit) -> None:
        (findings, *_), (screenshots, *_) = self._children_of
        if audit.findings:  # one executemany each; an empty one would mean one empty INSERT
            findings.execute_many(
                conn, [(audit.id, i, *finding_values(f)) for i, f in enumerate(audit.findings)]
            )
        if audit.screenshots:
            screenshots.execute_many(
                conn,
                [(audit.id, i, *screenshot_values(s)) for i, s in enumerate(audit.screenshots)],
            )


@vs.hookimpl
def register_audit_backends(register):  # type: ignore[no-untyped-def]
    register(
        "sql",
        SqlAuditStore,
        description="audits in SQLite, PostgreSQL or MariaDB/MySQL through SQLAlchemy",
    )
