"""The SQL schema: the tasks table, the input-image tables and the indexes the queries use.

This metadata is the source the migrations are checked against (a test compares the migrated
database with it), so a change here needs a new revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    false,
    literal_column,
    or_,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from .._states import PHASES, Condition, Phase

__all__ = [
    "UTCDateTime",
    "VERSION_TABLE",
    "images",
    "in_phase",
    "is_due",
    "metadata",
    "task_images",
    "tasks",
]

VERSION_TABLE: Final = "sora_tasks_alembic_version"
# every task the engine still owes work carries a due time, and a finished one none (the state
# machine guarantees both), so the due index needs no status filter
_DUE_SQL: Final = "next_poll_at IS NOT NULL"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``. SQLite has no time zones, so the value is stored as naive
    UTC text, whose fixed-width format sorts like the instant it names (the database clock in
    ``_sql_queries`` produces the same format, so comparisons with it are exact).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; naive datetimes are taken to be UTC already."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Hand back an aware UTC datetime whatever the driver returned."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            value = datetime.fromisoformat(str(value))
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_Json = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# No index leads with status alone: SQLite's planner would pick it for the claim query's
# status filter and sort every active task, instead of walking the partial due index in order.
tasks = Table(
    "sora_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("external_id", String(255)),
    Column("user_id", String(255)),
    Column("status", String(16), nullable=False),
    Column("media_type", String(16), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("model", String(128), nullable=False),
    Column("size", String(32), nullable=False),
    Column("seconds", Integer, nullable=False),
    Column("aspect_ratio", String(16)),
    Column("resolution", String(16)),
    Column("negative_prompt", Text),
    Column("seed", BigInteger),
    Column("audio", Boolean),
    Column("reference_image", _Json),
    # the image's hash again, as a plain column, so finding unused images is an index lookup
    Column("image_sha256", String(64)),
    Column("last_frame", _Json),
    Column("reference_images", _Json, nullable=False, server_default=text("'[]'")),
    Column("provider_options", _Json, nullable=False, server_default=text("'{}'")),
    Column("progress", Integer, nullable=False),
    Column("result", _Json),
    Column("error", _Json),
    Column("metadata", _Json, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    # completed_at - created_at, set for COMPLETED tasks only (and null for every other status),
    # so that render-time percentiles are an index walk instead of a sort of every finished task
    Column("render_seconds", Float),
    Column("submission_id", String(64)),
    Column("polled_at", UTCDateTime),
    Column("progress_at", UTCDateTime),
    Column("start_progress", Integer, nullable=False, server_default=text("0")),
    Column("next_poll_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("poll_failures", Integer, nullable=False),
    Column("lease_owner", String(255)),
    Column("lease_expires_at", UTCDateTime),
    Column("content_pending", Boolean, nullable=False, server_default=false()),
    Column("version", Integer, nullable=False),
    Column("route", String(64)),
    Column("route_steps", _Json, nullable=False, server_default=text("'[]'")),
    Column("skipped", _Json, nullable=False, server_default=text("'[]'")),
    Column("cost", _Json),
    # the cost's amount and currency again, as plain columns, so totals are SQL sums
    Column("cost_amount", Float),
    Column("cost_currency", String(8)),
    UniqueConstraint("provider", "external_id"),
    Index(None, "external_id"),
    Index(None, "user_id", "created_at", "id"),
    Index(None, "user_id", "status", "created_at", "id"),
    Index(None, "render_seconds"),
    Index(None, "created_at", "id"),
    Index(None, "user_id", "updated_at", "id"),
    Index(None, "image_sha256"),
    Index(
        "ix_sora_tasks_due",
        "next_poll_at",
        "id",
        postgresql_where=text(_DUE_SQL),
        sqlite_where=text(_DUE_SQL),
    ),
)

images = Table(
    "sora_images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("mime_type", String(64), nullable=False),
    Column("byte_size", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


# the other input images of a task (last frame, reference images), so that finding unused images
# stays an index lookup; the first frame keeps its own column above
task_images = Table(
    "sora_task_images",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Index(None, "sha256"),
)


def is_due() -> ColumnElement[bool]:
    """The predicate of the partial due index, which a claim must repeat for the index to serve.

    Both planners use a partial index only when they can prove the query implies its predicate.
    """
    return tasks.c.next_poll_at.is_not(None)


def in_phase(*phases: Phase) -> ColumnElement[bool]:
    """The SQL form of :data:`sora_tasks._states.PHASES` for ``phases``, with literal values.

    Literals rather than bound parameters keep one statement text per phase set, and let the
    planners match the conditions against indexes.
    """
    return or_(
        *(
            and_(*(_condition(tasks.c[name], cond) for name, cond in conditions.items()))
            for phase in phases
            for conditions in PHASES[phase]
        )
    )


def _condition(column: ColumnElement[Any], condition: Condition) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if condition.null is not None:
        parts.append(column.is_(None) if condition.null else column.is_not(None))
    if condition.values is not None:
        parts.append(_values(column, condition.values))
    return and_(*parts)


def _values(column: ColumnElement[Any], values: frozenset[object]) -> ColumnElement[bool]:
    if all(isinstance(value, bool) for value in values):
        return or_(*(column.is_(true() if value else false()) for value in sorted(values, key=str)))
    words = sorted(str(value) for value in values)
    return column.in_([literal_column(f"'{word}'") for word in words])
