"""Leases on real databases: one winner per race, fencing after takeover, the database clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import time_machine
from sqlalchemy import URL, event

from sora_tasks import ConflictError, Task, TaskStatus
from sora_tasks.storage import SQLStore

pytestmark = pytest.mark.anyio


def make_task(now: datetime, **fields: Any) -> Task:
    values: dict[str, Any] = {
        "provider": "fake",
        "prompt": "a calico cat playing piano",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": 4,
        "created_at": now,
        "updated_at": now,
        "submission_id": "sub_1",
        "next_poll_at": now - timedelta(seconds=1),
    }
    return Task.model_validate(values | fields)


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
            task = await first.insert(make_task(await first.now()))
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
        task = await frozen.insert(make_task(await frozen.now()))
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
    task = await sql_store.insert(make_task(real_now))
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
        await store.insert(make_task(await store.now()))
        event.listen(store._engine.sync_engine, "before_cursor_execute", record)
        claimed = await store.claim_due(owner="w1", limit=1, lease_seconds=60)
    finally:
        await store.close()
    assert len(claimed) == 1
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[1].startswith("UPDATE sora_tasks SET")
