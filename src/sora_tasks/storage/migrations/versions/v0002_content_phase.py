"""Record the content phase: a COMPLETED task whose video is still to be saved stays due.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_OLD_DUE = "status IN ('QUEUED', 'PROCESSING') AND next_poll_at IS NOT NULL"
_NEW_DUE = "next_poll_at IS NOT NULL"


def upgrade() -> None:
    """Add ``content_pending``; the due index now holds every task the engine still owes work."""
    op.add_column(
        "sora_tasks",
        sa.Column("content_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # the index no longer filters on status, so a finished task must carry no due time
    op.execute(
        "UPDATE sora_tasks SET next_poll_at = NULL, lease_owner = NULL, lease_expires_at = NULL "
        "WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND next_poll_at IS NOT NULL"
    )
    _due_index(_NEW_DUE)


def downgrade() -> None:
    """Back to the status-filtered due index, without the content phase."""
    _due_index(_OLD_DUE)
    op.drop_column("sora_tasks", "content_pending")


def _due_index(where: str) -> None:
    op.drop_index("ix_sora_tasks_due", table_name="sora_tasks")
    op.create_index(
        "ix_sora_tasks_due",
        "sora_tasks",
        ["next_poll_at", "id"],
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )
