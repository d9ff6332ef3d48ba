"""Index the change feed: a user's tasks by ``(updated_at, id)``, for live events.

The live-event routes read "this user's tasks changed since" every second or so per open
stream; without the index each read would sort all of the user's tasks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_NAME = "ix_sora_tasks_user_id_updated_at_id"


def upgrade() -> None:
    """Create the change-feed index."""
    op.create_index(_NAME, "sora_tasks", ["user_id", "updated_at", "id"])


def downgrade() -> None:
    """Drop the change-feed index."""
    op.drop_index(_NAME, "sora_tasks")
