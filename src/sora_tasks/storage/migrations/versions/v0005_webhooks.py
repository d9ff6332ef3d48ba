"""Outgoing webhooks: the notify URL of a task, and the outbox of deliveries it owes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from sora_tasks.storage._sql_schema import UTCDateTime

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    """Add the notify columns (empty on existing tasks) and the outbox table."""
    op.add_column("sora_tasks", sa.Column("notify_url", sa.Text()))
    op.add_column(
        "sora_tasks",
        sa.Column("notify_progress", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "sora_webhooks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("armed_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime()),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_sora_webhooks"),
    )
    op.create_index("ix_sora_webhooks_task_id_seq", "sora_webhooks", ["task_id", "seq"])
    op.create_index("ix_sora_webhooks_state_created_at", "sora_webhooks", ["state", "created_at"])
    op.create_index(
        "ix_sora_webhooks_due",
        "sora_webhooks",
        ["next_attempt_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    """Drop the outbox table and the notify columns."""
    op.drop_table("sora_webhooks")
    with op.batch_alter_table("sora_tasks") as batch:
        batch.drop_column("notify_progress")
        batch.drop_column("notify_url")
