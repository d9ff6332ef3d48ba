"""API calls beside a working engine: the engine keeps to its share of the pool, SQLite writers
wait for the write lock without a connection, and API transactions go first."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from sqlalchemy import URL, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from sora_tasks import PollingPolicy, TaskManager
from sora_tasks._models import TaskQuery
from sora_tasks.providers import ProviderJob
from sora_tasks.storage import SQLStore
from sora_tasks.storage._lanes import engine_work
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

WORKERS = 20
IN_FLIGHT = 30


class CheckedOut:
    """The most connections the store's pool had handed out at once, as the pool counts them."""

    def __init__(self, store: SQLStore) -> None:
        self.most = 0
        pool = store._engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        self._pool = pool
        event.listen(store._engine.sync_engine, "checkout", self._checkout)

    @property
    def now(self) -> int:
        return self._pool.checkedout()

    def _checkout(self, *_: object) -> None:
        self.most = max(self.most, self._pool.checkedout())

    async def reaches(self, count: int) -> None:
        with anyio.fail_after(20):
            while self.now < count:  # noqa: ASYNC110 (the pool has no event to wait on)
                await anyio.sleep(0.01)


@asynccontextmanager
async def writes_blocked(store: SQLStore, url: URL) -> AsyncIterator[None]:
    """Hold writers off until the block ends; plain reads still go through.

    PostgreSQL: another connection locks the table against writers. SQLite: a write transaction
    of the store itself stays open (another connection could wait for the write lock forever
    beside a busy engine: SQLite's busy wait is not first come, first served).
    """
    if url.get_backend_name() == "sqlite":
        async with store._write():
            yield
        return
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("LOCK TABLE sora_tasks IN EXCLUSIVE MODE"))
            yield
            await conn.rollback()
    finally:
        await engine.dispose()


@contextmanager
def sqlite_write_lock(url: URL) -> Iterator[None]:
    """Another connection holds SQLite's write lock until the block ends."""
    conn = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


class HeldFake(FakeProvider):
    """A provider whose status calls wait until the test lets them answer."""

    def __init__(self) -> None:
        super().__init__(behaviour=FakeBehaviour(render_for=3600))
        self.answer = anyio.Event()
        self.waiting = 0

    async def status(self, external_id: str) -> ProviderJob:
        self.waiting += 1
        await self.answer.wait()
        return await super().status(external_id)


async def writers_wait(store: SQLStore) -> None:
    """Until a writer waits for SQLite's write lock in the store's own queue."""
    writer = store._turns._writer
    assert writer is not None
    with anyio.fail_after(20):
        while writer.statistics().tasks_waiting == 0:  # noqa: ASYNC110 (no event to wait on)
            await anyio.sleep(0.01)


async def test_engine_keeps_to_its_share_and_an_api_read_gets_through(sql_url: URL) -> None:
    # 3 + 3 connections, the overflow reserved: the engine may hold 3 (the reserve alone: API
    # calls going first would hold the engine to 2)
    store = SQLStore(sql_url, pool_size=3, max_overflow=3, api_first=0)
    fake = HeldFake()
    pool = CheckedOut(store)
    policy = PollingPolicy(batch_size=WORKERS)
    manager = TaskManager(providers={"fake": fake}, store=store, policy=policy)
    async with manager:
        for number in range(IN_FLIGHT):
            await manager.create(f"task {number}", user_id="u1")
        with anyio.fail_after(20):
            while fake.waiting < WORKERS:  # noqa: ASYNC110 (the fake has no event)
                await anyio.sleep(0.01)
        async with writes_blocked(store, sql_url):
            fake.answer.set()
            # the workers poll, then wait to write: on PostgreSQL on connections of their own,
            # up to the engine's share; on SQLite for the write lock, without a connection
            if store._dialect == "postgresql":
                held_by_engine, blocking = 3, 0
                await pool.reaches(held_by_engine)
            else:
                held_by_engine, blocking = 0, 1
                await writers_wait(store)
            with anyio.fail_after(5):
                page = await manager.list(user_id="u1", limit=50)
                stats = await manager.stats(user_id="u1")
            most_while_blocked = pool.most
    assert len(page.items) == IN_FLIGHT
    assert stats.total == IN_FLIGHT
    # the engine's connections, the blocking write's and the API read's own
    assert most_while_blocked <= held_by_engine + blocking + 1


async def test_sqlite_writers_queue_without_a_connection(sql_url: URL) -> None:
    if sql_url.get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL has row locks: its writers do not share one write lock")
    store = SQLStore(sql_url, pool_size=1, max_overflow=1)
    pool = CheckedOut(store)
    try:
        now = await store.now()
        async with anyio.create_task_group() as group:
            with sqlite_write_lock(sql_url):
                for _ in range(5):  # five writers, two pooled connections
                    group.start_soon(partial(store.delete_finished, before=now))
                await pool.reaches(1)
                with anyio.fail_after(5):
                    await store.list(TaskQuery())
                    await store.list(TaskQuery())
                most_while_blocked = pool.most
    finally:
        await store.close()
    assert most_while_blocked == 2


async def test_an_engine_transaction_waits_for_open_api_transactions(sql_url: URL) -> None:
    store = SQLStore(sql_url, api_first=30)
    order: list[str] = []
    api_open, api_may_end = anyio.Event(), anyio.Event()

    async def api_read() -> None:
        async with store._read():
            order.append("api opened")
            api_open.set()
            await api_may_end.wait()
            order.append("api closing")

    async def engine_read() -> None:
        with engine_work():
            await store.now()
        order.append("engine read")

    try:
        await store.now()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(api_read)
                await api_open.wait()
                group.start_soon(engine_read)
                # the engine's call is parked, holding nothing: other API calls still go through
                await store.now()
                await store.now()
                api_may_end.set()
    finally:
        await store.close()
    assert order == ["api opened", "api closing", "engine read"]


async def test_engine_runs_two_transactions_at_once_while_api_calls_are_served(
    sql_url: URL,
) -> None:
    store = SQLStore(sql_url)  # the engine's share is 5: two is the serving rule's
    inside = 0
    most_inside = 0
    let_go = anyio.Event()

    async def engine_read() -> None:
        nonlocal inside, most_inside
        with engine_work():
            async with store._read():
                inside += 1
                most_inside = max(most_inside, inside)
                await let_go.wait()
                inside -= 1

    async def api_read(opened: anyio.Event) -> None:
        async with store._read():
            opened.set()
            await let_go.wait()

    serving = store._turns._serving_slots
    assert serving is not None
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                # an API transaction stays open: engine transactions wait for it up to
                # api_first, then go on two at a time
                api_open = anyio.Event()
                group.start_soon(api_read, api_open)
                await api_open.wait()
                for _ in range(5):
                    group.start_soon(engine_read)
                while inside < 2 or serving.statistics().tasks_waiting < 3:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                waiting_while_serving = serving.statistics().tasks_waiting
                let_go.set()
    finally:
        await store.close()
    assert waiting_while_serving == 3
    assert most_inside == 2


@pytest.mark.parametrize(
    ("pool", "reserved", "slots"),
    [
        ({}, None, 5),
        ({}, 2, 13),
        ({"pool_size": 2, "max_overflow": 0}, None, 1),
        ({"pool_size": 1, "max_overflow": 0}, None, 1),
        ({"pool_size": 4, "max_overflow": 4}, 20, 1),
        ({"poolclass": NullPool}, None, None),
        ({"max_overflow": -1}, None, None),
    ],
)
async def test_the_engine_share_of_the_pool(
    pool: dict[str, Any], reserved: int | None, slots: int | None
) -> None:
    store = SQLStore("sqlite+aiosqlite:///unused.db", reserved_connections=reserved, **pool)
    assert store._turns.engine_slots == slots
    await store.close()


def test_bad_turn_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved_connections must be 0 or more, not -1"):
        SQLStore("sqlite+aiosqlite:///unused.db", reserved_connections=-1)
    with pytest.raises(ValueError, match=r"api_first must be 0 seconds or more, not -0\.5"):
        SQLStore("sqlite+aiosqlite:///unused.db", api_first=-0.5)
