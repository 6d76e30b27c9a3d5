"""The ``sql`` audit backend: audits in SQLite, PostgreSQL or MariaDB through SQLAlchemy Core.

Three normalised tables per ``table_prefix``: ``audits``, ``findings`` and ``screenshots``
(the latter two cascade-deleted with their audit). Column types are chosen so that every record
reads back ``==`` to what was written: doubles not floats, datetimes with microseconds, JSON
for the dict fields, long text where MySQL's TEXT would truncate, and ids compared by code point
on every database so that keyset pagination agrees with the other backends.

The schema is versioned with Alembic (``sql_schema.py``, migrations in ``sql_migrations/``):
opening a store creates an empty database at the latest revision and refuses an outdated one
unless ``auto_upgrade`` is set; ``veritas-store db`` uses ``open_for_migrations`` and the
``schema_*`` methods.
"""

from __future__ import annotations

import builtins
import json
import logging
import operator
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from datetime import UTC, datetime
from json import encoder as json_encoder
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, make_url, processors
from sqlalchemy.pool import StaticPool

import veritas_store as vs

from .sql_schema import Schema

log = logging.getLogger(__name__)

_MYSQL = ("mysql", "mariadb")
_PREFIX = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,31})?")
_IN_BATCH = 500  # ids per IN (...) when loading children: stays far below every bind limit
_CHILDREN = ("findings", "screenshots")  # Audit fields stored in tables of their own
# Pool defaults for server databases. Recycling hourly stays well below MariaDB/MySQL's
# wait_timeout (8 h) and idle cut-offs of proxies; pre-ping catches the rest.
_SERVER_POOL = {"pool_size": 5, "max_overflow": 10, "pool_recycle": 3600}
_TO_FLOAT = processors.to_float  # SQLAlchemy's bind processor of Float/Double on SQLite
_TYPE_CODE = operator.itemgetter(1)  # of a DB-API cursor.description entry
_MIGRATING: ContextVar[bool] = ContextVar("veritas_sql_migrating", default=False)

# --- column types ---------------------------------------------------------------------------

# Ids are case-sensitive and sort by code point everywhere, as in the memory backend. The
# generic VARCHAR carries PostgreSQL's collation: importing the PostgreSQL dialect for it would
# cost a third of every start-up. (The MySQL dialect is loaded anyway, by the tables' options.)
_Id = (
    sa.String(128)
    .with_variant(mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
    .with_variant(sa.VARCHAR(128, collation="C"), "postgresql")
)
# MySQL's TEXT stops at 64 KiB; a narrative or a URL may be longer.
_LongText = sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)


class _UtcDateTime(sa.TypeDecorator[datetime]):
    """Naive UTC with microseconds in the database, aware UTC datetimes in Python."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL:  # plain DATETIME drops the microseconds
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    # SQLite stores text: one step each way instead of SQLAlchemy's two (the UTC conversion,
    # then its %-format or regex), in SQLAlchemy's format "YYYY-MM-DD HH:MM:SS.ffffff".
    def bind_processor(self, dialect: sa.Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> datetime | None:
            if type(value) is str and len(value) == 26:  # what bind_processor writes
                return datetime.fromisoformat(value).replace(tzinfo=UTC)
            return general(value)  # anything else: SQLAlchemy's parsing, as before

        return process


# Filtered listings (revision 0002) seek in an index on a prefix of the filtered text column,
# so a long URL stays indexable (PostgreSQL refuses btree entries over ~2.7 KB). MariaDB has no
# expression indexes but native prefix indexes; list() compares the prefix, then the value.
FILTER_PREFIX = {"risk_level": 64, "url": 255}


def _filter_indexes(audits: sa.Table, dialect: str | None) -> None:
    prefix = audits.name[: -len("audits")]
    for name, length in FILTER_PREFIX.items():
        column = audits.c[name]
        if dialect in _MYSQL:
            sa.Index(
                f"ix_{prefix}audits_{name}_created_my", column, audits.c.created_at, audits.c.id,
                mysql_length={name: length},
            )  # fmt: skip
        else:
            sa.Index(
                f"ix_{prefix}audits_{name}_created",
                sa.func.substr(column, 1, length), audits.c.created_at, audits.c.id,
            )  # fmt: skip


def _build_tables(
    prefix: str, dialect: str | None = None
) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """The tables of one prefix; the filter indexes depend on the ``dialect``'s name."""
    md = sa.MetaData()
    opts: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
    }  # InnoDB: foreign keys
    audits = sa.Table(
        f"{prefix}audits",
        md,
        sa.Column("id", _Id, primary_key=True),
        sa.Column("url", _LongText, nullable=False),
        sa.Column("tier", _LongText, nullable=False),
        sa.Column("verdict_mode", _LongText, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _UtcDateTime(), nullable=False),
        sa.Column("started_at", _UtcDateTime()),
        sa.Column("completed_at", _UtcDateTime()),
        sa.Column("updated_at", _UtcDateTime(), nullable=False),
        sa.Column("trust_score", sa.Double()),  # MySQL FLOAT is single precision
        sa.Column("risk_level", _LongText),
        sa.Column("narrative", _LongText),
        sa.Column("signal_scores", sa.JSON(), nullable=False),
        sa.Column("site_type", _LongText),
        sa.Column("site_type_confidence", sa.Double()),
        sa.Column("security_results", sa.JSON(), nullable=False),
        sa.Column("pages_scanned", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Double()),
        sa.Column("error_message", _LongText),
        # revision 0002: the rest of the service's result (JSON; NULL is None)
        sa.Column("recommendations", sa.JSON()),
        sa.Column("domain_info", sa.JSON()),
        sa.Column("overrides", sa.JSON()),
        sa.Column("errors", sa.JSON()),
        sa.Column("extra", sa.JSON()),  # nullable only because 0002 adds it to filled tables
        # newest-first listing, with and without a filter
        sa.Index(f"ix_{prefix}audits_created", "created_at", "id"),
        sa.Index(f"ix_{prefix}audits_status_created", "status", "created_at", "id"),
        **opts,
    )

    _filter_indexes(audits, dialect)  # an Index on a table's columns joins that table

    def child(name: str, *columns: sa.Column[Any]) -> sa.Table:
        fk = sa.ForeignKey(audits.c.id, ondelete="CASCADE")
        return sa.Table(
            f"{prefix}{name}",
            md,
            sa.Column("audit_id", _Id, fk, primary_key=True),
            sa.Column("position", sa.Integer(), primary_key=True),  # keeps the tuple's order
            *columns,
            **opts,
        )

    findings = child(
        "findings",
        sa.Column("category", _LongText, nullable=False),
        sa.Column("pattern_type", _LongText, nullable=False),
        sa.Column("severity", _LongText, nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("description", _LongText, nullable=False),
        sa.Column("screenshot_index", sa.Integer()),
        sa.Column("evidence", _LongText),
        sa.Column("id", _LongText),  # revision 0002
        sa.Column("plain_english", _LongText),  # revision 0002
    )
    screenshots = child(
        "screenshots",
        sa.Column("idx", sa.Integer(), nullable=False),  # Screenshot.index ("index" is reserved)
        sa.Column("label", _LongText, nullable=False),
        sa.Column("blob_key", _LongText, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", _LongText, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    # revision 0002: the event log, read in (audit_id, seq) order straight off its key
    sa.Table(
        f"{prefix}events",
        md,
        sa.Column(
            "audit_id", _Id, sa.ForeignKey(audits.c.id, ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("type", _LongText, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _UtcDateTime(), nullable=False),
        **opts,
    )
    return md, audits, findings, screenshots


# Columns in the order of the model's fields, so that a row builds a record positionally.
_AUDIT_FIELDS = tuple(a.name for a in attrs.fields(vs.Audit) if a.name not in _CHILDREN)
_FINDING_FIELDS = tuple(a.name for a in attrs.fields(vs.Finding))
# Screenshot's fields, with "index" (reserved in SQL) stored as "idx"
_SCREENSHOT_COLUMNS = tuple(
    "idx" if a.name == "index" else a.name for a in attrs.fields(vs.Screenshot)
)
_audit_values = operator.attrgetter(*_AUDIT_FIELDS)
_finding_values = operator.attrgetter(*_FINDING_FIELDS)
_screenshot_values = operator.attrgetter(*(a.name for a in attrs.fields(vs.Screenshot)))
_STATUS = _AUDIT_FIELDS.index("status")
_EXTRA = _AUDIT_FIELDS.index("extra")


# --- options --------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {type(value).__name__}")


def _parse_url(url: object) -> URL:
    if not isinstance(url, str) or not url.strip():
        raise TypeError("url must be a non-empty SQLAlchemy database URL string")
    try:
        return make_url(url)
    except sa.exc.ArgumentError:
        # SQLAlchemy's message repeats the URL, password included
        raise ValueError("url is not a valid SQLAlchemy database URL (not shown)") from None


def _engine_args(
    url: str,
    table_prefix: str = "veritas_",
    echo: bool = False,
    busy_timeout: float = 30.0,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_pre_ping: bool = True,
    pool_recycle: int | None = None,
    auto_upgrade: bool = False,
) -> tuple[URL, dict[str, Any]]:
    """Check every option; return the URL and the ``create_engine`` arguments. Nothing is
    created, connected or even imported (a database driver is imported by the engine)."""
    parsed = _parse_url(url)
    if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix):
        raise ValueError(
            f"table_prefix must be at most 32 letters, digits or '_', not starting with a "
            f"digit; got {table_prefix!r}"
        )
    _check_bool("echo", echo)
    _check_bool("pool_pre_ping", pool_pre_ping)
    _check_bool("auto_upgrade", auto_upgrade)
    if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
        raise TypeError(f"busy_timeout must be a number of seconds, got {busy_timeout!r}")
    if not 0 <= busy_timeout < 86_400:
        raise ValueError(f"busy_timeout must be from 0 to 86400 seconds, got {busy_timeout}")
    _check_int("pool_size", pool_size, 0)
    _check_int("max_overflow", max_overflow, -1)
    _check_int("pool_recycle", pool_recycle, -1)

    backend = parsed.get_backend_name()
    sqlite = backend == "sqlite"
    memory = sqlite and parsed.database in (None, "", ":memory:")
    _check_bool("auto_upgrade", auto_upgrade)
    # A SQLite connection is a file handle: it cannot go stale, so it needs no ping.
    options: dict[str, Any] = {"echo": echo, "pool_pre_ping": pool_pre_ping and not sqlite}
    if not sqlite:
        options.update(_SERVER_POOL)
    if pool_recycle is not None:
        options["pool_recycle"] = pool_recycle
    for name, value in (("pool_size", pool_size), ("max_overflow", max_overflow)):
        if value is not None:
            if memory:
                raise ValueError(f"{name} does not apply to an in-memory SQLite database")
            options[name] = value
    if sqlite:
        options["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
        options["json_serializer"] = _json_dumps  # the same text as json.dumps
        if memory:  # one shared connection, so every thread sees the same database
            options["poolclass"] = StaticPool
    elif backend in _MYSQL:
        # Writes: InnoDB's default REPEATABLE READ puts next-key (gap) locks on the child-row
        # DELETEs, a classic deadlock between concurrent writers. Reads still get a snapshot.
        options["isolation_level"] = "READ COMMITTED"
    try:
        parsed.get_dialect()  # an unknown database name
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ValueError(f"cannot use database URL {_safe(parsed)}: {exc}") from None
    return parsed, options


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- prepared statements and transactions ---------------------------------------------------

# SQLAlchemy's per-call machinery (a Connection, its events, an execution context per statement)
# costs several times what a small statement costs on SQLite. The single-audit operations
# therefore compile their statements once and run them on a pooled DB-API connection, keeping
# SQLAlchemy's SQL, paramstyle, type conversions, pool and exception types. When someone
# listens (``echo``, a ``before_cursor_execute`` listener such as a tracer) the same SQL and
# parameters go through a SQLAlchemy Connection instead, so they see every statement.


class _Prepared:
    """One statement compiled once for a dialect, with its columns' bind/result processors."""

    def __init__(self, statement: Any, dialect: sa.Dialect, order: Sequence[str] = ()) -> None:
        """``order``: the bind parameter names in the order the caller passes values."""
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._positional = compiled.positional
        self._names = list(compiled.positiontup if compiled.positional else compiled.binds)
        if sorted(self._names) != sorted(order):
            raise ValueError(f"parameters {self._names} are not {list(order)}: {self.sql}")
        where = {name: i for i, name in enumerate(order)}
        binds = [
            (where[name], _bind_processor(compiled.binds[name].type, dialect))
            for name in self._names
        ]
        # Per call only the reorder (one C-level itemgetter) and the few columns that have a
        # bind processor (datetimes, JSON): most child-row columns are passed through as is.
        self._pick = operator.itemgetter(*(i for i, _ in binds)) if len(binds) > 1 else None
        self._processed = [(slot, conv) for slot, (_, conv) in enumerate(binds) if conv]
        self._binds = binds
        # Values already in the statement's order with no processor (the child-row inserts on
        # every dialect): a positional statement takes them as they are.
        self._as_is = (
            compiled.positional
            and not self._processed
            and [i for i, _ in binds] == list(range(len(binds)))
        )
        self._dialect = dialect
        self._types = (
            [c.type.dialect_impl(dialect) for c in statement.selected_columns]
            if isinstance(statement, sa.Select)
            else []
        )
        # result processors depend on the driver's type codes: found on the first read
        self._converters: dict[tuple[Any, ...], list[tuple[int, Any]]] = {}

    def params(self, values: Sequence[Any]) -> Any:
        if self._pick is None:  # one parameter (or none)
            converted = [values[i] if conv is None else conv(values[i]) for i, conv in self._binds]
        else:
            converted = list(self._pick(values))
            for slot, conv in self._processed:
                converted[slot] = conv(converted[slot])
        if self._positional:
            return tuple(converted)
        return dict(zip(self._names, converted, strict=True))

    def execute(self, tx: _Runner, values: Sequence[Any]) -> int:
        """Run with one set of values; the number of rows it changed."""
        return tx.run(self.sql, self.params(values))[0]

    def execute_many(self, tx: _Runner, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run once per row (``executemany``); rows are tuples of values in ``order``."""
        params = rows if self._as_is else [self.params(values) for values in rows]
        tx.run(self.sql, params, many=True)

    def rows(self, tx: _Runner, values: Sequence[Any]) -> list[Sequence[Any]]:
        """The rows of a SELECT, values in the order of its columns, converted to Python."""
        _, description, raw = tx.run(self.sql, self.params(values), fetch=True)
        signature = tuple(map(_TYPE_CODE, description))  # C-level: no generator per column
        convert = self._converters.get(signature)
        if convert is None:
            processors = (
                _result_processor(kind, self._dialect, d[1])
                for kind, d in zip(self._types, description, strict=True)
            )
            convert = [(i, p) for i, p in enumerate(processors) if p is not None]
            self._converters[signature] = convert
        if not convert:
            return raw
        rows: list[Sequence[Any]] = []
        for row in raw:
            values = list(row)
            for i, processor in convert:
                values[i] = processor(values[i])
            rows.append(values)
        return rows


def _bind_processor(kind: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Any:
    """The column type's bind processor; for JSON on SQLite with the default serializer, one
    that writes None (the optional JSON fields, JSON ``null``) without a trip through
    ``json.dumps``."""
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if process is _TO_FLOAT:
        # float(value) for a Double column (SQLite): every value bound here comes from a
        # record, whose float fields hold floats (or None) already, so it would change nothing.
        return None
    if process is None or not _plain_sqlite_json(kind, dialect):
        return process

    def json_bind(value: Any) -> Any:
        return "null" if value is None else process(value)

    return json_bind


def _result_processor(kind: sa.types.TypeEngine[Any], dialect: sa.Dialect, code: Any) -> Any:
    """The column type's result processor; for JSON on SQLite, JSON ``null`` is read as None
    without a trip through ``json.loads`` (SQL NULL stays None as before)."""
    process = kind.result_processor(dialect, code)
    if process is None or not _plain_sqlite_json(kind, dialect):
        return process

    def json_result(value: Any) -> Any:
        return None if value == "null" else process(value)

    return json_result


def _plain_sqlite_json(kind: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> bool:
    """JSON stored as SQLite text with ``json.dumps``' text and ``json.loads``: None <-> "null"."""
    return (
        dialect.name == "sqlite"
        and isinstance(kind, sa.JSON)
        and not kind.none_as_null
        and getattr(dialect, "_json_serializer", None) in (None, _json_dumps)
        and getattr(dialect, "_json_deserializer", None) is None
    )


def _one_shot_encoder() -> Any:
    """``json.dumps`` with its defaults, but the C encoder made once, not on every call (it
    is most of what a small dict's ``json.dumps`` costs). Without the circular-reference
    check: a record's JSON is a tree (the model copied it), so there is nothing to detect, and
    the encoder then keeps no state between calls (threads share it)."""
    make = getattr(json_encoder, "c_make_encoder", None)  # private to json: typeshed omits it
    ascii_text = json_encoder.encode_basestring_ascii
    if make is None:  # no C accelerator (not CPython): json.dumps as it is
        return json.dumps
    # the arguments json.dumps' default encoder passes, with markers=None (no circular check)
    chunks = make(
        None, json.JSONEncoder().default, ascii_text, None, ": ", ", ", False, False, True
    )

    def dumps(value: Any) -> str:
        if isinstance(value, str):
            return ascii_text(value)
        return "".join(chunks(value, 0))

    return dumps


_json_dumps = _one_shot_encoder()


class _Runner:
    """Runs SQL in one transaction: ``(rowcount, cursor description, rows)``."""

    def run(
        self, sql: str, params: Any, *, many: bool = False, fetch: bool = False
    ) -> tuple[int, Any, list[Any]]:
        raise NotImplementedError


class _DirectTransaction(_Runner):
    """A transaction on a pooled DB-API connection, as a context manager (a class, not a
    generator: it is entered three times per audit lifecycle). Driver errors become
    SQLAlchemy's exception types; a connection that is gone is dropped from the pool.
    """

    def __init__(
        self,
        engine: sa.Engine,
        lock: Any,
        begin: str | None,
        snapshot: bool,
        held: _HeldConnection | None = None,
    ) -> None:
        self.engine = engine
        self.held = held  # SQLite: a connection kept out of the pool (see _HeldConnection)
        self.dialect = engine.dialect
        self.lock = lock
        self.begin = begin  # SQLite: "BEGIN" or "BEGIN IMMEDIATE"; servers begin implicitly
        self.snapshot = snapshot  # REPEATABLE READ for the transaction
        self.conn: Any = None
        self.cursor: Any = None

    def __enter__(self) -> _DirectTransaction:
        self.lock.__enter__()
        try:
            held = self.held
            if held is not None and not held.claim():
                held = self.held = None  # another reader has it: one from the pool
            if held is not None and held.conn is not None and held.conn.is_valid:
                self.conn = held.conn
            else:
                self.conn = self.engine.raw_connection()  # pre-pinged when pool_pre_ping is on
                if held is not None:
                    held.conn = self.conn
            if self.snapshot:
                self.dialect.set_isolation_level(self.conn.dbapi_connection, "REPEATABLE READ")
            self.cursor = self.conn.cursor()
            if self.begin:
                self.run(self.begin, ())
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is None:
                try:
                    self.conn.commit()
                except self.dialect.loaded_dbapi.Error as error:
                    failure = self._translated(error, "COMMIT", None, False)
                    self._abort(failure)
                    raise failure from error
            elif self.conn is not None:
                self._abort(exc)
        finally:
            self._release()

    def run(
        self, sql: str, params: Any, *, many: bool = False, fetch: bool = False
    ) -> tuple[int, Any, list[Any]]:
        cursor = self.cursor
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            if not fetch:
                return cursor.rowcount, (), []
            return -1, cursor.description, cursor.fetchall()
        except self.dialect.loaded_dbapi.Error as error:
            raise self._translated(error, sql, params, many) from error

    def _translated(self, error: Exception, sql: str, params: Any, many: bool) -> Exception:
        # error is a loaded_dbapi.Error; SQLAlchemy 2.1 types the parameter as its own protocol
        gone = self.dialect.is_disconnect(error, self.conn.dbapi_connection, self.cursor)  # type: ignore[arg-type]
        return sa.exc.DBAPIError.instance(
            sql, params, error, self.dialect.loaded_dbapi.Error, connection_invalidated=gone,
            dialect=self.dialect, ismulti=many,
        )  # fmt: skip

    def _abort(self, exc: BaseException) -> None:
        if getattr(exc, "connection_invalidated", False):
            self.conn.invalidate(exc)
            return
        try:
            self.conn.rollback()
        except Exception:
            self.conn.invalidate()

    def _release(self) -> None:
        try:
            conn = self.conn
            if conn is None:
                return
            if self.cursor is not None and conn.is_valid:
                self.cursor.close()
            if self.snapshot and conn.is_valid:
                try:
                    self.dialect.reset_isolation_level(conn.dbapi_connection)
                except Exception:
                    conn.invalidate()
            if self.held is None or not conn.is_valid:
                conn.close()  # back to the pool; an invalidated connection is replaced
                if self.held is not None:
                    self.held.conn = None
        finally:
            if self.held is not None:
                self.held.unclaim()
            self.lock.__exit__(None, None, None)


class _HeldConnection:
    """A SQLite connection kept checked out between transactions, so each one skips a pool
    checkout and check-in (together about a tenth of a lifecycle's CPU). The writer's serves
    every write (each holds the store's write lock already); the reader's serves whichever
    read claims it first, the others take one from the pool as before. Each transaction
    commits or rolls back on it; an invalidated connection is replaced."""

    def __init__(self, shared: bool) -> None:
        self.conn: Any = None
        self._claim = threading.Lock() if shared else None

    def claim(self) -> bool:
        return self._claim is None or self._claim.acquire(blocking=False)

    def unclaim(self) -> None:
        if self._claim is not None:
            self._claim.release()

    def release(self) -> None:
        """Back to the pool, for ``close()`` (the caller holds the write lock)."""
        if self._claim is not None:
            self._claim.acquire()  # wait for a read using it
        try:
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()
        finally:
            self.unclaim()


class _SqlAlchemyRunner(_Runner):
    """Through a SQLAlchemy Connection, so its events and ``echo`` see every statement."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def run(
        self, sql: str, params: Any, *, many: bool = False, fetch: bool = False
    ) -> tuple[int, Any, list[Any]]:
        result = self.conn.exec_driver_sql(sql, params)
        if not fetch:
            return result.rowcount, (), []
        return -1, result.cursor.description, list(result.fetchall())


# --- the store ------------------------------------------------------------------------------


class SqlAuditStore:
    """Audits in any SQLAlchemy database. Thread-safe; each method is one transaction."""

    # in-memory SQLite; a database that outlives the process adds DURABLE (see __init__)
    capabilities: frozenset[str] = frozenset(
        {vs.Capability.LIST, vs.Capability.FILTERS, vs.Capability.EVENTS}
    )

    def __init__(
        self,
        url: str,
        table_prefix: str = "veritas_",
        echo: bool = False,
        busy_timeout: float = 30.0,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_pre_ping: bool = True,
        pool_recycle: int | None = None,
        auto_upgrade: bool = False,
    ) -> None:
        parsed, engine_options = _engine_args(
            url, table_prefix, echo, busy_timeout, pool_size, max_overflow, pool_pre_ping,
            pool_recycle, auto_upgrade,
        )  # fmt: skip
        self._safe_url = _safe(parsed)
        try:
            self._engine = sa.create_engine(parsed, **engine_options)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise ValueError(f"cannot use database URL {self._safe_url}: {exc}") from None
        self._prefix = table_prefix
        sqlite = parsed.get_backend_name() == "sqlite"
        memory = sqlite and parsed.database in (None, "", ":memory:")
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
        self._sqlite = sqlite
        # file SQLite only: in-memory SQLite has one StaticPool connection anyway
        held = sqlite and not memory
        self._held_writer = _HeldConnection(shared=False) if held else None
        self._held_reader = _HeldConnection(shared=True) if held else None
        if sqlite:
            self._tune_sqlite(busy_timeout)
            self._reader = self._engine
        else:
            # get() and list() read a row, then its children: one snapshot for both
            self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        self._writer = self._engine.execution_options(veritas_write=True)

        self._metadata, self._audits, self._findings, self._screenshots = _build_tables(
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
        self._open_schema(auto_upgrade)
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
        _engine_args(**options)

    def _tune_sqlite(self, busy_timeout: float) -> None:
        @sa.event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the sqlite3 module (SQLAlchemy's pysqlite recipe):
            # it would BEGIN only at the first write, and upgrading a read transaction to a
            # write one fails at once with "database is locked" when another thread writes.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
                cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL
                cursor.execute("PRAGMA foreign_keys = ON")  # for ON DELETE CASCADE
            finally:
                cursor.close()

        @sa.event.listens_for(self._engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # Writers take the write lock up front (waiting up to busy_timeout for it).
            write = conn.get_execution_options().get("veritas_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

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
            name: sa.bindparam(name) for name in _AUDIT_FIELDS[1:]
        }
        self._insert_audit = _Prepared(audits.insert(), dialect, _AUDIT_FIELDS)
        self._update_audit = _Prepared(
            audits.update().where(by_id).values(changed), dialect, (*_AUDIT_FIELDS[1:], *key)
        )
        self._delete_audit = _Prepared(audits.delete().where(by_id), dialect, key)
        self._select_audit = _Prepared(sa.select(*self._audit_columns()).where(by_id), dialect, key)
        self._children_of: list[tuple[_Prepared, _Prepared, _Prepared]] = []
        for table, fields in (
            (self._findings, _FINDING_FIELDS),
            (self._screenshots, _SCREENSHOT_COLUMNS),
        ):
            of_audit = table.c.audit_id == sa.bindparam("audit_id")
            insert = _Prepared(table.insert(), dialect, ("audit_id", "position", *fields))
            delete = _Prepared(table.delete().where(of_audit), dialect, key)
            select = _Prepared(
                sa.select(*self._child_columns(table)).where(of_audit).order_by(table.c.position),
                dialect,
                key,
            )
            self._children_of.append((insert, delete, select))

    def _audit_columns(self) -> list[sa.Column[Any]]:
        return [self._audits.c[name] for name in _AUDIT_FIELDS]

    def _child_columns(self, table: sa.Table) -> list[sa.Column[Any]]:
        """``audit_id``, then the model's fields in order."""
        fields = _FINDING_FIELDS if table is self._findings else _SCREENSHOT_COLUMNS
        return [table.c.audit_id, *(table.c[name] for name in fields)]

    def __repr__(self) -> str:
        return f"SqlAuditStore(url={self._safe_url!r}, table_prefix={self._prefix!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations and operator tools)."""
        return self._engine

    @property
    def metadata(self) -> sa.MetaData:
        """The tables of this store's ``table_prefix``."""
        return self._metadata

    def _transaction(self, write: bool) -> AbstractContextManager[_Runner]:
        """One transaction, as ``engine.begin()`` makes it, for the prepared statements.

        Writers on SQLite take the write lock up front (``BEGIN IMMEDIATE``); readers on a
        server read one snapshot (REPEATABLE READ). See the note above ``_Prepared``.
        """
        engine = self._engine
        dispatch = engine.dispatch
        if engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            return self._through_sqlalchemy(write)
        lock = self._write_lock if write else self._lock
        if self._sqlite:
            begin = "BEGIN IMMEDIATE" if write else "BEGIN"
            held = self._held_writer if write else self._held_reader
            return _DirectTransaction(engine, lock, begin, snapshot=False, held=held)
        return _DirectTransaction(engine, lock, None, snapshot=not write)

    @contextmanager
    def _through_sqlalchemy(self, write: bool) -> Iterator[_Runner]:
        lock = self._write_lock if write else self._lock
        with lock, (self._writer if write else self._reader).begin() as conn:
            yield _SqlAlchemyRunner(conn)

    # --- schema versions (vs.SchemaManaged: what `veritas-store db` calls) -----------------

    def schema_current(self) -> dict[str, Any]:
        """The schema's state (empty, current, outdated, unversioned, ahead) and revisions."""
        return {"table_prefix": self._prefix, **self._schema.current()}

    def schema_history(self) -> list[dict[str, Any]]:
        """Every migration, oldest first, marked ``applied`` up to the database's revision."""
        return self._schema.history()

    def schema_upgrade(self) -> dict[str, Any]:
        """Run the migrations up to the latest revision (under a lock; a no-op when current)."""
        return self._schema.upgrade()

    # --- the AuditStore protocol ----------------------------------------------------------

    def create(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        values = _row_of(audit)
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
        return _record(rows[0], findings, screenshots)

    def update(self, audit: vs.Audit) -> None:
        vs.validate_audit_id(audit.id)
        values = _row_of(audit)
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
        query_filter = vs.ListFilter(status, risk_level, url, created_after, created_before, order)
        vs.validate_limit(limit)
        c = self._audits.c
        newest = query_filter.order == "newest"
        query = sa.select(*self._audit_columns()).order_by(
            *((c.created_at.desc(), c.id.desc()) if newest else (c.created_at, c.id))
        )
        if query_filter.status is not None:
            query = query.where(c.status == query_filter.status.value)
        for name, length in FILTER_PREFIX.items():
            value = getattr(query_filter, name)
            if value is None:
                continue
            if self._engine.dialect.name in _MYSQL:  # seeks in its prefix index by itself
                query = query.where(c[name] == value)
                continue
            # The others seek on the indexed expression (literal 1 and length, as in the index).
            # A value shorter than the prefix matches the prefix only if it is the whole text;
            # a longer one needs the full comparison too (which SQLite's planner then ignores
            # the expression index for, so it is left out when it is not needed).
            indexed = sa.func.substr(
                c[name], sa.literal_column("1"), sa.literal_column(str(length))
            )
            query = query.where(indexed == value[:length])
            if len(value) >= length:
                query = query.where(c[name] == value)
        if query_filter.created_after is not None:
            query = query.where(c.created_at >= query_filter.created_after)
        if query_filter.created_before is not None:
            query = query.where(c.created_at < query_filter.created_before)
        if cursor is not None:  # keyset: strictly after the previous page's last item
            at, last_id = vs.decode_cursor(cursor)
            # "created_at <= at" is what lets every database seek in the index to the cursor
            # (an OR alone makes some scan from the newest row); the rest drops ties before it.
            if newest:
                query = query.where(c.created_at <= at, sa.or_(c.created_at < at, c.id < last_id))
            else:
                query = query.where(c.created_at >= at, sa.or_(c.created_at > at, c.id > last_id))
        with self._lock, self._reader.begin() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()  # +1: is there more?
            items = self._load(conn, rows[:limit])
        more = len(rows) > limit
        return vs.AuditPage(tuple(items), vs.encode_cursor(items[-1]) if more else None)

    def append_events(
        self, audit_id: str, events: Iterable[vs.AuditEvent]
    ) -> tuple[vs.AuditEvent, ...]:
        vs.validate_audit_id(audit_id)
        events = list(events)
        table, audits = self._metadata.tables[f"{self._prefix}events"], self._audits
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
        table, audits = self._metadata.tables[f"{self._prefix}events"], self._audits
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
        if self._held_writer is not None and self._held_reader is not None:
            with self._write_lock:  # not while a write is using it
                self._held_writer.release()
                self._held_reader.release()
        self._engine.dispose()

    # --- rows <-> records -----------------------------------------------------------------

    def _insert_children(self, conn: _Runner, audit: vs.Audit) -> None:
        (findings, *_), (screenshots, *_) = self._children_of
        if audit.findings:  # one executemany each; an empty one would mean one empty INSERT
            findings.execute_many(
                conn, [(audit.id, i, *_finding_values(f)) for i, f in enumerate(audit.findings)]
            )
        if audit.screenshots:
            screenshots.execute_many(
                conn,
                [(audit.id, i, *_screenshot_values(s)) for i, s in enumerate(audit.screenshots)],
            )

    def _load(
        self, conn: sa.Connection, rows: Sequence[Sequence[Any]]
    ) -> builtins.list[vs.Audit]:  # the class's own list() hides the builtin here
        """Records for audit rows, with their children loaded in a few IN queries (no N+1)."""
        ids = [row[0] for row in rows]
        children: list[dict[str, list[Sequence[Any]]]] = []
        for table in (self._findings, self._screenshots):
            of: dict[str, list[Sequence[Any]]] = defaultdict(list)
            for start in range(0, len(ids), _IN_BATCH):
                query = (
                    sa.select(*self._child_columns(table))
                    .where(table.c.audit_id.in_(ids[start : start + _IN_BATCH]))
                    .order_by(table.c.position)
                )
                for child in conn.execute(query):
                    of[child[0]].append(child)
            children.append(of)
        findings, screenshots = children
        return [_record(row, findings[row[0]], screenshots[row[0]]) for row in rows]


def _row_of(audit: vs.Audit) -> list[Any]:
    """The audit's column values in ``_AUDIT_FIELDS`` order."""
    values = list(_audit_values(audit))
    values[_STATUS] = audit.status.value
    return values


def _record(
    row: Sequence[Any], findings: Sequence[Sequence[Any]], screenshots: Sequence[Sequence[Any]]
) -> vs.Audit:
    """An audit from its row and its children's rows (``audit_id`` first, in position order)."""
    if row[_EXTRA] is None:  # a row from before revision 0002 filled it
        row = [*row[:_EXTRA], {}, *row[_EXTRA + 1 :]]
    # row holds the columns before findings and screenshots; mypy cannot know its length
    return vs.Audit(  # type: ignore[misc]
        *row,
        findings=[vs.Finding(*r[1:]) for r in findings],
        screenshots=[vs.Screenshot(*r[1:]) for r in screenshots],
    )


@vs.hookimpl
def register_audit_backends(register):  # type: ignore[no-untyped-def]
    register(
        "sql",
        SqlAuditStore,
        description="audits in SQLite, PostgreSQL or MariaDB/MySQL through SQLAlchemy",
    )
