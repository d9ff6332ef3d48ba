"""Benchmark the SQL store on a large table: bulk load, listing, stats, claims, plans, size.

    .venv/bin/python benchmarks/bench_sql_store.py --tasks 1000000 --backend both

Loads ``--tasks`` tasks spread over ``--tasks / 100`` users (one SQLite file, one PostgreSQL
database made for the run and dropped after), then times the store's public calls and prints
the query plans. PostgreSQL is reached through ``SORA_TASKS_TEST_POSTGRES_URL`` (or
``--postgres-url``); its database gets a ``_bench`` suffix.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import URL, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ClauseElement

from sora_tasks._models import TaskQuery, TaskStatus
from sora_tasks.storage import SQLStore
from sora_tasks.storage import _sql_queries as q
from sora_tasks.storage._sql_schema import tasks

BATCH = 10_000
STATUSES = [
    (TaskStatus.COMPLETED, 0.60),
    (TaskStatus.FAILED, 0.15),
    (TaskStatus.CANCELLED, 0.05),
    (TaskStatus.PROCESSING, 0.10),
    (TaskStatus.QUEUED, 0.10),
]


def fake_rows(count: int, users: int, now: datetime, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Rows shaped like real ones: 90 days of history, a fifth of them still being polled."""
    rng = random.Random(seed)
    names, weights = zip(*STATUSES, strict=True)
    for index in range(count):
        status = rng.choices(names, weights)[0]
        created = now - timedelta(seconds=rng.uniform(0, 90 * 86_400))
        render = rng.uniform(30, 900)
        finished = status.is_terminal
        completed = created + timedelta(seconds=render) if finished else None
        yield {
            "id": f"video_{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "provider": rng.choice(("openai", "relay")),
            "external_id": f"job_{index}",
            "user_id": f"user_{rng.randrange(users)}",
            "status": status.value,
            "media_type": "VIDEO",
            "prompt": "a calico cat playing piano in a sunlit room, cinematic, 35mm",
            "model": "sora-2",
            "size": "1280x720",
            "seconds": 8,
            "reference_image": None,
            "image_sha256": None,
            "progress": 100 if status is TaskStatus.COMPLETED else rng.randrange(100),
            "result": None,
            "error": None,
            "metadata": {"campaign": "bench"},
            "priority": 0,
            "created_at": created,
            "updated_at": completed or created,
            "submitted_at": created,
            "completed_at": completed,
            "render_seconds": render if status is TaskStatus.COMPLETED else None,
            "submission_id": None,
            "next_poll_at": None if finished else now + timedelta(seconds=rng.uniform(-3600, 3600)),
            "deadline_at": None,
            "poll_failures": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "version": 1,
        }


async def bulk_load(store: SQLStore, count: int, users: int) -> float:
    """Insert ``count`` rows with executemany batches; returns rows per second."""
    engine = store._engine
    now = await store.now()
    rows = fake_rows(count, users, now)
    started = time.perf_counter()
    while batch := [row for _, row in zip(range(BATCH), rows, strict=False)]:
        async with engine.begin() as conn:
            await conn.execute(tasks.insert(), batch)
    elapsed = time.perf_counter() - started
    if store._dialect == "sqlite":
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    else:
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE sora_tasks")
    return count / elapsed


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls, in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def explain(conn: AsyncConnection, dialect: str, statement: ClauseElement) -> str:
    """The query plan of ``statement`` (not executed)."""
    sql = str(statement.compile(conn.sync_connection, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    rows = (await conn.exec_driver_sql(prefix + sql)).all()
    return "\n".join(f"    {row[-1]}" for row in rows)


async def disk_bytes(store: SQLStore, path: Path | None) -> int:
    """Bytes on disk for the tasks (SQLite: the whole checkpointed file)."""
    async with store._engine.connect() as conn:
        if path is not None:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return (await anyio.Path(path).stat()).st_size
        size = await conn.execute(text("SELECT pg_total_relation_size('sora_tasks')"))
        return int(size.scalar_one())


async def run(store: SQLStore, label: str, count: int, path: Path | None) -> None:
    """Load, measure and print one backend's results."""
    await store.migrate()
    users = max(1, count // 100)
    rate = await bulk_load(store, count, users)
    print(f"\n## {label}: {count:,} tasks, {users:,} users")
    print(f"bulk insert: {rate:,.0f} tasks/s")
    rng = random.Random(1)

    def page() -> Awaitable[object]:
        query = TaskQuery(
            user_id=f"user_{rng.randrange(users)}", status=TaskStatus.COMPLETED, limit=20
        )
        return store.list(query)

    def user_stats() -> Awaitable[object]:
        return store.stats(user_id=f"user_{rng.randrange(users)}")

    claimed_ids: list[str] = []

    async def claim() -> None:
        batch = await store.claim_due(owner="bench", limit=100, lease_seconds=300)
        claimed_ids.extend(task.id for task in batch)

    results = {
        "user page (20, by status)": await timed(page, 200),
        "stats, one user": await timed(user_stats, 100),
        "stats, global": await timed(store.stats, 5),
    }
    claims: list[float] = []
    warm_up = 5
    # a tenth of the tasks are due; keep every measured claim a full batch of 100
    for round_number in range(warm_up + min(100, max(10, count // 10_000))):
        sample = await timed(claim, 1)
        if round_number >= warm_up:
            claims += sample
        # a poller moves what it claimed to its next poll time; so does the benchmark,
        # outside the timing, so every claim meets a realistic head of the queue
        async with store._engine.begin() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(claimed_ids))
                .values(next_poll_at=datetime.now(UTC) + timedelta(hours=2), lease_owner=None)
            )
        claimed_ids.clear()
    results["claim 100 due"] = claims
    for name, samples in results.items():
        p50, p90 = statistics.median(samples), statistics.quantiles(samples, n=10)[8]
        print(f"{name:28} p50 {p50:8.2f} ms   p90 {p90:8.2f} ms")
    size = await disk_bytes(store, path)
    print(f"size on disk: {size / count:,.0f} bytes per task ({size / 2**20:,.0f} MiB)")
    dialect = store._dialect
    async with store._engine.connect() as conn:
        user = "user_1"
        plans = {
            "user page": q.list_tasks(
                TaskQuery(user_id=user, status=TaskStatus.COMPLETED, limit=20)
            ),
            "stats, user": q.stats_rows(dialect, user),
            "stats, global": q.stats_rows(dialect, None),
            "claim": q.claim_due(
                dialect, owner="bench", limit=100, lease_seconds=300, content=True
            ),
        }
        for name, statement in plans.items():
            print(f"plan, {name}:\n{await explain(conn, dialect, statement)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "SORA_TASKS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "bench.db"
            store = SQLStore(f"sqlite+aiosqlite:///{path}")
            try:
                await run(store, "SQLite", args.tasks, path)
            finally:
                await store.close()
    if args.backend in ("postgres", "both"):
        server = make_url(args.postgres_url)
        bench = server.set(database=f"{server.database}_bench")
        await admin(server, f'DROP DATABASE IF EXISTS "{bench.database}"')
        await admin(server, f'CREATE DATABASE "{bench.database}"')
        store = SQLStore(bench)
        try:
            await run(store, "PostgreSQL", args.tasks, None)
        finally:
            await store.close()
            await admin(server, f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')


async def admin(server: URL, sql: str) -> None:
    """Run a statement that must not be inside a transaction."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    anyio.run(main)
