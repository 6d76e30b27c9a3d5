"""Schema versions of the ``sql`` backend: the Alembic migrations shipped in ``sql_migrations/``.

A database holds one schema per ``table_prefix``, with its own Alembic version table
``<prefix>alembic_version``, so several prefixes (tests, tenants) share a database without
sharing a version. Its state is one of:

- ``empty``: none of our tables. Opening it creates the latest schema and records the head
  revision (``db upgrade`` instead runs every migration from the first).
- ``current``: at the head revision. Nothing to do.
- ``outdated``: at an older revision. Opening fails and names ``veritas-store db upgrade``,
  unless the backend's ``auto_upgrade`` option is on.
- ``unversioned``: our tables without a version table, made before veritas-store had
  migrations. Their schema is exactly revision 0001 (the baseline): ``db upgrade`` records that
  and upgrades from there. Opening treats it as outdated.
- ``ahead``: at a revision this code does not know, written by a newer veritas-store. Opening
  and upgrading fail; upgrade veritas-store instead.

Every change happens under a lock that serialises processes opening or upgrading the same
prefix at once: a PostgreSQL advisory lock, a MariaDB/MySQL named lock, SQLite's write lock.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

import veritas_store as vs

if TYPE_CHECKING:  # Alembic is imported only where a migration or the history needs it
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("sql_migrations")
BASELINE = "0001"  # the schema of databases created before migrations existed
UPGRADE_HINT = "run `veritas-store db upgrade` (or set auto_upgrade = true on this backend)"
_TABLES = ("audits", "findings", "screenshots")
_MYSQL = ("mysql", "mariadb")
_LOCK_WAIT = 120  # seconds a MariaDB/MySQL process waits for another's schema change


_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The latest revision, read from the migration files' ``revision`` / ``down_revision``
    lines: opening a store needs only this, and importing Alembic would cost more than the
    open (a test checks it against Alembic's own answer)."""
    return _head_of(MIGRATIONS)


@functools.cache
def _head_of(folder: Path) -> str:
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (folder / "versions").glob("*.py"):
        found = dict(_ASSIGNMENT.findall(script.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"]))
        down = ast.literal_eval(found.get("down_revision", "None"))
        parents.update((down,) if isinstance(down, str) else down or ())
    heads = sorted(revisions - parents)
    if len(heads) != 1:  # a packaging mistake, never a user's: say so plainly
        raise RuntimeError(f"the sql migrations must have one head, found {heads}")
    return heads[0]


class State(NamedTuple):
    kind: str  # empty | current | outdated | unversioned | ahead
    revision: str | None


class Schema:
    """The schema of one prefix in one database, reached through a store's engines."""

    def __init__(
        self,
        engine: sa.Engine,
        writer: sa.Engine,
        prefix: str,
        metadata: sa.MetaData,
        thread_lock: AbstractContextManager[Any],
        where: str,
    ) -> None:
        self._engine = engine
        self._writer = writer  # on SQLite its transactions begin IMMEDIATE: the write lock
        self._prefix = prefix
        self._metadata = metadata
        self._thread_lock = thread_lock  # the store's: one connection at a time for in-memory
        self._where = where  # the redacted URL and prefix, for messages
        self.version_table = f"{prefix}alembic_version"

    # --- reading the state ----------------------------------------------------------------

    def state(self, conn: sa.Connection | None = None) -> State:
        if conn is None:
            with self._thread_lock, self._engine.connect() as fresh:
                return self.state(fresh)
        inspector = sa.inspect(conn)
        if not inspector.has_table(self.version_table):
            ours = [t for t in _TABLES if inspector.has_table(self._prefix + t)]
            return State("unversioned" if ours else "empty", None)
        query: sa.Select[Any] = sa.select(sa.column("version_num")).select_from(
            sa.table(self.version_table)
        )
        stamped = conn.execute(query).scalars().all()
        # one row is the rule; Alembic explains anything else (several heads) when asked
        if len(stamped) > 1:
            stamped = [self._context(conn).get_current_revision()]
        revision = stamped[0] if stamped else None
        if revision is None:  # a version table without a row: as if it were not there
            ours = [t for t in _TABLES if inspector.has_table(self._prefix + t)]
            return State("unversioned" if ours else "empty", None)
        if revision == head():
            return State("current", revision)
        known = {r.revision for r in _script().walk_revisions()}
        return State("outdated" if revision in known else "ahead", revision)

    def current(self) -> dict[str, Any]:
        state = self.state()
        return {
            "state": state.kind,
            "revision": state.revision,
            "head": head(),
            "version_table": self.version_table,
        }

    def history(self) -> list[dict[str, Any]]:
        state = self.state()
        applied: set[str] = set()
        if state.kind in ("current", "outdated"):
            applied = {r.revision for r in _script().iterate_revisions(state.revision, "base")}
        return [
            {
                "revision": r.revision,
                "down_revision": r.down_revision,
                "description": r.doc,
                "applied": r.revision in applied,
                "head": r.is_head,
            }
            for r in reversed(list(_script().walk_revisions()))  # oldest first
        ]

    # --- changing it ----------------------------------------------------------------------

    def ensure(self, auto_upgrade: bool) -> None:
        """On open: create an empty schema, accept the current one, refuse (or upgrade) others."""
        if self.state().kind == "current":  # the common case, without taking the lock
            return
        with self._exclusive() as conn:
            state = self.state(conn)  # again: another process may have acted meanwhile
            if state.kind == "empty":
                self._metadata.create_all(conn)
                self._stamp_head(conn)
            elif state.kind in ("outdated", "unversioned") and auto_upgrade:
                self._upgrade(conn, state)
            elif state.kind != "current":
                raise vs.SchemaError(self._refusal(state))

    def upgrade(self) -> dict[str, Any]:
        """Bring the schema to the head revision; report the state before and after."""
        with self._exclusive() as conn:
            before = self.state(conn)
            self._upgrade(conn, before)
        return {
            "before": before.kind,
            "from": before.revision,
            "to": head(),
            "changed": before.kind != "current",
        }

    def _upgrade(self, conn: sa.Connection, state: State) -> None:
        if state.kind == "ahead":
            raise vs.SchemaError(self._refusal(state))
        if state.kind == "unversioned":
            missing = [
                self._prefix + t
                for t in _TABLES
                if not sa.inspect(conn).has_table(self._prefix + t)
            ]
            if missing:
                raise vs.SchemaError(
                    f"{self._where}: cannot adopt a partial schema without a version table "
                    f"(missing {', '.join(missing)}); restore the missing tables or drop the "
                    "others, then run `veritas-store db upgrade` again"
                )
            self._context(conn).stamp(_script(), BASELINE)
        if state.kind != "current":
            self._run_migrations(conn)

    def _run_migrations(self, conn: sa.Connection) -> None:
        from alembic.config import Config
        from alembic.runtime.environment import EnvironmentContext

        script = _script()

        def steps(revision: Any, _context: MigrationContext) -> Any:
            return script._upgrade_revs("head", revision)  # what `alembic upgrade head` runs

        env = EnvironmentContext(Config(), script, fn=steps, destination_rev="head")
        with env:
            # Extra keywords land in the migration context's opts: the scripts read the prefix.
            env.configure(
                connection=conn, version_table=self.version_table, table_prefix=self._prefix
            )
            env.run_migrations()

    def _stamp_head(self, conn: sa.Connection) -> None:
        """Record the head revision in a new version table, as ``alembic stamp`` would (the
        same table, so Alembic reads and moves it later), without importing Alembic."""
        table = sa.Table(
            self.version_table,
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name=f"{self.version_table}_pkc"),
        )
        table.create(conn)
        conn.execute(table.insert().values(version_num=head()))

    def _context(self, conn: sa.Connection) -> MigrationContext:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn, opts={"version_table": self.version_table})

    def _refusal(self, state: State) -> str:
        if state.kind == "ahead":
            return (
                f"{self._where} are at schema revision {state.revision}, which this "
                f"veritas-store (latest revision {head()}) does not know: a newer veritas-store "
                "upgraded it; install that version here too"
            )
        if state.kind == "unversioned":
            return (
                f"{self._where} were created before veritas-store had schema migrations (no "
                f"table {self.version_table}); {UPGRADE_HINT}"
            )
        return (
            f"{self._where} are at schema revision {state.revision}, this veritas-store needs "
            f"{head()}: {UPGRADE_HINT}"
        )

    @contextmanager
    def _exclusive(self) -> Iterator[sa.Connection]:
        """A transaction that holds this prefix's schema lock until it has committed."""
        name = f"veritas_store.schema.{self._prefix}"
        with self._thread_lock, self._writer.connect() as conn:
            dialect = conn.dialect.name
            if dialect in _MYSQL:  # a session lock: held across MySQL's implicit DDL commits
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": _LOCK_WAIT}
                ).scalar()
                conn.commit()
                if got != 1:
                    raise vs.BackendUnavailable(
                        f"{self._where}: another process held the schema lock for "
                        f"{_LOCK_WAIT}s; try again"
                    )
            try:
                with conn.begin():
                    if dialect == "postgresql":  # released when this transaction ends
                        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": key - 2**63},  # a signed bigint
                        )
                    yield conn
            finally:
                if dialect in _MYSQL:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                    conn.commit()
