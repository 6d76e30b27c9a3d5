"""The whole service result: new audit and finding columns, and the filtered-listing indexes.

Revision ID: 0002
Revises: 0001

Adds the ``events`` table (an audit's event log, keyed by audit and sequence number),
``recommendations``, ``domain_info``, ``overrides``, ``errors`` and ``extra`` (JSON) to
the audits, ``id`` and ``plain_english`` to the findings, and indexes for listings filtered by
``risk_level`` or ``url``. Existing rows keep every value; their new fields read back as None
(``extra`` as ``{}``, filled here). Written out in full, like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MYSQL = ("mysql", "mariadb")
_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
_JSON_COLUMNS = ("recommendations", "domain_info", "overrides", "errors", "extra")
_PREFIX_LENGTH = {"risk_level": 64, "url": 255}  # as plugins/sql.py FILTER_PREFIX


def _prefix() -> str:
    return str(op.get_context().opts["table_prefix"])


_ID = (
    sa.String(128)
    .with_variant(mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
    .with_variant(postgresql.VARCHAR(128, collation="C"), "postgresql")
)
_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}events",
        sa.Column("audit_id", _ID, sa.ForeignKey(f"{p}audits.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("type", _TEXT, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )  # fmt: skip
    for name in _JSON_COLUMNS:
        op.add_column(f"{p}audits", sa.Column(name, sa.JSON()))
    op.add_column(f"{p}findings", sa.Column("id", _TEXT))
    op.add_column(f"{p}findings", sa.Column("plain_english", _TEXT))
    audits = sa.table(f"{p}audits", sa.column("extra", sa.JSON()))
    op.execute(audits.update().values(extra={}))
    mysql_like = op.get_bind().dialect.name in _MYSQL
    for name, length in _PREFIX_LENGTH.items():
        if mysql_like:  # no expression indexes on MariaDB; a prefix index is the same thing
            op.create_index(
                f"ix_{p}audits_{name}_created_my", f"{p}audits", [name, "created_at", "id"],
                mysql_length={name: length},
            )  # fmt: skip
        else:
            op.create_index(
                f"ix_{p}audits_{name}_created", f"{p}audits",
                [sa.text(f"substr({name}, 1, {length})"), "created_at", "id"],
            )  # fmt: skip


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}events")
    mysql_like = op.get_bind().dialect.name in _MYSQL
    for name in _PREFIX_LENGTH:
        op.drop_index(f"ix_{p}audits_{name}_created{'_my' if mysql_like else ''}", f"{p}audits")
    with op.batch_alter_table(f"{p}findings") as batch:
        batch.drop_column("plain_english")
        batch.drop_column("id")
    with op.batch_alter_table(f"{p}audits") as batch:
        for name in reversed(_JSON_COLUMNS):
            batch.drop_column(name)
