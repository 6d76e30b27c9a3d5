"""Transactions on a DB-API connection for the compiled statements (``sql_statements``),
and the SQLAlchemy Connection fallback for when someone listens."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import sqlalchemy as sa


class Runner:
    """Runs SQL in one transaction: ``(rowcount, cursor description, rows)``."""

    def run(
        self, sql: str, params: Any, *, many: bool = False, fetch: bool = False
    ) -> tuple[int, Any, list[Any]]:
        raise NotImplementedError


class DirectTransaction(Runner):
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
        held: HeldConnection | None = None,
    ) -> None:
        self.engine = engine
        self.held = held  # SQLite: a connection kept out of the pool (see HeldConnection)
        self.dialect = engine.dialect
        self.lock = lock
        self.begin = begin  # SQLite: "BEGIN" or "BEGIN IMMEDIATE"; servers begin implicitly
        self.snapshot = snapshot  # REPEATABLE READ for the transaction
        self.conn: Any = None
        self.cursor: Any = None

    def __enter__(self) -> DirectTransaction:
        self._take_lock()
        try:
            self.conn = self._connection()
            if self.snapshot:
                self.dialect.set_isolation_level(self.conn.dbapi_connection, "REPEATABLE READ")
            self.cursor = self.conn.cursor()
            if self.begin:
                self.run(self.begin, ())
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def _take_lock(self) -> None:
        self.lock.__enter__()

    def _connection(self) -> Any:
        held = self.held
        if held is not None and not held.claim():
            held = self.held = None  # another reader has it: one from the pool
        if held is not None and held.conn is not None and held.conn.is_valid:
            return held.conn
        conn = self.engine.raw_connection()  # pre-pinged when pool_pre_ping is on
        if held is not None:
            held.conn = conn
        return conn

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


class HeldConnection:
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


class SqlAlchemyRunner(Runner):
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


def tune_sqlite_engine(engine: sa.Engine, busy_timeout: float) -> None:
    """Every new connection of ``engine`` tuned (below); a transaction SQLAlchemy begins is
    ``BEGIN IMMEDIATE`` for a writer (it waits up to busy_timeout for the write lock up front)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _connection_record: Any) -> None:
        tune_sqlite_connection(dbapi_conn, busy_timeout)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("veritas_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def tune_sqlite_connection(dbapi_conn: Any, busy_timeout: float) -> None:
    """Set up a new SQLite connection: transactions under our control, WAL, foreign keys."""
    # Take transaction control from the sqlite3 module (SQLAlchemy's pysqlite recipe): it would
    # BEGIN only at the first write, and upgrading a read transaction to a write one fails at
    # once with "database is locked" when another thread writes.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # Readers never block the writer. Switching a new database to WAL can fail at once
        # with "database is locked" while another connection opens it (SQLite does not call
        # the busy handler there), so it is retried until busy_timeout.
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.002)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL
        cursor.execute("PRAGMA foreign_keys = ON")  # for ON DELETE CASCADE
    finally:
        cursor.close()
