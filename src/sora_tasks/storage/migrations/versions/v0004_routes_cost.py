"""Record routes and cost: the route a task took, the providers it passed over, what it costs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add the route and cost columns (empty on existing tasks)."""
    for column in (
        sa.Column("route", sa.String(64)),
        sa.Column("route_steps", _JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("skipped", _JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("cost", _JSON),
        sa.Column("cost_amount", sa.Float()),
        sa.Column("cost_currency", sa.String(8)),
    ):
        op.add_column("sora_tasks", column)


def downgrade() -> None:
    """Drop the route and cost columns."""
    with op.batch_alter_table("sora_tasks") as batch:
        for column in (
            "cost_currency",
            "cost_amount",
            "cost",
            "skipped",
            "route_steps",
            "route",
        ):
            batch.drop_column(column)
