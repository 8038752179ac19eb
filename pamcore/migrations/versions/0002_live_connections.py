"""Count live proxy connections per session (available <-> active).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 05:57:25.596489
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("activity_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("live_connections", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("activity_sessions", schema=None) as batch_op:
        batch_op.drop_column("live_connections")
