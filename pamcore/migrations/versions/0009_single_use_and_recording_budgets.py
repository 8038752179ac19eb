"""Single-use tokens and tickets, and per-session recording budgets, kept in the database
so every proxy node agrees on them and they survive a restart
(docs/design/single-use.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "single_use",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("spent_at", sa.DateTime(), nullable=True),
        sa.Column("spent_by", sa.String(length=128), nullable=True),
        sa.Column("grant", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "digest", name=op.f("pk_single_use")),
    )
    with op.batch_alter_table("single_use", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_single_use_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "recording_budgets",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("reserved_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["activity_sessions.id"],
            name=op.f("fk_recording_budgets_session_id_activity_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_recording_budgets")),
    )


def downgrade() -> None:
    op.drop_table("recording_budgets")
    with op.batch_alter_table("single_use", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_single_use_expires_at"))
    op.drop_table("single_use")
