"""A database that cannot be reached raises the library's error, without connection details.

The PostgreSQL failures are real: a throwaway server of the test's own is killed and started
again (``tests/pgserver.py``), and the shared server is asked for roles and databases that do
not exist.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from sora_tasks import StoreNotMigratedError, StoreUnavailableError, Task
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore, _sql_migrate
from tests.factories import make_task
from tests.pgserver import PASSWORD_ROLE, PostgresServer
from tests.sql_databases import postgres_database, postgres_server_url

pytestmark = pytest.mark.anyio

CANARY = "hunter2-canary"
ADVICE = r"run `await store\.migrate\(\)` or `sora-tasks db upgrade`"


def a_task() -> Task:
    return make_task(datetime.now(UTC))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_postgresql_is_store_unavailable_and_keeps_the_password() -> None:
    store = SQLStore(f"postgresql+asyncpg://app:hunter2-canary@127.0.0.1:{closed_port()}/tasks")
    try:
        with pytest.raises(
            StoreUnavailableError, match="postgresql task store is unavailable"
        ) as caught:
            await store.list(TaskQuery())
    finally:
        await store.close()
    assert "hunter2-canary" not in str(caught.value)
    assert "hunter2-canary" not in repr(store)


async def test_an_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'tasks.db'}", create=False)
    try:
        with pytest.raises(
            StoreUnavailableError, match=r"directory of the SQLite database .* does not exist"
        ):
            await store.get("video_00000000-0000-4000-8000-000000000000")
    finally:
        await store.close()


async def test_a_cancelled_call_leaves_no_connection_teardown_behind(tmp_path: Path) -> None:
    # regression: a statement cut by cancellation left aiosqlite's connection teardown running,
    # and asyncio.run() then hung at exit waiting for it
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    try:
        await store.list(TaskQuery())
        for delay in (0, 0.0005, 0.001, 0.002, 0.005):
            for _ in range(5):
                with anyio.move_on_after(delay):
                    await store.list(TaskQuery())
    finally:
        await store.close()
    leftovers = [task for task in asyncio.all_tasks() if "terminate" in repr(task)]
    assert leftovers == []


def assert_no_connection_details(exc: BaseException, url: URL, *names: str) -> None:
    """Neither the password, the host and port, nor the distinctive ``names`` are shown."""
    for shown in (str(exc), repr(exc)):
        for detail in (CANARY, str(url.host), str(url.port), *names):
            assert detail not in shown, shown


@asynccontextmanager
async def admin(url: URL) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def wait_for_a_lock_waiter(url: URL) -> None:
    async with admin(url) as connection:
        with anyio.fail_after(10):
            while True:
                waiting = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                )
                if waiting:
                    return
                await anyio.sleep(0.01)


@pytest.mark.postgres
async def test_postgresql_killed_mid_statement_is_unavailable_and_the_same_store_recovers(
    postgres_server: PostgresServer,
) -> None:
    # trust authentication ignores the password
    url = (await postgres_server.create_database("killed")).set(password=CANARY)
    store = SQLStore(url)
    try:
        await store.migrate()
        await store.insert(a_task())
        caught: list[StoreUnavailableError] = []

        async def list_tasks() -> None:
            try:
                await store.list(TaskQuery())
            except StoreUnavailableError as exc:
                caught.append(exc)

        # a lock held elsewhere keeps the store's statement running until the server dies
        holder = create_async_engine(url, poolclass=NullPool)
        try:
            async with holder.connect() as blocker:
                await blocker.begin()
                await blocker.exec_driver_sql("LOCK TABLE sora_tasks IN ACCESS EXCLUSIVE MODE")
                async with anyio.create_task_group() as group:
                    group.start_soon(list_tasks)
                    await wait_for_a_lock_waiter(postgres_server.url)
                    await anyio.to_thread.run_sync(postgres_server.stop, "immediate")
                await blocker.invalidate()
        finally:
            await holder.dispose()
        assert len(caught) == 1, "the interrupted call did not raise StoreUnavailableError"
        assert "postgresql task store is unavailable (connection lost" in str(caught[0])
        assert_no_connection_details(caught[0], url)

        with pytest.raises(StoreUnavailableError, match=r"connection refused.*nothing was written"):
            await store.insert(a_task())

        await anyio.to_thread.run_sync(postgres_server.start)
        assert len((await store.list(TaskQuery())).items) == 1
        await store.insert(a_task())
        assert len((await store.list(TaskQuery())).items) == 2
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_restart_between_calls_costs_one_failed_call_then_the_pool_works(
    postgres_server: PostgresServer,
) -> None:
    store = SQLStore(await postgres_server.create_database("restarted"), pool_size=3)
    try:
        await store.migrate()
        # several pooled connections, all of which the restart kills
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(store.list, TaskQuery())
        await anyio.to_thread.run_sync(postgres_server.restart, "immediate")
        with pytest.raises(StoreUnavailableError, match=r"\(connection lost\)"):
            await store.get("video_00000000-0000-4000-8000-000000000000")
        # the lost connection invalidated the whole pool: no other dead one is handed out
        for _ in range(3):
            assert (await store.list(TaskQuery())).items == []
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_wrong_password_is_store_unavailable_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    async with admin(postgres_server.url) as connection:
        await connection.exec_driver_sql(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        await connection.exec_driver_sql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right'")
    url = postgres_server.url.set(username=PASSWORD_ROLE, password=CANARY)
    store = SQLStore(url)
    try:
        with pytest.raises(
            StoreUnavailableError, match=r"authentication failed, SQLSTATE 28P01"
        ) as caught:
            await store.list(TaskQuery())
    finally:
        await store.close()
    assert_no_connection_details(caught.value, url, PASSWORD_ROLE)


@pytest.mark.postgres
async def test_a_role_that_does_not_exist_is_store_unavailable() -> None:
    url = postgres_server_url().set(username="sora_no_such_role", password=CANARY)
    store = SQLStore(url)
    try:
        with pytest.raises(
            StoreUnavailableError, match=r"authentication failed, SQLSTATE 28000"
        ) as caught:
            await store.list(TaskQuery())
    finally:
        await store.close()
    assert_no_connection_details(caught.value, url, "sora_no_such_role")


@pytest.mark.postgres
async def test_a_database_that_does_not_exist_is_store_unavailable() -> None:
    url = postgres_server_url().set(database="sora_no_such_database")
    store = SQLStore(url)
    try:
        with pytest.raises(StoreUnavailableError, match="database does not exist") as caught:
            await store.list(TaskQuery())
    finally:
        await store.close()
    assert_no_connection_details(caught.value, url, "sora_no_such_database")


@pytest.mark.postgres
async def test_an_empty_postgresql_database_is_not_migrated_until_migrate_runs() -> None:
    async with postgres_database(None) as url:
        store = SQLStore(url)
        try:
            with pytest.raises(StoreNotMigratedError, match=ADVICE) as caught:
                await store.list(TaskQuery())
            assert "no sora-tasks tables" in str(caught.value)
            with pytest.raises(StoreNotMigratedError):
                await store.insert(a_task())
            await store.migrate()
            await store.insert(a_task())
            assert len((await store.list(TaskQuery())).items) == 1
        finally:
            await store.close()


async def test_an_sqlite_file_not_created_is_not_migrated(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}", create=False)
    try:
        with pytest.raises(StoreNotMigratedError, match=ADVICE):
            await store.get("video_00000000-0000-4000-8000-000000000000")
    finally:
        await store.close()


async def test_a_schema_at_an_older_revision_is_not_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    migrated = SQLStore(url)
    await migrated.migrate()
    await migrated.close()
    # this code pretends to ship a newer migration than the database has
    heads, known = _sql_migrate._revisions()
    (current,) = heads
    monkeypatch.setattr(_sql_migrate, "_revisions", lambda: (frozenset({"next"}), known | {"next"}))
    store = SQLStore(url, create=False)
    try:
        with pytest.raises(
            StoreNotMigratedError, match=rf"at revision {current}; this code needs next"
        ) as caught:
            await store.list(TaskQuery())
        assert "sora-tasks db upgrade" in str(caught.value)
    finally:
        await store.close()


async def test_a_schema_at_a_newer_unknown_revision_is_used(tmp_path: Path) -> None:
    # during a rolling upgrade the database may already be ahead of this worker
    path = tmp_path / "tasks.db"
    migrated = SQLStore(f"sqlite+aiosqlite:///{path}")
    await migrated.migrate()
    await migrated.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE sora_tasks_alembic_version SET version_num = '9999'")
    store = SQLStore(f"sqlite+aiosqlite:///{path}", create=False)
    try:
        assert (await store.list(TaskQuery())).items == []
    finally:
        await store.close()


async def test_a_column_dropped_after_the_first_call_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SQLStore(f"sqlite+aiosqlite:///{path}")
    try:
        await store.list(TaskQuery())
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("ALTER TABLE sora_tasks DROP COLUMN start_progress")
        with pytest.raises(StoreNotMigratedError, match=r"a column is missing.*" + ADVICE):
            await store.list(TaskQuery())
    finally:
        await store.close()


async def test_an_sqlite_database_locked_past_the_busy_timeout_is_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    store = SQLStore(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        await store.list(TaskQuery())
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with anyio.fail_after(10):
                with pytest.raises(
                    StoreUnavailableError,
                    match=r"database is locked, SQLITE_BUSY\); nothing was written",
                ):
                    await store.insert(a_task())
            other.execute("ROLLBACK")
        finally:
            other.close()
        await store.insert(a_task())
    finally:
        await store.close()


async def test_a_programming_error_stays_a_driver_error(tmp_path: Path) -> None:
    # SQLite reports syntax errors as OperationalError, the class that once meant "unavailable"
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    try:
        await store.list(TaskQuery())
        with pytest.raises(Exception, match="syntax error") as caught:
            async with store._read() as connection:
                await connection.exec_driver_sql("SELEKT 1")
        assert not isinstance(caught.value, StoreUnavailableError)
    finally:
        await store.close()


async def test_no_free_pooled_connection_within_the_pool_timeout_is_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    store = SQLStore(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        await store.list(TaskQuery())
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            async with anyio.create_task_group() as group:
                # this insert waits for the lock, holding the pool's only connection
                group.start_soon(store.insert, a_task())
                with anyio.fail_after(10):
                    caught = None
                    while caught is None:  # until the insert has taken the connection
                        try:
                            await store.list(TaskQuery())
                        except StoreUnavailableError as exc:
                            caught = exc
                        await anyio.sleep(0.01)
                assert "no pooled connection free within the pool timeout" in str(caught)
                other.execute("ROLLBACK")
        finally:
            other.close()
        assert len((await store.list(TaskQuery())).items) == 1
    finally:
        await store.close()
