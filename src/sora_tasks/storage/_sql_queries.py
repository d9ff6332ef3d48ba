"""Every SQL statement the SQL store runs, built in one place.

Statements that need the time use the database's clock (:func:`db_now`), never Python's, so that
leases mean the same thing on every machine sharing the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    CompoundSelect,
    Delete,
    Float,
    Insert,
    Integer,
    Interval,
    Select,
    String,
    Update,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from .._budgets import BudgetCheck
from .._models import TaskQuery
from .._states import ENGINE_PHASES, Phase
from ._base import ChangeCursor, decode_cursor
from ._sql_schema import UTCDateTime, images, in_phase, is_due, task_images, tasks, webhooks

__all__ = [
    "changes",
    "claim_due",
    "claim_submissions",
    "lock_budgets",
    "spent_within",
    "count_in_flight",
    "db_now",
    "delete_finished",
    "delete_finished_image_links",
    "delete_finished_webhooks",
    "delete_unused_images",
    "insert_image",
    "insert_task_images",
    "insert_task",
    "list_tasks",
    "lock_images",
    "lock_provider_admission",
    "select_image",
    "select_now",
    "select_task",
    "select_task_by_external_id",
    "stats_rows",
    "update_task",
]

# SQLite's clock has millisecond resolution; padding to six digits gives exactly the text
# format SQLAlchemy stores datetimes in, so the two compare correctly as strings
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def db_now(dialect: str, *, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's current time (plus an offset), as a SQL expression."""
    if dialect == "sqlite":
        return type_coerce(
            func.strftime(_SQLITE_FORMAT, "now", f"{plus_seconds:+.6f} seconds").concat("000"),
            UTCDateTime(),
        )
    now: ColumnElement[datetime] = func.now()
    if plus_seconds:
        now = now + literal(timedelta(seconds=plus_seconds), Interval())
    return type_coerce(now, UTCDateTime())


def select_now(dialect: str) -> Select[Any]:
    """``SELECT`` the database's current time."""
    return select(db_now(dialect))


def select_task(dialect: str, task_id: str) -> Select[Any]:
    """One task row by our id, with the database time alongside (as ``db_now``)."""
    return select(tasks, db_now(dialect).label("db_now")).where(tasks.c.id == task_id)


def select_task_by_external_id(external_id: str, provider: str | None) -> Select[Any]:
    """The task bound to a provider's job id; the newest one when no provider is given."""
    stmt = select(tasks).where(tasks.c.external_id == external_id)
    if provider is not None:
        return stmt.where(tasks.c.provider == provider)
    return stmt.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(1)


def insert_task(row: dict[str, Any]) -> Insert:
    """Insert one task row."""
    return tasks.insert().values(row)


def insert_image(dialect: str, row: dict[str, Any]) -> Insert:
    """Insert an image row unless one with the same hash is already stored."""
    if dialect == "postgresql":
        return postgresql.insert(images).values(row).on_conflict_do_nothing()
    return sqlite.insert(images).values(row).on_conflict_do_nothing()


def insert_task_images(rows: list[dict[str, Any]]) -> Insert:
    """Insert the rows naming a task's further input images."""
    return task_images.insert().values(rows)


def update_task(task_id: str, version: int, values: dict[str, Any]) -> Update:
    """Write ``values`` only if the task is still at ``version`` (zero rows otherwise)."""
    return tasks.update().where(tasks.c.id == task_id, tasks.c.version == version).values(values)


def list_tasks(query: TaskQuery) -> Select[Any]:
    """One page of tasks plus one row to tell whether another page follows (keyset paging)."""
    stmt = select(tasks).where(*_filters(query))
    created, ident = tasks.c.created_at, tasks.c.id
    if query.cursor is not None:
        after_created, after_id = decode_cursor(query.cursor)
        if query.order == "desc":
            stmt = stmt.where(
                created <= after_created, or_(created < after_created, ident < after_id)
            )
        else:
            stmt = stmt.where(
                created >= after_created, or_(created > after_created, ident > after_id)
            )
    order = (created.desc(), ident.desc()) if query.order == "desc" else (created, ident)
    return stmt.order_by(*order).limit(query.limit + 1)


def changes(user_id: str | None, after: ChangeCursor | None, limit: int) -> Select[Any]:
    """Tasks by ``(updated_at, id)`` after a place in the change feed (keyset paging)."""
    stmt = select(tasks)
    if user_id is not None:
        stmt = stmt.where(tasks.c.user_id == user_id)
    updated, ident = tasks.c.updated_at, tasks.c.id
    if after is not None:
        stmt = stmt.where(
            updated >= after.updated_at,
            or_(updated > after.updated_at, ident > after.task_id),
        )
    return stmt.order_by(updated, ident).limit(limit)


def stats_rows(dialect: str, user_id: str | None) -> CompoundSelect[*tuple[Any, ...]]:
    """Every figure of the stats, for one user or all, in one statement: one round trip (on a
    loaded event loop each one waits its turn) and one snapshot.

    Each row is ``(kind, k1, k2, k3, k4, v1, v2, v3, v4)``; the kinds are

    - ``status`` and ``provider``: the key in ``k1``, the task count in ``v1``;
    - ``cost``: user, provider, model and currency in ``k1`` to ``k4``, the summed cost in ``v1``;
    - ``renders``: the count and mean of the render times in ``v1`` and ``v2`` (PostgreSQL: their
      median and 90th percentile in ``v3`` and ``v4``, from ``percentile_cont``);
    - SQLite only, ``p50`` and ``p90``: the render times at the sorted positions ``floor((count -
      1) * f)`` and the next one in ``v1``, up to two rows each, walked in the render-time index
      from an offset the statement computes itself (never a sort of every completed task).
    """
    owned = [] if user_id is None else [tasks.c.user_id == user_id]
    seconds = tasks.c.render_seconds
    renders: list[ColumnElement[Any]] = [func.count(seconds), func.avg(seconds)]
    if dialect == "postgresql":
        renders += [
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.9).within_group(seconds),
        ]
    user: ColumnElement[Any] = tasks.c.user_id
    if dialect == "sqlite" and user_id is None:
        # grouped by the bare column, SQLite walks the (user_id, updated_at, id) index and looks
        # up every row; by an expression no index has, it scans the table: 8x less time
        user = user.concat(literal_column("''"))
    branches: list[Select[*tuple[Any, ...]]] = [
        _stats_row("status", [tasks.c.status], [func.count()], owned),
        _stats_row("provider", [tasks.c.provider], [func.count()], owned),
        _stats_row(
            "cost",
            [user, tasks.c.provider, tasks.c.model, tasks.c.cost_currency],
            [func.sum(tasks.c.cost_amount)],
            [*owned, tasks.c.cost_amount.is_not(None)],
        ),
    ]
    if dialect == "postgresql":
        branches.append(_stats_row("renders", [], renders, _rendered(user_id)))
        return union_all(*branches)
    # one count for the summary row and both offsets
    counted = select(*renders).where(*_rendered(user_id)).cte("rendered")
    branches.append(_stats_row("renders", [], list(counted.c), []))
    for kind, fraction in (("p50", 0.5), ("p90", 0.9)):
        offset = select(cast((counted.c[0] - 1) * fraction, Integer)).scalar_subquery()
        walk = (
            select(seconds.label("value"))
            .where(*_rendered(user_id))
            .order_by(seconds)
            .offset(offset)
            .limit(2)
            .subquery()
        )
        branches.append(
            select(literal(kind), *_NO_KEYS, cast(walk.c.value, Float), *_NO_VALUES[1:])
        )
    return union_all(*branches)


_NO_KEYS: Final = tuple(cast(null(), String) for _ in range(4))
_NO_VALUES: Final = tuple(cast(null(), Float) for _ in range(4))


def _stats_row(
    kind: str,
    keys: list[ColumnElement[Any]],
    values: list[ColumnElement[Any]],
    where: list[ColumnElement[bool]],
) -> Select[*tuple[Any, ...]]:
    stmt = select(
        literal(kind),
        *keys,
        *_NO_KEYS[len(keys) :],
        *(cast(value, Float) for value in values),
        *_NO_VALUES[len(values) :],
    ).where(*where)
    return stmt.group_by(*keys) if keys else stmt


def claim_due(
    dialect: str, *, owner: str, limit: int, lease_seconds: float, content: bool
) -> Update:
    """Lease up to ``limit`` due tasks to ``owner`` and return their rows.

    Due tasks are those in the engine's phases (:data:`~sora_tasks._states.ENGINE_PHASES`,
    without ``COLLECTING`` unless ``content``). PostgreSQL locks the chosen rows with
    ``FOR UPDATE SKIP LOCKED`` so concurrent claimers pick disjoint tasks; on SQLite that clause
    compiles to nothing and the caller's ``BEGIN IMMEDIATE`` serialises claimers instead. The
    outer lease check keeps the write conditional either way. Claiming bumps ``version``: it is
    the lease's fencing token.
    """
    now = db_now(dialect)
    lease_free = or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at <= now)
    phases = (
        ENGINE_PHASES if content else tuple(p for p in ENGINE_PHASES if p is not Phase.COLLECTING)
    )
    due = (
        select(tasks.c.id)
        .where(is_due(), tasks.c.next_poll_at <= now, lease_free, in_phase(*phases))
        .order_by(tasks.c.next_poll_at, tasks.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _lease(dialect, due, lease_free, owner=owner, lease_seconds=lease_seconds)


def claim_submissions(
    dialect: str, *, provider: str, owner: str, limit: int, lease_seconds: float
) -> Update:
    """Lease up to ``limit`` of ``provider``'s tasks that wait to be submitted, and return them.

    Highest priority first, then oldest. Locking and fencing work as in :func:`claim_due`.
    """
    now = db_now(dialect)
    lease_free = or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at <= now)
    waiting = (
        select(tasks.c.id)
        .where(
            is_due(),
            tasks.c.next_poll_at <= now,
            lease_free,
            tasks.c.provider == provider,
            in_phase(Phase.WAITING),
        )
        .order_by(tasks.c.priority.desc(), tasks.c.created_at, tasks.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _lease(dialect, waiting, lease_free, owner=owner, lease_seconds=lease_seconds)


def count_in_flight(dialect: str, provider: str, *, up_to: int) -> Select[Any]:
    """How many of ``provider``'s jobs are running or being sent, or tasks leased to be sent.

    Counting stops at ``up_to`` (the cap): past it the exact number does not matter, and a
    fleet with many jobs in flight would otherwise scan them all on every admission.
    """
    now = db_now(dialect)
    holding = (
        select(literal(1))
        .where(
            tasks.c.provider == provider,
            or_(
                in_phase(Phase.SUBMITTING, Phase.RENDERING),
                and_(in_phase(Phase.WAITING), tasks.c.lease_expires_at > now),
            ),
        )
        .limit(up_to)
        .subquery()
    )
    return select(func.count()).select_from(holding)


def lock_images(*, shared: bool) -> Select[Any]:
    """PostgreSQL: keep image inserts (shared) and unused-image deletion (exclusive) apart.

    Without it, a cleanup whose snapshot predates a new task could delete the image that task
    has just reused. SQLite needs nothing: ``BEGIN IMMEDIATE`` already serialises writers.
    """
    key = func.hashtext(literal("sora_tasks.images"))
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    return select(lock(key))


def lock_budgets() -> Select[Any]:
    """PostgreSQL: serialise budget checks (and the inserts they admit) until the transaction
    ends, across every process on the database."""
    return select(func.pg_advisory_xact_lock(func.hashtext(literal("sora_tasks.budgets"))))


def spent_within(dialect: str, check: BudgetCheck) -> Select[Any]:
    """The costs, in the limit's currency, of the tasks created within its window."""
    since = db_now(dialect, plus_seconds=-check.limit.window.total_seconds())
    stmt = select(func.coalesce(func.sum(tasks.c.cost_amount), 0.0)).where(
        tasks.c.cost_currency == check.limit.currency, tasks.c.created_at >= since
    )
    return stmt if check.user_id is None else stmt.where(tasks.c.user_id == check.user_id)


def lock_provider_admission(provider: str) -> Select[Any]:
    """PostgreSQL: serialise admission counts per provider until the transaction ends."""
    key = func.hashtext(literal("sora_tasks.admission:" + provider))
    return select(func.pg_advisory_xact_lock(key))


def _lease(
    dialect: str,
    chosen: Select[Any],
    lease_free: ColumnElement[bool],
    *,
    owner: str,
    lease_seconds: float,
) -> Update:
    return (
        tasks.update()
        .where(tasks.c.id.in_(chosen), lease_free)
        .values(
            lease_owner=owner,
            lease_expires_at=db_now(dialect, plus_seconds=lease_seconds),
            version=tasks.c.version + 1,
        )
        .returning(*tasks.c)
    )


def delete_finished(before: datetime) -> Delete:
    """Delete terminal tasks that finished before ``before``."""
    return tasks.delete().where(*_finished_before(before))


def delete_finished_image_links(before: datetime) -> Delete:
    """Delete the further-image rows of the tasks :func:`delete_finished` is about to delete."""
    doomed = select(tasks.c.id).where(*_finished_before(before))
    return task_images.delete().where(task_images.c.task_id.in_(doomed))


def delete_finished_webhooks(before: datetime) -> Delete:
    """Delete the outbox rows of the tasks :func:`delete_finished` is about to delete."""
    doomed = select(tasks.c.id).where(*_finished_before(before))
    return webhooks.delete().where(webhooks.c.task_id.in_(doomed))


def _finished_before(before: datetime) -> tuple[ColumnElement[bool], ...]:
    finished = func.coalesce(tasks.c.completed_at, tasks.c.updated_at)
    # a task whose webhook is still to be delivered stays until it is delivered or given up
    owing = exists().where(webhooks.c.task_id == tasks.c.id, webhooks.c.state == "pending")
    return in_phase(Phase.DONE), type_coerce(finished, UTCDateTime()) < before, ~owing


def delete_unused_images() -> Delete:
    """Delete input images no task points at any more."""
    first_frame = exists().where(tasks.c.image_sha256 == images.c.sha256)
    further = exists().where(task_images.c.sha256 == images.c.sha256)
    return delete(images).where(~first_frame, ~further)


def select_image(sha256: str) -> Select[Any]:
    """One stored reference image by content hash."""
    return select(images).where(images.c.sha256 == sha256)


def _filters(query: TaskQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.user_id is not None:
        conditions.append(tasks.c.user_id == query.user_id)
    if query.status is not None:
        conditions.append(tasks.c.status == query.status.value)
    if query.provider is not None:
        conditions.append(tasks.c.provider == query.provider)
    if query.media_type is not None:
        conditions.append(tasks.c.media_type == query.media_type.value)
    if query.created_after is not None:
        conditions.append(tasks.c.created_at >= query.created_after)
    if query.created_before is not None:
        conditions.append(tasks.c.created_at < query.created_before)
    return conditions


def _rendered(user_id: str | None) -> list[ColumnElement[bool]]:
    # render_seconds is set for COMPLETED tasks only: no status test, so the index covers it
    conditions: list[ColumnElement[bool]] = [tasks.c.render_seconds.is_not(None)]
    if user_id is not None:
        conditions.append(tasks.c.user_id == user_id)
    return conditions
