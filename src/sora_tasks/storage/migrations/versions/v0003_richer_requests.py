"""Record the richer requests: frame forms, negative prompt, seed, audio, more input images.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add the request columns (empty on existing tasks) and the table of further input images."""
    for column in (
        sa.Column("aspect_ratio", sa.String(16)),
        sa.Column("resolution", sa.String(16)),
        sa.Column("negative_prompt", sa.Text()),
        sa.Column("seed", sa.BigInteger()),
        sa.Column("audio", sa.Boolean()),
        sa.Column("last_frame", _JSON),
        sa.Column("reference_images", _JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("provider_options", _JSON, nullable=False, server_default=sa.text("'{}'")),
    ):
        op.add_column("sora_tasks", column)
    op.create_table(
        "sora_task_images",
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "sha256", name="pk_sora_task_images"),
    )
    op.create_index("ix_sora_task_images_sha256", "sora_task_images", ["sha256"])


def downgrade() -> None:
    """Drop the request columns and the table of further input images."""
    op.drop_index("ix_sora_task_images_sha256", table_name="sora_task_images")
    op.drop_table("sora_task_images")
    # SQLite drops columns only by rebuilding the table, which batch mode does
    with op.batch_alter_table("sora_tasks") as batch:
        for column in (
            "provider_options",
            "reference_images",
            "last_frame",
            "audio",
            "seed",
            "negative_prompt",
            "resolution",
            "aspect_ratio",
        ):
            batch.drop_column(column)
