"""A connection profile says whether one person may decide several tiers of a session
(off by default: tiers exist so that different people decide).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connection_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "approver_may_decide_several_tiers",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("connection_profiles", schema=None) as batch_op:
        batch_op.drop_column("approver_may_decide_several_tiers")
