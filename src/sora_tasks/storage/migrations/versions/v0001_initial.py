"""Create the tasks and reference-image tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from sora_tasks.storage._sql_schema import UTCDateTime

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_POLLABLE = "status IN ('QUEUED', 'PROCESSING') AND next_poll_at IS NOT NULL"


def upgrade() -> None:
    """Create both tables and every index the store's queries use."""
    op.create_table(
        "sora_tasks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("size", sa.String(32), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("reference_image", _JSON),
        sa.Column("image_sha256", sa.String(64)),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("result", _JSON),
        sa.Column("error", _JSON),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("submitted_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("render_seconds", sa.Float()),
        sa.Column("submission_id", sa.String(64)),
        sa.Column("polled_at", UTCDateTime()),
        sa.Column("progress_at", UTCDateTime()),
        sa.Column("start_progress", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_poll_at", UTCDateTime()),
        sa.Column("deadline_at", UTCDateTime()),
        sa.Column("poll_failures", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sora_tasks"),
        sa.UniqueConstraint("provider", "external_id", name="uq_sora_tasks_provider_external_id"),
    )
    for name, columns in [
        ("ix_sora_tasks_external_id", ["external_id"]),
        ("ix_sora_tasks_user_id_created_at_id", ["user_id", "created_at", "id"]),
        ("ix_sora_tasks_user_id_status_created_at_id", ["user_id", "status", "created_at", "id"]),
        ("ix_sora_tasks_render_seconds", ["render_seconds"]),
        ("ix_sora_tasks_created_at_id", ["created_at", "id"]),
        ("ix_sora_tasks_image_sha256", ["image_sha256"]),
    ]:
        op.create_index(name, "sora_tasks", columns)
    if op.get_context().dialect.name == "postgresql":
        # free room on every page lets a claim (which touches no indexed column) update the row
        # in place (a HOT update) instead of adding an entry to every index
        op.execute("ALTER TABLE sora_tasks SET (fillfactor = 85)")
    op.create_index(
        "ix_sora_tasks_due",
        "sora_tasks",
        ["next_poll_at", "id"],
        postgresql_where=sa.text(_POLLABLE),
        sqlite_where=sa.text(_POLLABLE),
    )
    op.create_table(
        "sora_images",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mime_type", sa.String(64), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_sora_images"),
    )


def downgrade() -> None:
    """Drop everything the upgrade created."""
    op.drop_table("sora_images")
    op.drop_table("sora_tasks")
