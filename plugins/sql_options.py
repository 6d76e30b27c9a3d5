"""The ``sql`` backend's options, stated once: ``SqlOptions``' fields are the store's
constructor (``SqlAuditStore`` inherits them), so the framework's name and type checks, the
value checks of ``check_options`` and the engine arguments all read the same list."""

from __future__ import annotations

import re
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from .sql_statements import json_dumps
from .sql_tables import MYSQL

_PREFIX = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,31})?")
# Pool defaults for server databases. Recycling hourly stays well below MariaDB/MySQL's
# wait_timeout (8 h) and idle cut-offs of proxies; pre-ping catches the rest.
_SERVER_POOL = {"pool_size": 5, "max_overflow": 10, "pool_recycle": 3600}

# --- options --------------------------------------------------------------------------------


@attrs.define(slots=False, eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class SqlOptions:
    """The options of the ``sql`` backend (docs/config.md), checked when it is built.

    Each field is one option: ``SqlOptions("sqlite:///a.db", busy_timeout=5)``. attrs makes
    the constructor from the fields, without their leading underscore, so ``SqlAuditStore``,
    which inherits it, takes exactly these options, and ``open_stores`` reads their names,
    defaults and types from its signature. Building one checks every value and works out the
    engine's arguments; nothing is created, connected or even imported (a database driver is
    imported by the engine).
    """

    _url: str
    _table_prefix: str = "veritas_"
    _echo: bool = False
    _busy_timeout: float = 30.0
    _pool_size: int | None = None
    _max_overflow: int | None = None
    _pool_pre_ping: bool = True
    _pool_recycle: int | None = None
    _auto_upgrade: bool = False
    _inline: bool | None = None

    def __attrs_post_init__(self) -> None:
        parsed = self._parsed_url = _parse_url(self._url)
        self._safe_url = safe_url(parsed)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._in_memory = self._sqlite and parsed.database in (None, "", ":memory:")
        self._engine_options = _engine_args(self)
        # The async API's calls on the event loop: a SQLite file unless turned off. A server
        # answers over the network and in-memory SQLite shares one connection under a lock.
        if self._inline is not None:
            _check_bool("inline", self._inline)
            if self._inline and (not self._sqlite or self._in_memory):
                raise ValueError(
                    "inline applies only to a SQLite database file "
                    f"(this url is {'in-memory SQLite' if self._sqlite else 'a server'})"
                )
        self._runs_inline = self._sqlite and not self._in_memory and self._inline is not False


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


def _engine_args(o: SqlOptions) -> dict[str, Any]:
    """Check every other option; return the ``create_engine`` arguments."""
    parsed, sqlite, memory = o._parsed_url, o._sqlite, o._in_memory
    table_prefix, busy_timeout = o._table_prefix, o._busy_timeout
    if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix):
        raise ValueError(
            f"table_prefix must be at most 32 letters, digits or '_', not starting with a "
            f"digit; got {table_prefix!r}"
        )
    _check_bool("echo", o._echo)
    _check_bool("pool_pre_ping", o._pool_pre_ping)
    _check_bool("auto_upgrade", o._auto_upgrade)
    if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
        raise TypeError(f"busy_timeout must be a number of seconds, got {busy_timeout!r}")
    if not 0 <= busy_timeout < 86_400:
        raise ValueError(f"busy_timeout must be from 0 to 86400 seconds, got {busy_timeout}")
    _check_int("pool_size", o._pool_size, 0)
    _check_int("max_overflow", o._max_overflow, -1)
    _check_int("pool_recycle", o._pool_recycle, -1)

    # A SQLite connection is a file handle: it cannot go stale, so it needs no ping.
    options: dict[str, Any] = {"echo": o._echo, "pool_pre_ping": o._pool_pre_ping and not sqlite}
    if not sqlite:
        options.update(_SERVER_POOL)
    if o._pool_recycle is not None:
        options["pool_recycle"] = o._pool_recycle
    for name, value in (("pool_size", o._pool_size), ("max_overflow", o._max_overflow)):
        if value is not None:
            if memory:
                raise ValueError(f"{name} does not apply to an in-memory SQLite database")
            options[name] = value
    if sqlite:
        options["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
        options["json_serializer"] = json_dumps  # the same text as json.dumps
        if memory:  # one shared connection, so every thread sees the same database
            options["poolclass"] = StaticPool
    elif parsed.get_backend_name() in MYSQL:
        # Writes: InnoDB's default REPEATABLE READ puts next-key (gap) locks on the child-row
        # DELETEs, a classic deadlock between concurrent writers. Reads still get a snapshot.
        options["isolation_level"] = "READ COMMITTED"
    try:
        parsed.get_dialect()  # an unknown database name
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ValueError(f"cannot use database URL {safe_url(parsed)}: {exc}") from None
    return options


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)
