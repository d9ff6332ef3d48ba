"""Benchmark the change feed's index on PostgreSQL: a live stream's read, and a claim's cost.

    .venv/bin/python benchmarks/bench_change_feed.py --tasks 200000

Loads ``--tasks`` tasks over ``--tasks / 100`` users, and ``--heavy`` tasks of one more user,
into a database made for the run (dropped after), then measures, with the index
``(user_id, updated_at, id)`` present and absent in turn: one live stream's read
(``TaskStore.changes`` of one user, the last 10 seconds; of a typical user and of the heavy
one) and a claim of 100 due tasks, with the share of the claims' row updates PostgreSQL made in
place (HOT). A claim leaves ``updated_at`` alone, so the index must not cost it those.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import anyio
from bench_sql_store import BATCH, admin, bulk_load, fake_rows, timed
from sqlalchemy import make_url, text

from sora_tasks.storage import ChangeCursor, SQLStore
from sora_tasks.storage import _sql_queries as q
from sora_tasks.storage._sql_schema import tasks

INDEX = "ix_sora_tasks_user_id_updated_at_id"
COLUMNS = "(user_id, updated_at, id)"
HEAVY = "heavy"


async def measure(store: SQLStore, users: int, rounds: int) -> dict[str, list[float]]:
    rng = random.Random(3)
    now = await store.now()

    after = ChangeCursor(now - timedelta(seconds=10))

    async def feed_read() -> None:
        await store.changes(user_id=f"user_{rng.randrange(1, users)}", after=after, limit=500)

    async def heavy_read() -> None:
        await store.changes(user_id=HEAVY, after=after, limit=500)

    claims: list[float] = []
    updated = hot = 0
    claim = q.claim_due("postgresql", owner="bench", limit=100, lease_seconds=300, content=False)
    for _ in range(rounds):
        async with store._engine.begin() as conn:
            started = time.perf_counter()
            claimed = [row["id"] for row in (await conn.execute(claim)).mappings()]
            claims.append((time.perf_counter() - started) * 1000)
            # this transaction's own counters: how many of the claim's updates were in place
            counts = await conn.execute(text(_XACT_COUNTS))
            rows, in_place = counts.one()
            updated, hot = updated + rows, hot + in_place
        async with store._engine.begin() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(claimed))
                .values(next_poll_at=datetime.now(UTC) + timedelta(hours=2), lease_owner=None)
            )
    return {
        "feed read, one user": await timed(feed_read, 200),
        "feed read, heavy user": await timed(heavy_read, 50),
        "claim 100 due": claims,
        "claims updated in place": [100 * hot / updated if updated else 0.0],
    }


async def load_heavy_user(store: SQLStore, count: int) -> None:
    rows = fake_rows(count, 1, await store.now(), seed=11)
    while batch := [
        row | {"user_id": HEAVY, "external_id": f"heavy_{row['external_id']}"}
        for _, row in zip(range(BATCH), rows, strict=False)
    ]:
        async with store._engine.begin() as conn:
            await conn.execute(tasks.insert(), batch)


_XACT_COUNTS = (
    "SELECT pg_stat_get_xact_tuples_updated('sora_tasks'::regclass),"
    " pg_stat_get_xact_tuples_hot_updated('sora_tasks'::regclass)"
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--heavy", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "SORA_TASKS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    server = make_url(args.postgres_url)
    bench = server.set(database=f"feed_bench_{uuid.uuid4().hex[:8]}")
    await admin(server, f'CREATE DATABASE "{bench.database}"')
    store = SQLStore(bench)
    try:
        await store.migrate()
        users = max(1, args.tasks // 100)
        await bulk_load(store, args.tasks, users)
        await load_heavy_user(store, args.heavy)
        print(
            f"{args.tasks:,} tasks over {users:,} users, {args.heavy:,} more of one heavy user"
            f" (a single-user console); {args.rounds} claims per turn"
        )
        for turn in ("with index", "without index", "with index", "without index"):
            async with store._engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                if turn == "with index":
                    await auto.exec_driver_sql(
                        f"CREATE INDEX IF NOT EXISTS {INDEX} ON sora_tasks {COLUMNS}"
                    )
                else:
                    await auto.exec_driver_sql(f"DROP INDEX IF EXISTS {INDEX}")
                await auto.exec_driver_sql("VACUUM ANALYZE sora_tasks")
            results = await measure(store, users, args.rounds)
            print(f"## {turn}")
            for name, samples in results.items():
                if len(samples) == 1:
                    print(f"  {name:24} {samples[0]:6.1f} %")
                    continue
                p50, p90 = statistics.median(samples), statistics.quantiles(samples, n=10)[8]
                print(f"  {name:24} p50 {p50:6.2f} ms   p90 {p90:6.2f} ms")
    finally:
        await store.close()
        await admin(server, f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')


if __name__ == "__main__":
    anyio.run(main)
