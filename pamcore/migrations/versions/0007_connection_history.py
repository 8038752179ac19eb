"""Connections are kept once closed (``closed_at``, ``close_reason``; ``started_at`` is now
``opened_at``) and their ids are never reused (AUTOINCREMENT on SQLite), so an audit event
or a recording names one connection for good.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate() -> str:
    """SQLite takes AUTOINCREMENT only when the table is created: copy it over."""
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table(
        "live_connections",
        schema=None,
        recreate=_recreate(),
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch_op:
        batch_op.alter_column("started_at", new_column_name="opened_at")
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("close_reason", sa.String(length=256), nullable=False, server_default="")
        )
        batch_op.create_index(
            batch_op.f("ix_live_connections_closed_at"), ["closed_at"], unique=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM live_connections WHERE closed_at IS NOT NULL")
    with op.batch_alter_table(
        "live_connections", schema=None, recreate=_recreate(), table_kwargs={}
    ) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_connections_closed_at"))
        batch_op.drop_column("close_reason")
        batch_op.drop_column("closed_at")
        batch_op.alter_column("opened_at", new_column_name="started_at")
