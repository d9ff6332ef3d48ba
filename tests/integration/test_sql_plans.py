"""SQLite's query plans for the hot queries: the indexes they rely on stay in use."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ClauseElement

from sora_tasks import TaskStatus
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore
from sora_tasks.storage import _sql_queries as q
from sora_tasks.storage._sql_schema import tasks

pytestmark = pytest.mark.anyio


def rows(count: int, now: Any) -> list[dict[str, Any]]:
    rng = random.Random(3)
    statuses = [status.value for status in TaskStatus]
    made = []
    for index in range(count):
        status = rng.choice(statuses)
        active = status in ("QUEUED", "PROCESSING")
        made.append(
            {
                "id": f"video_{index:08d}-0000-4000-8000-000000000000",
                "provider": "fake",
                "external_id": f"job_{index}",
                "user_id": f"user_{index % 20}",
                "status": status,
                "media_type": "VIDEO",
                "prompt": "p",
                "model": "sora-2",
                "size": "1280x720",
                "seconds": 4,
                "progress": 0,
                "metadata": {},
                "priority": 0,
                "created_at": now - timedelta(seconds=index),
                "updated_at": now,
                "render_seconds": 60.0 if status == "COMPLETED" else None,
                "next_poll_at": now - timedelta(seconds=rng.uniform(-60, 60)) if active else None,
                "poll_failures": 0,
                "version": 1,
            }
        )
    return made


async def plan(store: SQLStore, statement: ClauseElement) -> str:
    async with store._engine.connect() as conn:
        compiled = statement.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
        found = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        return "\n".join(str(row[-1]) for row in found.all())


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
async def test_sqlite_claims_walk_the_due_index_in_order(tmp_path: Path, analyzed: bool) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    try:
        now = await store.now()
        async with store._engine.begin() as conn:
            await conn.execute(tasks.insert(), rows(2000, now))
            if analyzed:
                await conn.exec_driver_sql("ANALYZE")
        claim = await plan(
            store, q.claim_due("sqlite", owner="w", limit=100, lease_seconds=30, content=True)
        )
        page = await plan(
            store, q.list_tasks(TaskQuery(user_id="user_1", status=TaskStatus.FAILED))
        )
        stats = await plan(store, q.stats_rows("sqlite", None))
    finally:
        await store.close()
    assert "USING INDEX ix_sora_tasks_due" in claim
    assert "TEMP B-TREE" not in claim
    assert "ix_sora_tasks_user_id_status_created_at_id (user_id=? AND status=?)" in page
    assert "TEMP B-TREE" not in page
    # the percentiles walk the render-time index to an offset: no sort of every completed task
    assert "COVERING INDEX ix_sora_tasks_render_seconds" in stats
    assert "TEMP B-TREE FOR ORDER BY" not in stats
    # the global cost sums scan the table, not every row looked up through a user index
    assert "SCAN sora_tasks USING INDEX" not in stats
