"""The first schema: audits, findings and screenshots, with the listing indexes.

Revision ID: 0001
Revises: (none)

Databases created by veritas-store before it had migrations have exactly this schema; ``db
upgrade`` adopts them as this revision (see docs/deploy.md).

Written out in full (not imported from the live models) so that it keeps describing this
revision when the models move on. Table names take the backend's ``table_prefix``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MYSQL = ("mysql", "mariadb")
_ID = (
    sa.String(128)
    .with_variant(mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
    .with_variant(postgresql.VARCHAR(128, collation="C"), "postgresql")
)
_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)  # naive UTC, microseconds
_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _prefix() -> str:
    return str(op.get_context().opts["table_prefix"])


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}audits",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("url", _TEXT, nullable=False),
        sa.Column("tier", _TEXT, nullable=False),
        sa.Column("verdict_mode", _TEXT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME),
        sa.Column("completed_at", _TIME),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("trust_score", sa.Double()),
        sa.Column("risk_level", _TEXT),
        sa.Column("narrative", _TEXT),
        sa.Column("signal_scores", sa.JSON(), nullable=False),
        sa.Column("site_type", _TEXT),
        sa.Column("site_type_confidence", sa.Double()),
        sa.Column("security_results", sa.JSON(), nullable=False),
        sa.Column("pages_scanned", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Double()),
        sa.Column("error_message", _TEXT),
        **_TABLE,
    )
    op.create_index(f"ix_{p}audits_created", f"{p}audits", ["created_at", "id"])
    op.create_index(f"ix_{p}audits_status_created", f"{p}audits", ["status", "created_at", "id"])

    def child_key() -> list[sa.Column[object]]:
        parent = sa.ForeignKey(f"{p}audits.id", ondelete="CASCADE")
        return [
            sa.Column("audit_id", _ID, parent, primary_key=True),
            sa.Column("position", sa.Integer(), primary_key=True),  # keeps the tuple's order
        ]

    op.create_table(
        f"{p}findings",
        *child_key(),
        sa.Column("category", _TEXT, nullable=False),
        sa.Column("pattern_type", _TEXT, nullable=False),
        sa.Column("severity", _TEXT, nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("description", _TEXT, nullable=False),
        sa.Column("screenshot_index", sa.Integer()),
        sa.Column("evidence", _TEXT),
        **_TABLE,
    )
    op.create_table(
        f"{p}screenshots",
        *child_key(),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("label", _TEXT, nullable=False),
        sa.Column("blob_key", _TEXT, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", _TEXT, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        **_TABLE,
    )


def downgrade() -> None:
    p = _prefix()
    for name in ("screenshots", "findings", "audits"):
        op.drop_table(f"{p}{name}")
