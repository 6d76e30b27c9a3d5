"""``list()`` of the ``sql`` backend: the keyset query with its filters, and loading a page's
records with their children in a few IN queries (no N+1)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

import veritas_store as vs

from .sql_tables import FILTER_PREFIX, FINDING_FIELDS, MYSQL, SCREENSHOT_COLUMNS, record

_IN_BATCH = 500  # ids per IN (...) when loading children: stays far below every bind limit


def child_columns(table: sa.Table, fields: Sequence[str]) -> list[sa.Column[Any]]:
    """``audit_id``, then the model's fields in order."""
    return [table.c.audit_id, *(table.c[name] for name in fields)]


def listing_query(
    audits: sa.Table,
    columns: Sequence[sa.Column[Any]],
    query_filter: vs.ListFilter,
    cursor: str | None,
    dialect: str,
) -> sa.Select[Any]:
    """The SELECT of one page's audit rows (the caller adds the LIMIT)."""
    c = audits.c
    newest = query_filter.order == "newest"
    query = sa.select(*columns).order_by(
        *((c.created_at.desc(), c.id.desc()) if newest else (c.created_at, c.id))
    )
    if query_filter.status is not None:
        query = query.where(c.status == query_filter.status.value)
    for name, length in FILTER_PREFIX.items():
        value = getattr(query_filter, name)
        if value is None:
            continue
        if dialect in MYSQL:  # seeks in its prefix index by itself
            query = query.where(c[name] == value)
            continue
        # The others seek on the indexed expression (literal 1 and length, as in the index).
        # A value shorter than the prefix matches the prefix only if it is the whole text;
        # a longer one needs the full comparison too (which SQLite's planner then ignores
        # the expression index for, so it is left out when it is not needed).
        indexed = sa.func.substr(c[name], sa.literal_column("1"), sa.literal_column(str(length)))
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
    return query


def load_audits(
    conn: sa.Connection,
    rows: Sequence[Sequence[Any]],
    findings_table: sa.Table,
    screenshots_table: sa.Table,
) -> list[vs.Audit]:
    """Records for audit rows, with their children loaded in a few IN queries."""
    ids = [row[0] for row in rows]
    children: list[dict[str, list[Sequence[Any]]]] = []
    for table, fields in (
        (findings_table, FINDING_FIELDS),
        (screenshots_table, SCREENSHOT_COLUMNS),
    ):
        of: dict[str, list[Sequence[Any]]] = defaultdict(list)
        for start in range(0, len(ids), _IN_BATCH):
            query = (
                sa.select(*child_columns(table, fields))
                .where(table.c.audit_id.in_(ids[start : start + _IN_BATCH]))
                .order_by(table.c.position)
            )
            for child in conn.execute(query):
                of[child[0]].append(child)
        children.append(of)
    findings, screenshots = children
    return [record(row, findings[row[0]], screenshots[row[0]]) for row in rows]
