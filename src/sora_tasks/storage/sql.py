"""A :class:`TaskStore` on SQLAlchemy's async engine: SQLite embedded, PostgreSQL for fleets."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Unpack

import anyio
from sqlalchemy import URL, RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection

from .._budgets import BudgetCheck
from .._exceptions import (
    ConflictError,
    DuplicateExternalIdError,
    StoreNotMigratedError,
    StoreUnavailableError,
    TaskNotFoundError,
)
from .._models import ImageData, Task, TaskPage, TaskQuery, TaskStats, TaskStatus
from .._outbox import WebhookDelivery, WebhookState, events_for
from .._states import TaskChanges, apply
from .._telemetry import record_connection_wait, wait_started
from . import _sql_outbox as ob
from . import _sql_queries as q
from ._base import ChangeCursor, check_budget, encode_cursor, stats_from
from ._lanes import is_engine_work
from ._sql_engine import BEGIN_OPTION, engine_slots, make_engine, masked_url, resolve_url
from ._sql_errors import missing_schema, unavailable_kind
from ._sql_migrate import schema_behind, upgrade_to_head
from ._sql_rows import (
    changed_columns,
    further_images,
    image_from_row,
    image_to_row,
    task_from_row,
    task_to_row,
)
from ._sql_turns import ConnectionTurns

__all__ = ["SQLStore"]

_AUTOCOMMIT: dict[str, dict[str, Any]] = {
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
    "sqlite": {BEGIN_OPTION: None},
}


class SQLStore:
    """Tasks in a SQL database: an embedded SQLite file by default, PostgreSQL for many workers.

    ``url`` is a SQLAlchemy URL (``sqlite+aiosqlite:///tasks.db``,
    ``postgresql+asyncpg://user:password@host/db``); without one, a file in the user's data
    directory is used. ``engine_kwargs`` go to :func:`sqlalchemy.ext.asyncio.create_async_engine`.
    With ``create`` (the default) an SQLite database is created and migrated on first use;
    PostgreSQL is migrated explicitly with :meth:`migrate`, once per deployment.

    Due tasks are handed out under leases whose times come from the database clock, and the
    ``version`` column is the fencing token every conditional write checks.

    API calls made in the same process as a polling engine stay fast while it works:
    ``reserved_connections`` of the pool are kept from the engine (by default the overflow, 10 of
    the default 5 + 10, and at least one; the engine keeps at least one); while API calls are
    being served the engine runs at most two transactions at once, and each waits up to
    ``api_first`` seconds for open API transactions to end (``0`` turns both off). On SQLite,
    writers of the process take turns for the database's single write lock before they take a
    connection, never while holding one. Reads run without a transaction of their own: each
    statement sees what is committed when it starts.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        create: bool = True,
        reserved_connections: int | None = None,
        api_first: float = 0.05,
        **engine_kwargs: Any,
    ) -> None:
        if api_first < 0:
            raise ValueError(f"api_first must be 0 seconds or more, not {api_first}")
        self._url = resolve_url(url)
        self._engine = make_engine(self._url, **engine_kwargs)
        self._dialect = self._engine.dialect.name
        self._turns = ConnectionTurns(
            engine_slots=engine_slots(self._engine.pool, reserved_connections),
            single_writer=self._dialect == "sqlite",
            api_first=api_first,
        )
        self._migrate_on_first_use = create and self._dialect == "sqlite"
        self._schema_checked = False
        self._ready_lock = anyio.Lock()
        self._location_checked = False

    def __repr__(self) -> str:
        return f"SQLStore(url={masked_url(self._url)!r})"

    async def migrate(self) -> None:
        """Create the tables or bring them up to date (Alembic, shipped in the package)."""
        async with self._transaction(write=True) as conn:
            await conn.run_sync(upgrade_to_head)
        self._migrate_on_first_use = False
        self._schema_checked = True

    async def now(self) -> datetime:
        """The database's clock, timezone-aware UTC."""
        async with self._read() as conn:
            now: datetime = (await conn.execute(q.select_now(self._dialect))).scalar_one()
        return now

    async def insert(self, task: Task, *, images: Sequence[ImageData] = ()) -> Task:
        """Store a new task; see :meth:`TaskStore.insert`."""
        try:
            async with self._write() as conn:
                await self._insert_rows(conn, task, images)
        except IntegrityError:
            await self._raise_insert_conflict(task)
        return task

    async def _insert_rows(
        self, conn: AsyncConnection, task: Task, images: Sequence[ImageData]
    ) -> None:
        if images and self._dialect == "postgresql":
            await conn.execute(q.lock_images(shared=True))
        for image in images:
            await conn.execute(q.insert_image(self._dialect, image_to_row(image)))
        await conn.execute(q.insert_task(task_to_row(task)))
        if links := further_images(task):
            await conn.execute(q.insert_task_images(links))

    async def insert_within_budget(
        self,
        task: Task,
        *,
        checks: Sequence[BudgetCheck],
        images: Sequence[ImageData] = (),
    ) -> list[float]:
        """See :meth:`TaskStore.insert_within_budget`.

        The sums and the insert share one transaction that holds the budget lock (an advisory
        lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent admissions are
        checked one after another, each seeing the ones before it.
        """
        try:
            async with self._write() as conn:
                if self._dialect == "postgresql":
                    await conn.execute(q.lock_budgets())
                spent = [
                    float((await conn.execute(q.spent_within(self._dialect, check))).scalar_one())
                    for check in checks
                ]
                check_budget(task, checks, spent)
                await self._insert_rows(conn, task, images)
        except IntegrityError:
            await self._raise_insert_conflict(task)
        return spent

    async def get(self, task_id: str) -> Task:
        """See :meth:`TaskStore.get`."""
        async with self._read() as conn:
            row = (await conn.execute(q.select_task(self._dialect, task_id))).mappings().first()
        if row is None:
            raise TaskNotFoundError(task_id)
        return task_from_row(row)

    async def get_by_external_id(self, external_id: str, *, provider: str | None = None) -> Task:
        """See :meth:`TaskStore.get_by_external_id`."""
        async with self._read() as conn:
            stmt = q.select_task_by_external_id(external_id, provider)
            row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            raise TaskNotFoundError(external_id)
        return task_from_row(row)

    async def update(
        self, task_id: str, *, expected_version: int | None = None, **changes: Unpack[TaskChanges]
    ) -> Task:
        """Read, apply the state machine, write back only if nobody wrote in between.

        See :meth:`TaskStore.update`.
        """
        async with self._write() as conn:
            row = (await conn.execute(q.select_task(self._dialect, task_id))).mappings().first()
            if row is None:
                raise TaskNotFoundError(task_id)
            current = task_from_row(row)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"task {task_id} is at version {current.version}, not {expected_version}"
                )
            updated = apply(current, changes, now=row["db_now"])
            stmt = q.update_task(task_id, current.version, changed_columns(current, updated))
            try:
                written = await conn.execute(stmt)
            except IntegrityError:
                raise DuplicateExternalIdError(
                    f"{updated.provider} job {updated.external_id!r} is already bound to "
                    "another task"
                ) from None
            if written.rowcount != 1:
                raise ConflictError(f"task {task_id} changed while it was being updated")
            if owed := events_for(current, updated, now=row["db_now"]):
                await conn.execute(ob.insert_webhooks(owed))
        return updated

    async def list(self, query: TaskQuery) -> TaskPage:
        """See :meth:`TaskStore.list`."""
        async with self._read() as conn:
            rows = (await conn.execute(q.list_tasks(query))).mappings().all()
        items = [task_from_row(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return TaskPage(items=items, next_cursor=encode_cursor(items[-1]) if more else None)

    async def changes(
        self, *, user_id: str | None, after: ChangeCursor | None, limit: int
    ) -> Sequence[Task]:
        """See :meth:`TaskStore.changes`: keyset reads on the ``(user_id, updated_at, id)``
        index. Everyone's changes (``user_id=None``) have no index of their own: a sort of all
        tasks, for tools rather than for a stream that reads every second.
        """
        if limit <= 0:
            return []
        async with self._read() as conn:
            rows = (await conn.execute(q.changes(user_id, after, limit))).mappings().all()
        return [task_from_row(row) for row in rows]

    async def stats(self, *, user_id: str | None = None) -> TaskStats:
        """Counts and render times from SQL aggregates; see :meth:`TaskStore.stats`."""
        async with self._read() as conn:
            rows = (await conn.execute(q.stats_rows(self._dialect, user_id))).all()
        by_kind: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_kind.setdefault(row[0], []).append(tuple(row))
        counts = stats_from(
            {TaskStatus(row[1]): int(row[5]) for row in by_kind.get("status", ())},
            {str(row[1]): int(row[5]) for row in by_kind.get("provider", ())},
            (),
            [(row[1], row[2], row[3], row[4], float(row[5])) for row in by_kind.get("cost", ())],
        )
        return counts.model_copy(update=_renders(by_kind))

    async def get_image(self, sha256: str) -> ImageData:
        """See :meth:`TaskStore.get_image`."""
        async with self._read() as conn:
            row = (await conn.execute(q.select_image(sha256))).mappings().first()
        if row is None:
            raise LookupError(f"no stored image with sha256 {sha256}")
        return image_from_row(row)

    async def delete_finished(self, *, before: datetime) -> int:
        """See :meth:`TaskStore.delete_finished`."""
        async with self._write() as conn:
            await conn.execute(q.delete_finished_webhooks(before))
            await conn.execute(q.delete_finished_image_links(before))
            deleted = await conn.execute(q.delete_finished(before))
            if self._dialect == "postgresql":
                await conn.execute(q.lock_images(shared=False))
            await conn.execute(q.delete_unused_images())
        return deleted.rowcount

    async def claim_due(
        self, *, owner: str, limit: int, lease_seconds: float, content: bool = False
    ) -> Sequence[Task]:
        """Lease due tasks with one conditional ``UPDATE … RETURNING``.

        See :meth:`TaskStore.claim_due`.
        """
        if limit <= 0:
            return []
        stmt = q.claim_due(
            self._dialect, owner=owner, limit=limit, lease_seconds=lease_seconds, content=content
        )
        async with self._write() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        claimed = [task_from_row(row) for row in rows]
        return sorted(claimed, key=lambda task: (task.next_poll_at, task.id))

    async def claim_submissions(
        self,
        *,
        provider: str,
        owner: str,
        limit: int,
        lease_seconds: float,
        max_in_flight: int | None = None,
    ) -> Sequence[Task]:
        """Lease tasks waiting to be submitted; see :meth:`TaskStore.claim_submissions`.

        The in-flight count and the claim share one transaction, serialised per provider (an
        advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two workers admitting at
        once cannot both take the last free place.
        """
        if limit <= 0:
            return []
        async with self._write() as conn:
            if self._dialect == "postgresql":
                await conn.execute(q.lock_provider_admission(provider))
            if max_in_flight is not None:
                in_flight = (
                    await conn.execute(
                        q.count_in_flight(self._dialect, provider, up_to=max_in_flight)
                    )
                ).scalar_one()
                limit = min(limit, max_in_flight - in_flight)
            rows: Sequence[RowMapping] = ()
            if limit > 0:
                stmt = q.claim_submissions(
                    self._dialect,
                    provider=provider,
                    owner=owner,
                    limit=limit,
                    lease_seconds=lease_seconds,
                )
                rows = (await conn.execute(stmt)).mappings().all()
        claimed = [task_from_row(row) for row in rows]
        return sorted(claimed, key=lambda task: (-task.priority, task.created_at, task.id))

    async def claim_webhooks(
        self, *, owner: str, limit: int, lease_seconds: float
    ) -> Sequence[WebhookDelivery]:
        """Lease due deliveries with one conditional ``UPDATE … RETURNING``.

        See :meth:`TaskStore.claim_webhooks`.
        """
        if limit <= 0:
            return []
        stmt = ob.claim_webhooks(
            self._dialect, owner=owner, limit=limit, lease_seconds=lease_seconds
        )
        async with self._write() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        claimed = [ob.delivery_from_row(row) for row in rows]
        return sorted(claimed, key=lambda row: (row.next_attempt_at, row.id))

    async def settle_webhook(
        self,
        delivery_id: str,
        *,
        owner: str,
        state: WebhookState,
        error: str | None = None,
        retry_in: float = 0.0,
    ) -> None:
        """See :meth:`TaskStore.settle_webhook`."""
        stmt = ob.settle_webhook(
            self._dialect, delivery_id, owner=owner, state=state, error=error, retry_in=retry_in
        )
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return
            found = (await conn.execute(ob.exists_webhook(delivery_id))).first()
        if found is None:
            raise LookupError(f"no webhook delivery {delivery_id}")
        raise ConflictError(f"webhook delivery {delivery_id} is no longer held by {owner}")

    async def list_webhooks(
        self,
        *,
        state: WebhookState | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[WebhookDelivery]:
        """See :meth:`TaskStore.list_webhooks`."""
        async with self._read() as conn:
            rows = (await conn.execute(ob.list_webhooks(state, task_id, limit))).mappings().all()
        return [ob.delivery_from_row(row) for row in rows]

    async def retry_webhooks(self, delivery_ids: Sequence[str] | None = None) -> int:
        """See :meth:`TaskStore.retry_webhooks`."""
        async with self._write() as conn:
            done = await conn.execute(ob.retry_webhooks(self._dialect, delivery_ids))
        return done.rowcount

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def _raise_insert_conflict(self, task: Task) -> None:
        async with self._read() as conn:
            if (await conn.execute(q.select_task(self._dialect, task.id))).first() is not None:
                raise ConflictError(f"a task with id {task.id!r} already exists") from None
        raise DuplicateExternalIdError(
            f"{task.provider} job {task.external_id!r} is already bound to another task"
        ) from None

    async def _ready(self) -> None:
        # once per store, not per call: missing tables and columns found later are mapped
        # from the driver's errors in _translated
        if self._schema_checked:
            return
        async with self._ready_lock:
            if not self._schema_checked:
                await self._prepare_schema()

    async def _prepare_schema(self) -> None:
        if self._migrate_on_first_use:
            await self.migrate()
            return
        async with self._transaction(write=False) as conn:
            behind = await conn.run_sync(schema_behind)
        if behind is not None:
            raise StoreNotMigratedError(self._not_migrated_message(behind))
        self._schema_checked = True

    def _check_location(self) -> None:
        # a missing directory makes the SQLite driver fail from its worker thread, noisily
        database = self._url.database
        if (
            self._dialect == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
            and not Path(database).parent.is_dir()
        ):
            raise StoreUnavailableError(
                f"the directory of the SQLite database {database!r} does not exist"
            )
        self._location_checked = True

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        await self._ready()
        async with self._transaction(write=False) as conn:
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        await self._ready()
        async with self._transaction(write=True) as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        if not self._location_checked:
            self._check_location()
        started = wait_started()
        async with (
            self._turns.take(write=write),
            self._connected(write=write, started=started) as conn,
        ):
            yield conn

    @asynccontextmanager
    async def _connected(
        self, *, write: bool, started: float | None
    ) -> AsyncIterator[AsyncConnection]:
        committing = False
        try:
            # a statement interrupted by cancellation leaves the driver's connection to be
            # torn down in the background, which can outlive the event loop: let it finish
            with anyio.CancelScope(shield=True):
                async with self._engine.connect() as conn:
                    if started is not None:
                        record_connection_wait(started, engine=is_engine_work())
                    if write and self._dialect == "sqlite":
                        # IMMEDIATE takes the write lock at BEGIN, so a read-then-write
                        # transaction waits its turn instead of failing to upgrade its lock
                        await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    elif not write and (autocommit := _AUTOCOMMIT.get(self._dialect)):
                        # a read needs no BEGIN and COMMIT of its own: each of its statements sees
                        # committed data, as in PostgreSQL's READ COMMITTED, and two round trips
                        # (SQLite: thread hops) fewer is what a loaded event loop charges most for
                        await conn.execution_options(**autocommit)
                    async with conn.begin():
                        yield conn
                        committing = True
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            translated = self._translated(exc, write=write, committing=committing)
            if translated is None:
                raise
            raise translated from exc

    def _translated(
        self, exc: Exception, *, write: bool, committing: bool
    ) -> StoreUnavailableError | None:
        """The library's error for a driver failure; None when it is not about the database's
        reachability or schema (integrity and programming errors stay as they are).
        """
        # the driver's text may carry connection details: name the kind of failure only
        missing = missing_schema(exc)
        if missing is not None:
            return StoreNotMigratedError(self._not_migrated_message(missing))
        kind = unavailable_kind(exc)
        if kind is None:
            return None
        message = f"the {self._dialect} task store is unavailable ({kind})"
        if write and committing and self._dialect != "sqlite":
            # a lost connection hides whether the server committed; SQLite's commit is local
            message += "; the connection failed during the commit, so the write may have happened"
        elif write:
            message += "; nothing was written"
        return StoreUnavailableError(message)

    def _not_migrated_message(self, reason: str) -> str:
        return (
            f"the {self._dialect} database is not migrated for this version of sora-tasks "
            f"({reason}): run `await store.migrate()` or `sora-tasks db upgrade` once"
        )


def _renders(by_kind: dict[str, list[tuple[Any, ...]]]) -> dict[str, float | None]:
    (summary,) = by_kind["renders"]
    count, mean, p50, p90 = summary[5:9]
    if not count:
        p50 = p90 = mean = None
    elif "p50" in by_kind:  # SQLite: interpolate between the two values walked to
        p50, p90 = (_interpolated(int(count), f, by_kind[k]) for k, f in _PERCENTILES)
    return {
        "render_seconds_mean": mean,
        "render_seconds_p50": p50,
        "render_seconds_p90": p90,
    }


_PERCENTILES: Final = (("p50", 0.5), ("p90", 0.9))


def _interpolated(count: int, fraction: float, rows: list[tuple[Any, ...]]) -> float:
    # the same position as the statement's offset, floor((count - 1) * fraction)
    position = (count - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    values = sorted(float(row[5]) for row in rows)
    weight = position - low
    return values[0] * (1 - weight) + values[min(high - low, len(values) - 1)] * weight
