"""Claims carry a heartbeat instead of a ten-minute lease, and each finished action is
recorded, so a claim whose owner died is taken over within seconds and resumed after the
last finished action (pamcore.services.claims).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A claim taken under the old lease has no heartbeat: it is stale at once, and the next
    # scheduler tick takes it over (the old lease meant nobody else was working on it).
    with op.batch_alter_table("activity_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.drop_column("claim_expires_at")
    op.create_table(
        "completed_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["activity_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "resource_id", "action_id"),
    )


def downgrade() -> None:
    op.drop_table("completed_actions")
    with op.batch_alter_table("activity_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_expires_at", sa.DateTime(), nullable=True))
        batch_op.drop_column("claim_heartbeat_at")
