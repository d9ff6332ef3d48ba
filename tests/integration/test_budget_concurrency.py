"""Eight processes create at once under one overall budget: spending never passes the limit."""

from __future__ import annotations

import json
import sys
import time

import anyio
import pytest
from sqlalchemy import URL

from sora_tasks.storage import SQLStore

pytestmark = pytest.mark.anyio

PROCESSES = 8
CREATES = 4
LIMIT = 10  # USD; each task costs 1


async def test_concurrent_processes_never_overspend(sql_url: URL) -> None:
    config = {
        "url": sql_url.render_as_string(hide_password=False),
        "creates": CREATES,
        "limit": LIMIT,
        "start_at": time.time() + 4.0,  # each process imports and connects before then
    }
    command = [sys.executable, "-m", "tests.integration.budget_worker", json.dumps(config)]
    outcomes: list[dict[str, int]] = []

    async def run() -> None:
        done = await anyio.run_process(command, check=False)
        assert done.returncode == 0, done.stderr.decode()
        outcomes.append(json.loads(done.stdout))

    with anyio.fail_after(50):
        async with anyio.create_task_group() as group:
            for _ in range(PROCESSES):
                group.start_soon(run)
    admitted = sum(outcome["admitted"] for outcome in outcomes)
    refused = sum(outcome["refused"] for outcome in outcomes)
    store = SQLStore(sql_url)
    try:
        stats = await store.stats()
    finally:
        await store.close()
    assert admitted + refused == PROCESSES * CREATES
    # exact: every admission saw every one before it
    assert admitted == LIMIT == stats.total
    assert stats.cost_total == {"USD": float(LIMIT)}
