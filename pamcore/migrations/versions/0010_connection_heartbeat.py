"""Connections carry their node's heartbeat (``heartbeat_at``), so a node that stops
answering has its connections closed by the others (docs/design/session-changes.md).
Open rows start from their opening time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _batch() -> Any:
    """SQLite alters a column only by copying the table: keep its AUTOINCREMENT (0007)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    return op.batch_alter_table(
        "live_connections",
        schema=None,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    )


def upgrade() -> None:
    op.add_column("live_connections", sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE live_connections SET heartbeat_at = opened_at")
    with _batch() as batch_op:
        batch_op.alter_column("heartbeat_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index(batch_op.f("ix_live_connections_node"), ["node"], unique=False)


def downgrade() -> None:
    with _batch() as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_connections_node"))
        batch_op.drop_column("heartbeat_at")
