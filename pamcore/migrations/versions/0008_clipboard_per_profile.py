"""A connection profile says whether remote desktop clients share their clipboard with the
target (off by default: the ``.rdp`` file then says ``redirectclipboard:i:0``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connection_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "clipboard_redirection", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("connection_profiles", schema=None) as batch_op:
        batch_op.drop_column("clipboard_redirection")
