"""Eight claimers with engines of their own share 200 due tasks: no task is polled twice at once,
every task completes exactly once, none is missed."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import URL

from sora_tasks import ConflictError, Task, TaskStatus
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore

pytestmark = pytest.mark.anyio

WORKERS = 8
TASKS = 200
BATCH = 10
POLL_SECONDS = 0.05


class Ledger:
    """What the simulated provider saw: polls in flight per task, and completions."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.conflicts = 0
        self.all_done = anyio.Event()

    async def poll(self, task_id: str) -> None:
        self.in_flight[task_id] += 1
        self.most_in_flight[task_id] = max(self.most_in_flight[task_id], self.in_flight[task_id])
        try:
            await anyio.sleep(POLL_SECONDS)  # the provider call takes a while
        finally:
            self.in_flight[task_id] -= 1


async def worker(store: SQLStore, owner: str, ledger: Ledger) -> None:
    async def handle(task: Task) -> None:
        await ledger.poll(task.id)
        try:
            await store.update(task.id, expected_version=task.version, status=TaskStatus.COMPLETED)
        except ConflictError:
            ledger.conflicts += 1
            return
        ledger.completed[task.id] += 1
        if len(ledger.completed) == TASKS:
            ledger.all_done.set()

    while not ledger.all_done.is_set():
        claimed = await store.claim_due(owner=owner, limit=BATCH, lease_seconds=30)
        if not claimed:
            with anyio.move_on_after(0.05):
                await ledger.all_done.wait()
            continue
        async with anyio.create_task_group() as group:
            for task in claimed:
                group.start_soon(handle, task)


async def test_eight_claimers_poll_each_task_alone_and_finish_all(sql_url: URL) -> None:
    workers = [SQLStore(sql_url) for _ in range(WORKERS)]
    try:
        now = await workers[0].now()
        for index in range(TASKS):
            await workers[0].insert(
                Task(
                    provider="fake",
                    prompt=f"task {index}",
                    model="sora-2",
                    size="1280x720",
                    seconds=4,
                    created_at=now,
                    updated_at=now,
                    external_id=f"job_{index}",
                    next_poll_at=now - timedelta(seconds=1),
                )
            )
        ledger = Ledger()
        with anyio.fail_after(45):
            async with anyio.create_task_group() as group:
                for number, store in enumerate(workers):
                    group.start_soon(worker, store, f"worker-{number}", ledger)
        page = await workers[0].list(TaskQuery(status=TaskStatus.COMPLETED, limit=500))
    finally:
        for store in workers:
            await store.close()

    assert max(ledger.most_in_flight.values()) == 1
    assert ledger.conflicts == 0
    assert len(ledger.completed) == TASKS
    assert set(ledger.completed.values()) == {1}
    assert {task.id for task in page.items} == set(ledger.completed)
