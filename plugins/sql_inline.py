"""The ``sql`` backend's inline lane: SQLite calls attempted on the async API's event loop
(``vs.Capability.INLINE``), which raise ``vs.WouldBlock`` instead of waiting. See
docs/async.md, "Where a call runs", and docs/plugins.md, "Running on the event loop"."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from concurrent.futures import Future
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

import veritas_store as vs

from .sql_transactions import DirectTransaction, HeldConnection

log = logging.getLogger("veritas_store_plugins.sql")

# What SQLite answers where it would otherwise wait (busy_timeout 0): a lock held elsewhere.
_WOULD_WAIT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class InlineTransaction(DirectTransaction):
    """A transaction attempted on the event loop (``vs.may_wait()`` is False): on SQLite's
    inline connection (busy_timeout 0, no automatic checkpoint, so neither a lock wait nor an
    fsync), only if this process's write lock and that connection are free. Where it would
    wait it rolls back and raises ``vs.WouldBlock``: a transaction changes nothing until it
    commits, and in WAL mode a commit neither waits nor syncs.
    """

    lane: InlineLane | None = None

    def _take_lock(self) -> None:
        acquire = getattr(self.lock, "acquire", None)  # the write lock; reads take none
        if acquire is not None and not acquire(blocking=False):
            until = self.lane.checkpoint if self.lane is not None else None
            raise vs.WouldBlock("another thread of this process is writing to SQLite", until=until)

    def _connection(self) -> Any:
        held = self.held
        if held is None or not held.claim():
            self.held = None
            raise vs.WouldBlock("the inline SQLite connection is in use")
        if held.conn is None or not held.conn.is_valid:
            held.conn = self.engine.raw_connection()  # a StaticPool: never waits
        return held.conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            super().__exit__(exc_type, exc, tb)  # rolled back on an error, committed if none
        except sa.exc.OperationalError as error:  # the commit
            _would_wait(error)
            raise
        if isinstance(exc, sa.exc.OperationalError):
            _would_wait(exc)


def _would_wait(error: sa.exc.OperationalError) -> None:
    """``WouldBlock`` for SQLite's "database is locked" (busy_timeout 0: it would have waited)."""
    if getattr(error.orig, "sqlite_errorcode", None) in _WOULD_WAIT:
        raise vs.WouldBlock(f"SQLite would wait: {error.orig}") from error


class InlineLane:
    """What a SQLite store needs to run calls on the event loop (``vs.Capability.INLINE``):
    a connection of its own that never waits (``tune_inline_connection``), in an engine of its
    own whose StaticPool hands it out without waiting, and a checkpointer.

    Inline writes never checkpoint the WAL themselves (a checkpoint fsyncs). Every
    ``CHECKPOINT_EVERY`` of them wake a thread of the lane that checkpoints on the store's own
    engine: once as writes go on, then once more for the few frames written meanwhile, holding
    this process's write lock so that no write of ours lands and the next one starts the WAL
    over, as after SQLite's own automatic checkpoint. An inline write that finds the lock held
    by it is told to wait for it (``WouldBlock.until``), which the async API does on the loop,
    without a worker. The WAL stays about as large as SQLite's own checkpoints keep it
    (``tests/test_inline.py``), and no fsync runs on the loop.
    """

    CHECKPOINT_EVERY = 100  # a lifecycle's write is ~10 pages; SQLite's own default is 1000

    def __init__(self, url: sa.URL, engine: sa.Engine, write_lock: Any) -> None:
        self.engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False, "timeout": 0}
        )
        sa.event.listen(self.engine, "connect", lambda conn, _: tune_inline_connection(conn))
        self.held = HeldConnection(shared=True)
        self._store_engine = engine
        self._write_lock = write_lock
        self._writes = 0  # inline writes since the checkpointer was last woken
        self._due = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # set while the checkpointer wants or holds the write lock; done once it is free
        self.checkpoint: Future[None] | None = None
        self._closed = False

    def transaction(self, write: bool) -> InlineTransaction:
        if write:
            if (checkpoint := self.checkpoint) is not None:
                raise vs.WouldBlock("a WAL checkpoint needs the write lock", until=checkpoint)
            self._writes += 1
            if self._writes >= self.CHECKPOINT_EVERY:
                self._writes = 0
                self._wake_checkpointer()
        lock = self._write_lock if write else contextlib.nullcontext()
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        tx = InlineTransaction(self.engine, lock, begin, snapshot=False, held=self.held)
        tx.lane = self
        return tx

    def _wake_checkpointer(self) -> None:
        if self._checkpointer is None:  # started once, when the first checkpoint is due
            self._checkpointer = threading.Thread(
                target=self._checkpoints, name="veritas-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._due.set()

    def _checkpoints(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._closed:
                return
            try:
                self._checkpoint_wal()
            except Exception:  # the next one may succeed; SQLite's own checkpoints still run
                log.exception("a WAL checkpoint of the inline SQLite lane failed")

    def _checkpoint_wal(self) -> None:
        conn = self._store_engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # writes go on
            done = self.checkpoint = Future()  # inline writes wait for it from now on
            try:
                with self._write_lock:  # the rest, so that the next write starts the WAL over
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                self.checkpoint = None
                done.set_result(None)  # the lock is free: the writes told to wait go on
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        if self._checkpointer is not None:
            self._due.set()
            self._checkpointer.join()
        self.held.release()
        self.engine.dispose()


def not_inline(what: str) -> None:
    """``WouldBlock`` on the event loop: ``what`` runs through SQLAlchemy's pool (may wait)."""
    if not vs.may_wait():
        raise vs.WouldBlock(f"{what} is not run on the event loop")


def tune_inline_connection(dbapi_conn: Any) -> None:
    """Set up the inline connection (``InlineTransaction``): as ``tune_sqlite_connection``,
    but it never waits for a lock (busy_timeout 0: SQLite answers "locked" at once) and never
    checkpoints, which would fsync: the lane's checkpointer thread does (``InlineLane``). The
    database is in WAL mode already (the store's own connection made it so)."""
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        for pragma in ("busy_timeout = 0", "wal_autocheckpoint = 0", "synchronous = NORMAL",
                       "foreign_keys = ON"):  # fmt: skip
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()
