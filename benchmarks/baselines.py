"""Raw baselines: what a user would write by hand instead of using veritas-store.

Each one does the same work as the framework call it is compared with, with the same
durability:

- ``RawSqlite``: the lifecycle's statements through the ``sqlite3`` module, WAL and
  ``synchronous=NORMAL``, foreign keys on, one transaction per step (``BEGIN IMMEDIATE`` for
  writes, as the ``sql`` backend does), the same tables and indexes; rows come back as tuples.
- ``RawPostgres``: the same statements through ``psycopg`` on PostgreSQL.
- ``atomic_write``: a temporary file, ``fsync``, ``rename``, then ``fsync`` of the folder (the
  ``fsspec`` backend makes the rename durable too, so the baseline must).
- ``RawS3``: ``s3fs`` ``pipe_file``/``cat_file`` on the same moto server.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from datetime import UTC, datetime
from typing import Any

from workload import completed_values, created_values

AUDIT_COLUMNS = (
    "id", "url", "tier", "verdict_mode", "status", "created_at", "started_at", "completed_at",
    "updated_at", "trust_score", "risk_level", "narrative", "signal_scores", "site_type",
    "site_type_confidence", "security_results", "pages_scanned", "elapsed_seconds",
    "error_message", "recommendations", "domain_info", "overrides", "errors", "extra",
)  # fmt: skip
_JSON_COLUMNS = ("recommendations", "domain_info", "overrides", "errors")  # None is JSON null
FINDING_COLUMNS = (
    "category", "pattern_type", "severity", "confidence", "description", "screenshot_index",
    "evidence", "id", "plain_english",
)  # fmt: skip
SCREENSHOT_COLUMNS = ("label", "blob_key", "size_bytes", "content_type", "sha256")


def _schema(prefix: str, *, text: str, stamp: str, double: str, id_type: str) -> list[str]:
    return [
        f"""CREATE TABLE {prefix}audits (
            id {id_type} NOT NULL PRIMARY KEY, url {text} NOT NULL, tier {text} NOT NULL,
            verdict_mode {text} NOT NULL, status VARCHAR(16) NOT NULL,
            created_at {stamp} NOT NULL, started_at {stamp}, completed_at {stamp},
            updated_at {stamp} NOT NULL, trust_score {double}, risk_level {text},
            narrative {text}, signal_scores JSON NOT NULL, site_type {text},
            site_type_confidence {double}, security_results JSON NOT NULL,
            pages_scanned INTEGER NOT NULL, elapsed_seconds {double}, error_message {text},
            recommendations JSON, domain_info JSON, overrides JSON, errors JSON, extra JSON)""",
        f"CREATE INDEX ix_{prefix}audits_created ON {prefix}audits (created_at, id)",
        f"CREATE INDEX ix_{prefix}audits_status_created ON {prefix}audits (status, created_at, id)",
        # the filtered listings' indexes (revision 0002 of the sql backend): a prefix of the
        # text, so that a long URL stays indexable
        f"CREATE INDEX ix_{prefix}audits_risk_level_created ON {prefix}audits "
        "(substr(risk_level, 1, 64), created_at, id)",
        f"CREATE INDEX ix_{prefix}audits_url_created ON {prefix}audits "
        "(substr(url, 1, 255), created_at, id)",
        f"""CREATE TABLE {prefix}findings (
            audit_id {id_type} NOT NULL REFERENCES {prefix}audits (id) ON DELETE CASCADE,
            position INTEGER NOT NULL, category {text} NOT NULL, pattern_type {text} NOT NULL,
            severity {text} NOT NULL, confidence {double} NOT NULL, description {text} NOT NULL,
            screenshot_index INTEGER, evidence {text}, id {text}, plain_english {text},
            PRIMARY KEY (audit_id, position))""",
        f"""CREATE TABLE {prefix}screenshots (
            audit_id {id_type} NOT NULL REFERENCES {prefix}audits (id) ON DELETE CASCADE,
            position INTEGER NOT NULL, idx INTEGER NOT NULL, label {text} NOT NULL,
            blob_key {text} NOT NULL, size_bytes BIGINT NOT NULL, content_type {text} NOT NULL,
            sha256 VARCHAR(64) NOT NULL, PRIMARY KEY (audit_id, position))""",
    ]


class _RawLifecycle:
    """The lifecycle's statements; subclasses supply the connection and value conversions."""

    placeholder = "?"
    prefix = ""

    def _sql(self) -> None:
        p, t = self.placeholder, self.prefix
        marks = ", ".join([p] * len(AUDIT_COLUMNS))
        self.insert_audit = f"INSERT INTO {t}audits ({', '.join(AUDIT_COLUMNS)}) VALUES ({marks})"
        sets = ", ".join(f"{c} = {p}" for c in AUDIT_COLUMNS[1:])
        self.update_audit = f"UPDATE {t}audits SET {sets} WHERE id = {p}"
        self.delete_children = [
            f"DELETE FROM {t}findings WHERE audit_id = {p}",
            f"DELETE FROM {t}screenshots WHERE audit_id = {p}",
        ]
        cols = ("audit_id", "position", *FINDING_COLUMNS)
        self.insert_finding = (
            f"INSERT INTO {t}findings ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"
        )
        cols = ("audit_id", "position", "idx", *SCREENSHOT_COLUMNS)
        self.insert_screenshot = (
            f"INSERT INTO {t}screenshots ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"
        )
        self.select_audit = f"SELECT * FROM {t}audits WHERE id = {p}"
        self.select_findings = f"SELECT * FROM {t}findings WHERE audit_id = {p} ORDER BY position"
        self.select_screenshots = (
            f"SELECT * FROM {t}screenshots WHERE audit_id = {p} ORDER BY position"
        )

    def stamp(self, value: datetime | None) -> Any:
        return value

    def json(self, value: Any) -> Any:
        return json.dumps(value)

    def audit_row(self, values: dict[str, Any]) -> list[Any]:
        row = []
        for name in AUDIT_COLUMNS:
            value = values.get(name)
            if name.endswith("_at"):
                value = self.stamp(value)
            elif name in ("signal_scores", "security_results", "extra"):
                value = self.json(value or {})
            elif name in _JSON_COLUMNS:
                value = self.json(value)
            elif name == "pages_scanned":
                value = value or 0
            row.append(value)
        return row

    def lifecycle(self, audit_id: str) -> tuple[Any, ...]:
        """create -> update -> get, one transaction each; returns what the get read."""
        created = created_values(audit_id)
        with self.write() as cur:
            cur.execute(self.insert_audit, self.audit_row(created))
        done = created | completed_values(audit_id)
        row = self.audit_row(done)
        findings = [
            (audit_id, i, *(f.get(c) for c in FINDING_COLUMNS))
            for i, f in enumerate(done["findings"])
        ]
        shots = [
            (audit_id, i, s["index"], *(s[c] for c in SCREENSHOT_COLUMNS))
            for i, s in enumerate(done["screenshots"])
        ]
        with self.write() as cur:
            cur.execute(self.update_audit, row[1:] + [audit_id])
            for statement in self.delete_children:
                cur.execute(statement, (audit_id,))
            cur.executemany(self.insert_finding, findings)
            cur.executemany(self.insert_screenshot, shots)
        return self.read(audit_id)

    def read(self, audit_id: str) -> tuple[Any, ...]:
        with self.begin_read() as cur:
            audit = cur.execute(self.select_audit, (audit_id,)).fetchone()
            findings = cur.execute(self.select_findings, (audit_id,)).fetchall()
            shots = cur.execute(self.select_screenshots, (audit_id,)).fetchall()
        return audit, findings, shots


class _SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> sqlite3.Cursor:
        self.cur = self.conn.cursor()
        self.cur.execute(self.begin)
        return self.cur

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.cur.execute("ROLLBACK" if exc_type else "COMMIT")
        self.cur.close()


class RawSqlite(_RawLifecycle):
    """The lifecycle through the ``sqlite3`` module with the ``sql`` backend's durability."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "busy_timeout = 30000",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        schema = _schema("", text="TEXT", stamp="DATETIME", double="FLOAT", id_type="VARCHAR(128)")
        for statement in schema:
            self.conn.execute(statement)
        self._sql()

    def stamp(self, value: datetime | None) -> str | None:
        # SQLAlchemy's SQLite DATETIME format: naive UTC text with microseconds
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def write(self) -> _SqliteTransaction:
        return _SqliteTransaction(self.conn, "BEGIN IMMEDIATE")

    def begin_read(self) -> _SqliteTransaction:
        return _SqliteTransaction(self.conn, "BEGIN")

    def close(self) -> None:
        self.conn.close()


class RawPostgres(_RawLifecycle):
    """The lifecycle through ``psycopg`` (autocommit off: one transaction per step)."""

    placeholder = "%s"

    def __init__(self, url: str, prefix: str) -> None:
        import psycopg
        from psycopg.types.json import Json

        self._json = Json
        self.prefix = prefix
        self.conn = psycopg.connect(url)
        schema = _schema(
            prefix,
            text="TEXT",
            stamp="TIMESTAMP WITHOUT TIME ZONE",
            double="DOUBLE PRECISION",
            id_type='VARCHAR(128) COLLATE "C"',
        )
        with self.conn.transaction():
            for statement in schema:
                self.conn.execute(statement)
        self._sql()

    def stamp(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def json(self, value: Any) -> Any:
        return self._json(value)

    def write(self) -> Any:
        return _PgTransaction(self.conn)

    begin_read = write

    def drop(self) -> None:
        with self.conn.transaction():
            for table in ("findings", "screenshots", "audits"):
                self.conn.execute(f"DROP TABLE IF EXISTS {self.prefix}{table}")

    def close(self) -> None:
        self.conn.close()


class _PgTransaction:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        self.tx = self.conn.transaction()
        self.tx.__enter__()
        return self.conn.cursor()

    def __exit__(self, *exc: Any) -> None:
        self.tx.__exit__(*exc)


def atomic_write(folder: str, name: str, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename over the target, fsync the folder."""
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, name)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class RawS3:
    """``s3fs`` on its own: one ``pipe_file`` per save, one ``cat_file`` per load."""

    def __init__(self, storage_options: dict[str, Any], root: str) -> None:
        import s3fs

        self.fs = s3fs.S3FileSystem(**storage_options)
        self.root = root

    def save(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", data, ContentType="image/png")

    def load(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.root}/{key}")
