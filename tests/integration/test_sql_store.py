"""SQLStore on real databases: schema, migrations, errors, time zones, image storage, stats."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import URL, Connection, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from sora_tasks import (
    ConflictError,
    DuplicateExternalIdError,
    InvalidTransitionError,
    ReferenceImage,
    Task,
    TaskCost,
    TaskNotFoundError,
    TaskStatus,
)
from sora_tasks._models import ImageData
from sora_tasks._states import Phase, phase_of
from sora_tasks.storage import InMemoryStore, SQLStore
from sora_tasks.storage._sql_schema import VERSION_TABLE, images, in_phase, metadata, tasks
from tests.factories import make_task, phase_grid
from tests.sql_databases import open_sql_store, postgres_database

pytestmark = pytest.mark.anyio


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path) -> AsyncIterator[URL]:
    """A database with no tables at all."""
    if backend == "sqlite":
        yield URL.create("sqlite+aiosqlite", database=str(tmp_path / "empty.db"))
        return
    async with postgres_database(None) as url:
        yield url


async def test_migrating_an_empty_database_matches_the_models(empty_url: URL) -> None:
    store = SQLStore(empty_url, create=False)
    try:
        await store.migrate()
        await store.migrate()  # a second upgrade finds nothing to do
    finally:
        await store.close()
    engine = create_async_engine(empty_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_differences) == []
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert names == {
        "sora_tasks",
        "sora_images",
        "sora_task_images",
        "sora_webhooks",
        VERSION_TABLE,
    }


async def test_an_embedded_database_is_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "nested-later" / "tasks.db"
    path.parent.mkdir()
    store = SQLStore(f"sqlite:///{path}")  # the sync driver name is upgraded to aiosqlite
    try:
        task = await store.insert(make_task(await store.now()))
        assert (await store.get(task.id)).id == task.id
    finally:
        await store.close()
    assert path.stat().st_size > 0


async def test_without_a_url_the_database_lives_in_the_user_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data" / "sora-tasks"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda name: str(data_dir))
    store = SQLStore()
    try:
        await store.insert(make_task(await store.now()))
        assert str(data_dir / "tasks.db") in repr(store)
    finally:
        await store.close()
    assert (data_dir / "tasks.db").stat().st_size > 0


async def test_repr_hides_the_password() -> None:
    store = SQLStore("postgresql://sora:hunter2-canary@db.internal:5432/tasks")
    try:
        assert "hunter2-canary" not in repr(store)
        assert "***" in repr(store)
        assert "postgresql+asyncpg" in repr(store)
    finally:
        await store.close()


async def test_datetimes_come_back_aware_in_utc(sql_store: SQLStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=plus_two)
    task = await sql_store.insert(make_task(created, deadline_at=created + timedelta(hours=1)))
    loaded = await sql_store.get(task.id)
    assert loaded.created_at.tzinfo is UTC
    assert loaded.created_at == created
    assert loaded.created_at.hour == 10
    assert loaded.deadline_at == created + timedelta(hours=1)
    now = await sql_store.now()
    assert now.tzinfo is UTC


async def test_bad_inputs_raise_library_errors_not_driver_errors(sql_store: SQLStore) -> None:
    now = await sql_store.now()
    bound = await sql_store.insert(make_task(now, external_id="job_1"))
    other = await sql_store.insert(make_task(now))
    attempts: list[tuple[type[Exception], Callable[[], Awaitable[Task]]]] = [
        (TaskNotFoundError, lambda: sql_store.update("video_00000000-0000-4000-8000-000000000000")),
        (DuplicateExternalIdError, lambda: sql_store.insert(make_task(now, external_id="job_1"))),
        (DuplicateExternalIdError, lambda: sql_store.update(other.id, external_id="job_1")),
        (ConflictError, lambda: sql_store.insert(bound)),
        (ConflictError, lambda: sql_store.update(other.id, expected_version=7, progress=5)),
    ]
    for expected, attempt in attempts:
        with pytest.raises(expected) as caught:
            await attempt()
        error = caught.value
        assert error.__suppress_context__ or not isinstance(error.__context__, SQLAlchemyError)
        assert not isinstance(error.__cause__, SQLAlchemyError)
    done = await sql_store.update(other.id, status=TaskStatus.COMPLETED)
    with pytest.raises(InvalidTransitionError):
        await sql_store.update(other.id, status=TaskStatus.PROCESSING)
    assert await sql_store.get(other.id) == done
    assert (await sql_store.get(bound.id)).version == bound.version


async def test_image_bytes_live_in_their_own_table_once(sql_store: SQLStore, sql_url: URL) -> None:
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    sha = hashlib.sha256(content).hexdigest()
    picture = ImageData(content, "image/png", 1280, 720, sha)
    info = ReferenceImage(sha256=sha, mime_type="image/png", byte_size=len(content))
    now = await sql_store.now()
    for _ in range(2):
        await sql_store.insert(make_task(now, reference_image=info), images=[picture])
    engine = create_async_engine(sql_url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(select(images.c.sha256, images.c.byte_size))).all()
            rows = (await conn.execute(select(tasks))).mappings().all()
    finally:
        await engine.dispose()
    assert stored == [(sha, len(content))]
    for row in rows:
        assert all(not isinstance(value, bytes) for value in row.values())
        assert content.hex() not in str(dict(row))
    assert (await sql_store.get_image(sha)).data == content


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_the_sql_phase_predicates_agree_with_the_python_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with open_sql_store(backend, tmp_path, request) as store:
        grid = phase_grid(await store.now())
        for task in grid:
            await store.insert(task)
        async with store._read() as conn:
            for phase in Phase:
                rows = (await conn.execute(select(tasks.c.id).where(in_phase(phase)))).scalars()
                assert set(rows) == {t.id for t in grid if phase_of(t) is phase}, phase


async def test_stats_in_one_statement_match_the_memory_store_exactly(sql_store: SQLStore) -> None:
    # whole-second render times and quarter costs add up exactly in any order, so the SQL
    # aggregates and the Python ones must agree to the bit, interpolated percentiles included
    rng = random.Random(14)
    memory = InMemoryStore()
    now = await sql_store.now()
    users = ["u1", "u2", "u3", None]
    for index in range(83):
        created = now - timedelta(days=2, seconds=index)
        status = rng.choice(list(TaskStatus))
        fields: dict[str, Any] = {
            "user_id": users[index % 4],
            "provider": rng.choice(["fake", "other", "third"]),
            "model": rng.choice(["sora-2", "sora-2-pro"]),
            "status": status,
        }
        if status is TaskStatus.COMPLETED:
            fields["completed_at"] = created + timedelta(seconds=rng.randrange(20, 900))
        if rng.random() < 0.4:
            fields["cost"] = TaskCost(amount=rng.randrange(1, 40) / 4, source="test")
        task = make_task(created, **fields)
        await sql_store.insert(task)
        await memory.insert(task)
    # u4 has tasks but none completed: no render times, a success rate of none finished
    for store in (sql_store, memory):
        await store.insert(make_task(now, user_id="u4", status=TaskStatus.QUEUED))
    try:
        for user in ["u1", "u2", "u3", "u4", "nobody"]:
            expected = await memory.stats(user_id=user)
            assert await sql_store.stats(user_id=user) == expected, user
        everyone = await sql_store.stats()
        assert everyone == await memory.stats()
        assert everyone.render_seconds_p50 is not None and everyone.cost_by_user
    finally:
        await memory.close()
