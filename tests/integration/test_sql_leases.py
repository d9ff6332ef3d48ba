"""Leases on real databases: one winner per race, fencing after takeover, the database clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import time_machine
from sqlalchemy import URL, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sora_tasks import ConflictError, Task, TaskStatus
from sora_tasks.storage import SQLStore
from sora_tasks.storage._sql_schema import tasks
from tests.factories import make_task

pytestmark = pytest.mark.anyio


def due_task(now: datetime, **fields: Any) -> Task:
    """A task with a submission under way, due for a poll."""
    return make_task(now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=1), **fields)


@asynccontextmanager
async def stores(url: URL, count: int) -> AsyncIterator[list[SQLStore]]:
    """``count`` stores with engines of their own, like separate worker processes."""
    opened = [SQLStore(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def until_database_time_passes(store: SQLStore, moment: datetime) -> None:
    """Let the lease run out, measuring what is left of it with the database's clock."""
    remaining = (moment - await store.now()).total_seconds()
    await anyio.sleep(max(remaining, 0) + 0.05)
    assert await store.now() > moment


async def claim_into(results: dict[str, Sequence[Task]], store: SQLStore, owner: str) -> None:
    results[owner] = await store.claim_due(owner=owner, limit=5, lease_seconds=60)


async def test_two_claims_racing_for_one_task_have_exactly_one_winner(sql_url: URL) -> None:
    async with stores(sql_url, 2) as (first, second):
        for _ in range(10):
            task = await first.insert(due_task(await first.now()))
            results: dict[str, Sequence[Task]] = {}
            async with anyio.create_task_group() as group:
                group.start_soon(claim_into, results, first, "w1")
                group.start_soon(claim_into, results, second, "w2")
            winners = [owner for owner, claimed in results.items() if claimed]
            assert len(winners) == 1
            (claimed,) = results[winners[0]]
            assert claimed.id == task.id
            assert claimed.lease_owner == winners[0]
            assert claimed.version == task.version + 1
            await first.update(task.id, expected_version=claimed.version, status=TaskStatus.FAILED)


async def test_stale_fencing_token_after_takeover_changes_nothing(sql_url: URL) -> None:
    async with stores(sql_url, 2) as (frozen, peer):
        task = await frozen.insert(due_task(await frozen.now()))
        (mine,) = await frozen.claim_due(owner="frozen", limit=1, lease_seconds=0.3)
        assert await peer.claim_due(owner="peer", limit=1, lease_seconds=60) == []
        assert mine.lease_expires_at is not None
        await until_database_time_passes(peer, mine.lease_expires_at)

        (theirs,) = await peer.claim_due(owner="peer", limit=1, lease_seconds=60)
        assert theirs.id == task.id
        assert theirs.version == mine.version + 1
        with pytest.raises(ConflictError):
            await frozen.update(task.id, expected_version=mine.version, status=TaskStatus.COMPLETED)
        assert await peer.get(task.id) == theirs
        finished = await peer.update(
            task.id, expected_version=theirs.version, status=TaskStatus.COMPLETED
        )
        assert finished.lease_owner is None


async def test_leases_run_on_the_database_clock_not_the_process_clock(
    sql_store: SQLStore,
) -> None:
    real_now = await sql_store.now()
    task = await sql_store.insert(due_task(real_now))
    # the process's clock jumps a day ahead; a lease measured with it would already be over
    with time_machine.travel(real_now + timedelta(days=1), tick=True):
        assert datetime.now(UTC) > real_now + timedelta(hours=23)
        (claimed,) = await sql_store.claim_due(owner="w1", limit=1, lease_seconds=60)
        assert claimed.lease_expires_at is not None
        assert claimed.lease_expires_at - real_now < timedelta(seconds=90)
        assert await sql_store.claim_due(owner="w2", limit=1, lease_seconds=60) == []
        assert (await sql_store.now()) - real_now < timedelta(minutes=5)
    assert claimed.id == task.id


async def test_sqlite_claims_take_the_write_lock_up_front(tmp_path: Any) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'locks.db'}")
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    try:
        await store.insert(due_task(await store.now()))
        event.listen(store._engine.sync_engine, "before_cursor_execute", record)
        claimed = await store.claim_due(owner="w1", limit=1, lease_seconds=60)
    finally:
        await store.close()
    assert len(claimed) == 1
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[1].startswith("UPDATE sora_tasks SET")


async def test_concurrent_writes_with_one_token_have_exactly_one_winner(sql_url: URL) -> None:
    async with stores(sql_url, 6) as writers:
        task = await writers[0].insert(due_task(await writers[0].now()))
        outcomes: list[str] = []

        async def write(store: SQLStore, progress: int) -> None:
            try:
                await store.update(task.id, expected_version=task.version, progress=progress)
            except ConflictError:
                outcomes.append("conflict")
            else:
                outcomes.append(f"wrote {progress}")

        async with anyio.create_task_group() as group:
            for number, store in enumerate(writers, start=1):
                group.start_soon(write, store, number * 10)
        (won,) = [outcome for outcome in outcomes if outcome.startswith("wrote")]
        assert outcomes.count("conflict") == len(writers) - 1
        stored = await writers[0].get(task.id)
        assert stored.version == task.version + 1
        assert won == f"wrote {stored.progress}"


async def sessions_waiting_for_a_lock(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        waiting = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting.scalar_one())


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_write_whose_read_went_stale_before_its_update_is_a_conflict(
    sql_url: URL,
) -> None:
    # every writer reads version v, then queues on a row lock held here; when it is released
    # the first UPDATE ... WHERE version = v wins and the others match no row
    observer = create_async_engine(sql_url)
    try:
        async with stores(sql_url, 3) as writers:
            task = await writers[0].insert(due_task(await writers[0].now()))
            outcomes: list[str] = []

            async def write(store: SQLStore) -> None:
                try:
                    await store.update(task.id, expected_version=task.version, progress=50)
                except ConflictError:
                    outcomes.append("conflict")
                else:
                    outcomes.append("wrote")

            async with observer.connect() as blocker, anyio.create_task_group() as group:
                await blocker.execute(
                    select(tasks.c.id).where(tasks.c.id == task.id).with_for_update()
                )
                for store in writers:
                    group.start_soon(write, store)
                with anyio.fail_after(10):
                    # another server's state: there is no event to wait on, only to look again
                    while await sessions_waiting_for_a_lock(observer) < len(writers):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                await blocker.rollback()
            assert sorted(outcomes) == ["conflict", "conflict", "wrote"]
            assert (await writers[0].get(task.id)).version == task.version + 1
    finally:
        await observer.dispose()
