"""The repair journal: a durable record of every write that some backend may be missing.

Before a composite fans a write out to several backends it records the *intent* (section,
operation, key, the backends in write order) in a SQLite file in WAL mode with
``synchronous = NORMAL``: the row is committed before any backend is touched, so it survives
``kill -9`` (the operating system holds it). Like the SQLite store itself at the same setting, an
operating-system crash or power loss may lose the newest entries, never corrupt the file; we
do not pay an fsync per write for a guarantee the stores it protects do not give. When every
backend has the write, the row is deleted (if that deletion is lost, ``repair`` replays a write
that is already everywhere, which changes nothing). When a backend failed, the row is kept with
the backends that miss the write and the error before the call returns. ``veritas-store
repair`` (``ops/journal_repair.py``) completes what is kept.

Cost: one small insert and one delete per write to a composite of two or more backends; a
composite of one backend has nothing to journal. ``journal = false`` in the config
turns it off (then a failed optional write is only logged and reported, and a process killed
mid-write can leave backends apart until the next write of that item).

Entries are in one of two states: ``intent`` (the write is in flight, or its process died) and
``failed`` (the write finished and ``missing`` names the backends without it).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

BUSY_TIMEOUT = 30.0  # seconds another process may hold the journal's write lock
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    section TEXT NOT NULL,          -- "audits" or "blobs"
    operation TEXT NOT NULL,        -- create, update, delete, put
    key TEXT NOT NULL,              -- the audit id or blob key
    targets TEXT NOT NULL,          -- JSON list: the backends written, in write order
    state TEXT NOT NULL,            -- "intent" or "failed"
    missing TEXT,                   -- JSON list: backends without the write ("failed" only)
    error TEXT,                     -- what went wrong, for people
    content_type TEXT,              -- a blob's content type, to write it again
    owner TEXT NOT NULL,            -- "host:pid" of the writing process
    created_at REAL NOT NULL,       -- unix time
    attempts INTEGER NOT NULL DEFAULT 0  -- repair runs that could not complete it
);
CREATE INDEX IF NOT EXISTS entries_by_key ON entries (section, key, id);
"""


@attrs.frozen
class Entry:
    id: int
    section: str
    operation: str
    key: str
    targets: tuple[str, ...]
    state: str
    missing: tuple[str, ...]
    error: str | None
    content_type: str | None
    owner: str
    created_at: float
    attempts: int

    @property
    def leader(self) -> str | None:
        """The backend that has this write: the first in write order that did not miss it."""
        return next((t for t in self.targets if t not in self.missing), None)

    @property
    def behind(self) -> tuple[str, ...]:
        """The backends that may miss the write (all but the leader while it is an intent)."""
        if self.state == "intent":
            return self.targets[1:]
        return self.missing

    def in_flight(self) -> bool:
        """An intent whose process is still running on this host: its writer will settle it."""
        if self.state != "intent":
            return False
        host, _, pid = self.owner.rpartition(":")
        return host == _HOST and pid.isdigit() and _alive(int(pid))


@attrs.frozen
class Stats:
    entries: int
    oldest: float | None  # unix time of the oldest entry

    def oldest_age(self, now: float | None = None) -> float | None:
        if self.oldest is None:
            return None
        return max(0.0, (now or time.time()) - self.oldest)


_HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """One journal file, shared by the threads of a process and by processes on one host."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None  # opened at the first write
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._owner = f"{_HOST}:{self._pid}"

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection (callers hold the lock); creates the file on first use."""
        if self._conn is not None and self._pid != os.getpid():
            self._conn = None  # inherited through fork(): never use a parent's connection
        if self._conn is None:
            self._pid = os.getpid()
            self._owner = f"{_HOST}:{self._pid}"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit (isolation_level=None): each statement below is its own transaction
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _readable(self) -> bool:
        """Whether there is anything to read (reads never create the file)."""
        return self._conn is not None or self.path.exists()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- the writer's side --------------------------------------------------------------

    def intent(
        self,
        section: str,
        operation: str,
        key: str,
        targets: Sequence[str],
        content_type: str | None = None,
    ) -> int:
        """Record, durably, that a write is about to go to ``targets``; its entry id."""
        with self._lock:
            db = self._db  # (re)connects first, so the owner below is this process
            cursor = db.execute(
                "INSERT INTO entries (section, operation, key, targets, state, content_type, "
                "owner, created_at) VALUES (?, ?, ?, ?, 'intent', ?, ?, ?)",
                (
                    section,
                    operation,
                    key,
                    json.dumps(list(targets)),
                    content_type,
                    self._owner,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def clear(self, entry_id: int) -> None:
        """Every backend has the write (or none was touched): forget it."""
        self.remove([entry_id])

    def keep(self, entry_id: int, missing: Sequence[str], error: str) -> None:
        """Some backends miss the write: keep the entry, durably, saying which and why."""
        with self._lock:
            self._db.execute(
                "UPDATE entries SET state = 'failed', missing = ?, error = ? WHERE id = ?",
                (json.dumps(list(missing)), error, entry_id),
            )

    # -- the repairer's side ------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        if not self._readable():
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, section, operation, key, targets, state, missing, error, "
                "content_type, owner, created_at, attempts FROM entries ORDER BY id"
            ).fetchall()
        return [_entry(row) for row in rows]

    def latest(self, section: str, key: str) -> Entry | None:
        """The newest entry for an item, or None."""
        if not self._readable():
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT id, section, operation, key, targets, state, missing, error, "
                "content_type, owner, created_at, attempts FROM entries "
                "WHERE section = ? AND key = ? ORDER BY id DESC LIMIT 1",
                (section, key),
            ).fetchone()
        return None if row is None else _entry(row)

    def remove(self, entry_ids: Sequence[int]) -> None:
        with self._lock:
            for chunk in _chunks(list(entry_ids), 500):
                marks = ", ".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk)

    def failed_again(self, entry_ids: Sequence[int], error: str) -> None:
        """A repair could not complete these entries: count the attempt, keep the error."""
        with self._lock:
            for chunk in _chunks(list(entry_ids), 500):
                marks = ", ".join("?" * len(chunk))
                self._db.execute(
                    f"UPDATE entries SET attempts = attempts + 1, error = ? WHERE id IN ({marks})",
                    [error, *chunk],
                )

    def stats(self) -> Stats:
        if not self._readable():
            return Stats(0, None)
        with self._lock:
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM entries"
            ).fetchone()
        return Stats(int(count), oldest)


def read_stats(path: str | os.PathLike[str]) -> Stats | None:
    """The size and age of a journal file without creating it; None if there is no file."""
    if not Path(path).exists():
        return None
    db = sqlite3.connect(Path(path), timeout=BUSY_TIMEOUT)
    try:
        count, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM entries").fetchone()
    except sqlite3.OperationalError:  # a file without the table: nothing journaled yet
        return Stats(0, None)
    finally:
        db.close()
    return Stats(int(count), oldest)


def _entry(row: tuple) -> Entry:  # type: ignore[type-arg]
    (id_, section, operation, key, targets, state, missing, error, ctype, owner, at, tries) = row
    return Entry(
        id_,
        section,
        operation,
        key,
        tuple(json.loads(targets)),
        state,
        tuple(json.loads(missing)) if missing else (),
        error,
        ctype,
        owner,
        at,
        tries,
    )


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
