"""The ``sql`` backend's tables and the mapping between their rows and the records.

Three normalised tables per ``table_prefix``: ``audits``, ``findings`` and ``screenshots``
(the latter two cascade-deleted with their audit), and the event log. Column types are chosen
so that every record reads back ``==`` to what was written: doubles not floats, datetimes with
microseconds, JSON for the dict fields, long text where MySQL's TEXT would truncate, and ids
compared by code point on every database so that keyset pagination agrees with the other
backends. A change here needs a migration (docs/deploy.md).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa

import veritas_store as vs

MYSQL = ("mysql", "mariadb")
CHILDREN = ("findings", "screenshots")  # Audit fields stored in tables of their own

# --- column types ---------------------------------------------------------------------------


def _text_types(dialect: str | None) -> tuple[sa.types.TypeEngine[Any], sa.types.TypeEngine[Any]]:
    """The id and long-text column types of a dialect's tables. Ids are case-sensitive and
    sort by code point everywhere, as in the memory backend; MySQL's TEXT stops at 64 KiB, and
    a narrative or a URL may be longer. MySQL's own types only for MySQL: importing its
    dialect costs ~15 ms of every start-up (the PostgreSQL one, for its collation, a third of
    it; the generic VARCHAR carries the collation)."""
    if dialect in MYSQL:
        from sqlalchemy.dialects import mysql

        id_type = mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin")
        return id_type, mysql.LONGTEXT()
    return sa.String(128).with_variant(sa.VARCHAR(128, collation="C"), "postgresql"), sa.Text()


class _UtcDateTime(sa.TypeDecorator[datetime]):
    """Naive UTC with microseconds in the database, aware UTC datetimes in Python."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in MYSQL:  # plain DATETIME drops the microseconds
            from sqlalchemy.dialects import mysql

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
            if type(value) is datetime and value.tzinfo is UTC:  # a record's: drop "+00:00"
                return value.isoformat(" ", "microseconds")[:26]
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
        if dialect in MYSQL:
            sa.Index(
                f"ix_{prefix}audits_{name}_created_my", column, audits.c.created_at, audits.c.id,
                mysql_length={name: length},
            )  # fmt: skip
        else:
            sa.Index(
                f"ix_{prefix}audits_{name}_created",
                sa.func.substr(column, 1, length), audits.c.created_at, audits.c.id,
            )  # fmt: skip


def build_tables(
    prefix: str, dialect: str | None = None
) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """The tables of one prefix; the filter indexes depend on the ``dialect``'s name."""
    md = sa.MetaData()
    id_type, long_text = _text_types(dialect)
    # InnoDB: foreign keys. Only for MySQL: the options load its dialect to be checked.
    opts: dict[str, Any] = (
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"} if dialect in MYSQL else {}
    )
    audits = sa.Table(
        f"{prefix}audits",
        md,
        sa.Column("id", id_type, primary_key=True),
        sa.Column("url", long_text, nullable=False),
        sa.Column("tier", long_text, nullable=False),
        sa.Column("verdict_mode", long_text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _UtcDateTime(), nullable=False),
        sa.Column("started_at", _UtcDateTime()),
        sa.Column("completed_at", _UtcDateTime()),
        sa.Column("updated_at", _UtcDateTime(), nullable=False),
        sa.Column("trust_score", sa.Double()),  # MySQL FLOAT is single precision
        sa.Column("risk_level", long_text),
        sa.Column("narrative", long_text),
        sa.Column("signal_scores", sa.JSON(), nullable=False),
        sa.Column("site_type", long_text),
        sa.Column("site_type_confidence", sa.Double()),
        sa.Column("security_results", sa.JSON(), nullable=False),
        sa.Column("pages_scanned", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Double()),
        sa.Column("error_message", long_text),
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
            sa.Column("audit_id", id_type, fk, primary_key=True),
            sa.Column("position", sa.Integer(), primary_key=True),  # keeps the tuple's order
            *columns,
            **opts,
        )

    findings = child(
        "findings",
        sa.Column("category", long_text, nullable=False),
        sa.Column("pattern_type", long_text, nullable=False),
        sa.Column("severity", long_text, nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("description", long_text, nullable=False),
        sa.Column("screenshot_index", sa.Integer()),
        sa.Column("evidence", long_text),
        sa.Column("id", long_text),  # revision 0002
        sa.Column("plain_english", long_text),  # revision 0002
    )
    screenshots = child(
        "screenshots",
        sa.Column("idx", sa.Integer(), nullable=False),  # Screenshot.index ("index" is reserved)
        sa.Column("label", long_text, nullable=False),
        sa.Column("blob_key", long_text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", long_text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    # revision 0002: the event log, read in (audit_id, seq) order straight off its key
    sa.Table(
        f"{prefix}events",
        md,
        sa.Column(
            "audit_id", id_type, sa.ForeignKey(audits.c.id, ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("type", long_text, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _UtcDateTime(), nullable=False),
        **opts,
    )
    return md, audits, findings, screenshots


# Columns in the order of the model's fields, so that a row builds a record positionally.
AUDIT_FIELDS = tuple(a.name for a in attrs.fields(vs.Audit) if a.name not in CHILDREN)
FINDING_FIELDS = tuple(a.name for a in attrs.fields(vs.Finding))
# Screenshot's fields, with "index" (reserved in SQL) stored as "idx"
SCREENSHOT_COLUMNS = tuple(
    "idx" if a.name == "index" else a.name for a in attrs.fields(vs.Screenshot)
)
audit_values = operator.attrgetter(*AUDIT_FIELDS)
finding_values = operator.attrgetter(*FINDING_FIELDS)
screenshot_values = operator.attrgetter(*(a.name for a in attrs.fields(vs.Screenshot)))
_STATUS = AUDIT_FIELDS.index("status")
_EXTRA = AUDIT_FIELDS.index("extra")


# --- rows <-> records ------------------------------------------------------------------


def row_of(audit: vs.Audit) -> list[Any]:
    """The audit's column values in ``AUDIT_FIELDS`` order."""
    values = list(audit_values(audit))
    values[_STATUS] = audit.status.value
    return values


def record(
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
