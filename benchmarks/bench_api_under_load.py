"""API reads through the manager while its own engine polls flat out, against the same reads idle.

    .venv/bin/python benchmarks/bench_api_under_load.py --backend both --rounds 5

The store holds ``--history`` finished tasks spread over ``--users`` users (bulk-loaded) and
``--in-flight`` running jobs at an in-process :class:`FakeProvider` that never finish, on a
schedule that keeps every one of them due: the engine (default policy otherwise: 100 workers,
32 polls at once; the store's default pool) works as fast as it can. In the same process and
event loop, one caller times ``manager.list(user_id=...)`` (a 20-task page), ``manager.stats``
(one user) and ``manager.get``, one after the other with ``--gap`` ms between calls.

Each round times the calls once with the engine stopped (``poll=False``, "idle") and once with it
running ("loaded"), in alternating order, so that a busy spell of the shared machine weighs on
both. The table pools every round's samples; the spread is the range of the per-round ratios.
PostgreSQL is reached through ``SORA_TASKS_TEST_POSTGRES_URL`` (or ``--postgres-url``); the run
creates ``<database>_apiload`` and drops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sora_tasks import GenerationRequest, PollingPolicy, PollSchedule, TaskManager
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore
from sora_tasks.storage._sql_schema import tasks
from sora_tasks.testing import FakeBehaviour, FakeProvider

CALLS = ("list", "stats", "get")
# every task is due again at once: the engine polls as fast as it can
BUSY = PollSchedule(
    expected_seconds=0.001, first_interval=0.001, dense_interval=0.001, max_interval=0.001
)


def history_rows(count: int, users: int, seed: int = 5) -> list[dict[str, Any]]:
    """Finished tasks over 30 days: what an API lists and counts."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = []
    for index in range(count):
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86_400))
        completed = rng.random() < 0.8
        render = rng.uniform(30, 600)
        rows.append(
            {
                "id": f"video_{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                "provider": "fake",
                "external_id": f"done_{index}",
                "user_id": f"user_{rng.randrange(users)}",
                "status": "COMPLETED" if completed else "FAILED",
                "media_type": "VIDEO",
                "prompt": "a calico cat playing piano in a sunlit room, cinematic, 35mm",
                "model": "sora-2",
                "size": "1280x720",
                "seconds": 4,
                "progress": 100 if completed else 40,
                "metadata": {"campaign": "bench"},
                "priority": 0,
                "created_at": created,
                "updated_at": created + timedelta(seconds=render),
                "submitted_at": created,
                "completed_at": created + timedelta(seconds=render),
                "render_seconds": render if completed else None,
                "poll_failures": 0,
                "version": 3,
            }
        )
    return rows


async def load(url: URL, history: int, users: int, in_flight: int, fake: FakeProvider) -> None:
    """Migrate, bulk-load the history and start ``in_flight`` jobs that never finish."""
    store = SQLStore(url)
    try:
        await store.migrate()
        rows = history_rows(history, users)
        async with store._engine.begin() as conn:
            for start in range(0, len(rows), 10_000):
                await conn.execute(tasks.insert(), rows[start : start + 10_000])
        manager = TaskManager(providers={"fake": fake}, store=store, poll=False)
        async with manager:
            for start in range(0, in_flight, 100):
                await manager.create_many(
                    manager_request(f"user_{(start + n) % users}", start + n)
                    for n in range(min(100, in_flight - start))
                )
        await analyze(url)
    finally:
        await store.close()


def manager_request(user: str, number: int) -> GenerationRequest:
    return GenerationRequest(prompt=f"in flight {number}", model="sora-2", user_id=user, seconds=4)


async def analyze(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            if url.get_backend_name() == "sqlite":
                await conn.exec_driver_sql("ANALYZE")
            else:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE sora_tasks")
    finally:
        await engine.dispose()


async def phase(
    url: URL,
    fake: FakeProvider,
    *,
    loaded: bool,
    samples: int,
    gap: float,
    users: int,
    task_ids: list[str],
    store_kwargs: dict[str, Any],
) -> tuple[dict[str, list[float]], float]:
    """Time ``samples`` calls of each kind; returns the times (ms) and the engine's polls/s."""
    rng = random.Random(samples)
    store = SQLStore(url, **store_kwargs)
    policy = PollingPolicy(schedule=BUSY)
    manager = TaskManager(providers={"fake": fake}, store=store, policy=policy, poll=loaded)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "list": lambda: manager.list(user_id=f"user_{rng.randrange(users)}", limit=20),
        "stats": lambda: manager.stats(user_id=f"user_{rng.randrange(users)}"),
        "get": lambda: manager.get(rng.choice(task_ids)),
    }
    times: dict[str, list[float]] = {name: [] for name in CALLS}
    async with manager:
        if loaded:
            # warm up: the engine has claimed its first batches and polls at full pace
            target = fake.status_calls + 2 * policy.batch_size
            with anyio.fail_after(60):
                while fake.status_calls < target:  # noqa: ASYNC110 (the fake has no event)
                    await anyio.sleep(0.01)
        else:
            for call in calls.values():  # open the connections, as the loaded side has
                await call()
        polls, started = fake.status_calls, time.perf_counter()
        for _ in range(samples):
            for name in CALLS:
                begun = time.perf_counter()
                await calls[name]()
                times[name].append((time.perf_counter() - begun) * 1000)
                await anyio.sleep(gap)
        rate = (fake.status_calls - polls) / (time.perf_counter() - started)
    return times, rate


def quantiles(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=10)[8]


async def run(label: str, url: URL, args: argparse.Namespace) -> None:
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=10 * 86_400))
    await load(url, args.history, args.users, args.in_flight, fake)
    store = SQLStore(url)
    try:
        task_ids = [task.id for task in (await store.list(TaskQuery(limit=200))).items]
    finally:
        await store.close()
    store_kwargs: dict[str, Any] = {}
    if args.reserved is not None:
        store_kwargs["reserved_connections"] = args.reserved
    pooled: dict[tuple[bool, str], list[float]] = {}
    per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in CALLS}
    rates: list[float] = []
    for number in range(args.rounds):
        results: dict[bool, dict[str, list[float]]] = {}
        for loaded in (False, True) if number % 2 == 0 else (True, False):
            times, rate = await phase(
                url,
                fake,
                loaded=loaded,
                samples=args.samples,
                gap=args.gap / 1000,
                users=args.users,
                task_ids=task_ids,
                store_kwargs=store_kwargs,
            )
            results[loaded] = times
            if loaded:
                rates.append(rate)
            for name, samples in times.items():
                pooled.setdefault((loaded, name), []).extend(samples)
        for name in CALLS:
            idle, busy = quantiles(results[False][name]), quantiles(results[True][name])
            per_round[name].append((busy[0] / idle[0], busy[1] / idle[1]))
    print(
        f"\n## {label}: {args.history:,} finished tasks, {args.users} users, "
        f"{args.in_flight:,} in flight; engine {statistics.median(rates):,.0f} polls/s "
        f"(rounds {min(rates):,.0f} to {max(rates):,.0f}); {args.rounds} rounds x "
        f"{args.samples} calls each\n"
    )
    print(
        "| call | idle p50 (ms) | idle p90 | loaded p50 | loaded p90 | p50 ratio | p90 ratio "
        "| p50 ratio, rounds | p90 ratio, rounds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in CALLS:
        idle, busy = quantiles(pooled[False, name]), quantiles(pooled[True, name])
        r50 = [r[0] for r in per_round[name]]
        r90 = [r[1] for r in per_round[name]]
        print(
            f"| {name} | {idle[0]:.2f} | {idle[1]:.2f} | {busy[0]:.2f} | {busy[1]:.2f} "
            f"| {busy[0] / idle[0]:.2f}x | {busy[1] / idle[1]:.2f}x "
            f"| {min(r50):.2f} to {max(r50):.2f}x | {min(r90):.2f} to {max(r90):.2f}x |"
        )


async def admin(server: URL, sql: str) -> None:
    """Run a statement that must not be inside a transaction."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=100, help="calls of each kind per phase")
    parser.add_argument(
        "--reserved", type=int, help="the store's reserved_connections (default: its own)"
    )
    parser.add_argument("--gap", type=float, default=5.0, help="ms between two API calls")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "SORA_TASKS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            url = make_url(f"sqlite+aiosqlite:///{Path(directory) / 'api.db'}")
            await run("SQLite", url, args)
    if args.backend in ("postgres", "both"):
        server = make_url(args.postgres_url)
        bench = server.set(database=f"{server.database}_apiload")
        await admin(server, f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')
        await admin(server, f'CREATE DATABASE "{bench.database}"')
        try:
            await run("PostgreSQL", bench, args)
        finally:
            await admin(server, f'DROP DATABASE IF EXISTS "{bench.database}" WITH (FORCE)')


if __name__ == "__main__":
    anyio.run(main)
