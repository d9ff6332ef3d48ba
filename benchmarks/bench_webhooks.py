"""Benchmark outgoing webhooks: what the outbox adds to a status change, and delivery throughput.

    .venv/bin/python benchmarks/bench_webhooks.py --tasks 500 --backend all

For each store, ``--tasks`` tasks are cancelled twice over: half without a notify URL, half with
one (the update then writes an outbox row in the same transaction), and the median time per update
of each half is printed. Then one :class:`WebhookSender` delivers every row to a receiver on
127.0.0.1 (uvicorn in a thread of this process, answering 200 at once) and the deliveries per
second are printed. PostgreSQL is reached through ``SORA_TASKS_TEST_POSTGRES_URL``; its
database gets a ``_hooks_bench`` suffix and is dropped after the run.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from sora_tasks import TaskStatus, WebhookPolicy, WebhookState
from sora_tasks._notify import WebhookSender, check_webhook_secret
from sora_tasks.storage import InMemoryStore, SQLStore, TaskStore
from sora_tasks.testing import serve_in_thread
from sora_tasks.testing._simulator_asgi import Receive, Scope, Send
from sora_tasks.testing._task_factories import make_task

SECRET = "whsec_" + base64.b64encode(b"benchmark-webhook-secret-32-byte").decode()


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 200 to every POST, after reading its body."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def opened(backend: str, folder: Path) -> AsyncIterator[TaskStore]:
    if backend == "memory":
        yield InMemoryStore()
        return
    if backend == "sqlite":
        store = SQLStore(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
        try:
            yield store
        finally:
            await store.close()
        return
    server = make_url(os.environ["SORA_TASKS_TEST_POSTGRES_URL"])
    name = f"{server.database}_hooks_bench"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        store = SQLStore(server.set(database=name), create=False)
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        await admin.dispose()


async def run(backend: str, tasks: int, folder: Path, hook: str) -> None:
    async with opened(backend, folder) as store:
        now = await store.now()
        plain = [await store.insert(make_task(now)) for _ in range(tasks // 2)]
        notified = [await store.insert(make_task(now, notify_url=hook)) for _ in range(tasks // 2)]
        spent: dict[str, list[float]] = {"without": [], "with": []}
        # interleaved, so that warming up and the machine's load weigh on both alike
        for bare, hooked in zip(plain, notified, strict=True):
            for name, task in (("without", bare), ("with", hooked)):
                started = time.perf_counter()
                await store.update(task.id, status=TaskStatus.CANCELLED)
                spent[name].append(time.perf_counter() - started)
        timings = {name: statistics.median(values) * 1e6 for name, values in spent.items()}
        policy = WebhookPolicy(allow_private=True, batch_size=32)
        sender = WebhookSender(
            store=store, secret=check_webhook_secret(SECRET), policy=policy, owner="bench"
        )
        started = time.perf_counter()
        async with httpx2.AsyncClient(trust_env=False) as client:
            while await sender.turn(client):
                pass
        elapsed = time.perf_counter() - started
        delivered = len(await store.list_webhooks(state=WebhookState.DELIVERED, limit=tasks))
        assert delivered == len(notified), (delivered, len(notified))
        print(
            f"{backend:>8}: update (median) {timings['without']:6.0f} µs without, "
            f"{timings['with']:6.0f} µs with an outbox row; "
            f"{delivered} deliveries in {elapsed:.2f} s = {delivered / elapsed:6.0f}/s"
        )


async def main(arguments: argparse.Namespace) -> None:
    backends = (
        ["memory", "sqlite", "postgres"] if arguments.backend == "all" else [arguments.backend]
    )
    with serve_in_thread(ok) as base, tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            await run(backend, arguments.tasks, Path(folder), f"{base}/hooks")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--backend", choices=["memory", "sqlite", "postgres", "all"], default="all")
    anyio.run(main, parser.parse_args())
