"""Statements compiled once, with their columns' bind and result processors."""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from json import encoder as json_encoder
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import processors

from .sql_transactions import Runner

_TO_FLOAT = processors.to_float  # SQLAlchemy's bind processor of Float/Double on SQLite
_TYPE_CODE = operator.itemgetter(1)  # of a DB-API cursor.description entry

# --- prepared statements and transactions ---------------------------------------------------

# SQLAlchemy's per-call machinery (a Connection, its events, an execution context per statement)
# costs several times what a small statement costs on SQLite. The single-audit operations
# therefore compile their statements once and run them on a pooled DB-API connection, keeping
# SQLAlchemy's SQL, paramstyle, type conversions, pool and exception types. When someone
# listens (``echo``, a ``before_cursor_execute`` listener such as a tracer) the same SQL and
# parameters go through a SQLAlchemy Connection instead, so they see every statement.


class Prepared:
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

    def execute(self, tx: Runner, values: Sequence[Any]) -> int:
        """Run with one set of values; the number of rows it changed."""
        return tx.run(self.sql, self.params(values))[0]

    def execute_many(self, tx: Runner, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run once per row (``executemany``); rows are tuples of values in ``order``."""
        params = rows if self._as_is else [self.params(values) for values in rows]
        tx.run(self.sql, params, many=True)

    def rows(self, tx: Runner, values: Sequence[Any]) -> list[Sequence[Any]]:
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
    """The column type's bind processor; for JSON on SQLite with the default serializer, the
    serializer itself (SQLAlchemy's processor adds two layers of calls around it), and None
    (the optional JSON fields, JSON ``null``) written without a trip through it."""
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if process is _TO_FLOAT:
        # float(value) for a Double column (SQLite): every value bound here comes from a
        # record, whose float fields hold floats (or None) already, so it would change nothing.
        return None
    if process is None or not _plain_sqlite_json(kind, dialect):
        return process
    serialize = getattr(dialect, "_json_serializer", None) or json.dumps
    plain = (dict, list)  # a record's JSON: FrozenDict / FrozenList (subclasses), never a NULL

    def json_bind(value: Any) -> Any:
        if value is None:
            return "null"
        return serialize(value) if isinstance(value, plain) else process(value)

    return json_bind


def _result_processor(kind: sa.types.TypeEngine[Any], dialect: sa.Dialect, code: Any) -> Any:
    """The column type's result processor; for JSON on SQLite, ``json.loads`` itself on the
    text (SQLAlchemy's processor adds two layers of calls around it), and JSON ``null`` read
    as None without a trip through it (SQL NULL stays None as before)."""
    process = kind.result_processor(dialect, code)
    if process is None or not _plain_sqlite_json(kind, dialect):
        return process
    loads = json.loads

    def json_result(value: Any) -> Any:
        if type(value) is not str:
            return process(value)  # SQL NULL, or a number SQLite kept as one
        return None if value == "null" else loads(value)

    return json_result


def _plain_sqlite_json(kind: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> bool:
    """JSON stored as SQLite text with ``json.dumps``' text and ``json.loads``: None <-> "null"."""
    return (
        dialect.name == "sqlite"
        and isinstance(kind, sa.JSON)
        and not kind.none_as_null
        and getattr(dialect, "_json_serializer", None) in (None, json_dumps)
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


json_dumps = _one_shot_encoder()
