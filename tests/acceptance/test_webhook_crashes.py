"""Webhooks survive SIGKILLed workers: every event arrives at least once, in order per task.

Real worker processes share a database (an SQLite file, or PostgreSQL) and a simulator on
127.0.0.1; the receiver, served in
this process on 127.0.0.1 (allowed explicitly), verifies every signature with
``standardwebhooks``. The first worker is killed while its POSTs hang at the receiver (and
before it claimed the rest), the second right after its first attempts failed (before their
retry), and a third finishes the job.
"""

from __future__ import annotations

import base64
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sora_tasks import Task, TaskStatus, WebhookDelivery, WebhookState
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore
from sora_tasks.testing import SimulatorApp, create_simulator_app, serve_in_thread
from tests.acceptance.test_worker_crashes import Workers, eventually
from tests.acceptance.test_worker_crashes import workers as workers  # the fixture
from tests.sql_databases import database_url
from tests.webhook_receiver import Answer, Received, Receiver

pytestmark = [pytest.mark.anyio, pytest.mark.acceptance, pytest.mark.timeout(90)]

SECRET = "whsec_" + base64.b64encode(b"crash-test-webhook-secret-32-byt").decode()
TASKS = 5


async def outbox(url: str) -> list[WebhookDelivery]:
    store = SQLStore(url, create=False)
    try:
        return list(await store.list_webhooks(limit=1000))
    except Exception:
        return []  # not migrated yet: the worker is still starting
    finally:
        await store.close()


async def read_tasks(url: str) -> list[Task]:
    store = SQLStore(url, create=False)
    try:
        return list((await store.list(TaskQuery(limit=500, order="asc"))).items)
    except Exception:
        return []  # not migrated yet: the worker is still starting
    finally:
        await store.close()


class Phases:
    """The receiver's behaviour, switched by the test: hang, then fail once, then accept."""

    def __init__(self) -> None:
        self.mode = "hang"
        self.failed: set[str] = set()
        self.answered_500 = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, item: Received, seen: int) -> Answer:
        with self._lock:
            if self.mode == "hang":
                # longer than the test waits before the kill, shorter than the sender's timeout
                return Answer(status=200, delay=6.0)
            if self.mode == "fail once" and item.id not in self.failed:
                self.failed.add(item.id)
                self.answered_500.set()
                return Answer(status=500)
            return Answer(status=200)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_webhooks_survive_workers_killed_before_and_during_delivery(
    workers: Callable[[SimulatorApp], Workers],
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    async with database_url(backend, tmp_path, request) as url:
        await crash_and_recover(workers, monkeypatch, url.render_as_string(hide_password=False))


async def crash_and_recover(
    workers: Callable[[SimulatorApp], Workers], monkeypatch: pytest.MonkeyPatch, db: str
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    phases = Phases()
    receiver = Receiver(SECRET, phases)
    simulator = create_simulator_app(
        render_seconds=1.0, queue_seconds=0.2, poll_after_ms=100, fail_prompts=["task 2"]
    )
    group = workers(simulator)
    with serve_in_thread(receiver) as hooks:
        url = f"{hooks}/hooks"
        first, _ = group.start(
            "first", url=db, create=TASKS, lease_seconds=2, notify_url=url, notify_progress=True
        )

        async def ended_and_hanging() -> bool:
            tasks = await read_tasks(db)
            return (
                len(tasks) == TASKS
                and all(task.is_terminal for task in tasks)
                and len(receiver.received) >= 1
            )

        await eventually(ended_and_hanging, timeout=30, what="every task ended, a POST hanging")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        rows = await outbox(db)
        assert {row.task_id for row in rows if row.type != "video.progress"} == {
            task.id for task in await read_tasks(db)
        }
        assert any(row.state is WebhookState.PENDING for row in rows)

        with phases._lock:
            phases.mode = "fail once"
        second, _ = group.start("second", url=db, lease_seconds=2, webhook_lease=3)

        async def some_failed() -> bool:
            return phases.answered_500.is_set() and any(
                row.last_error == "HTTP 500" for row in await outbox(db)
            )

        await eventually(some_failed, timeout=30, what="a failed attempt recorded")
        second.send_signal(signal.SIGKILL)
        assert second.wait(timeout=10) == -signal.SIGKILL

        with phases._lock:
            phases.mode = "accept"
        group.start("third", url=db, lease_seconds=2, webhook_lease=3)

        async def all_delivered() -> bool:
            rows = await outbox(db)
            return bool(rows) and all(row.state is WebhookState.DELIVERED for row in rows)

        await eventually(all_delivered, timeout=40, what="every delivery delivered")
    group.stop_all()

    tasks = {task.id: task for task in await read_tasks(db)}
    rows = await outbox(db)
    assert receiver.unverified == 0
    by_id = {row.id: row for row in rows}
    # none lost: every terminal event reached the receiver, of the right kind
    ends = {row.task_id: row for row in rows if row.type != "video.progress"}
    assert set(ends) == set(tasks)
    arrived = set(receiver.ids())
    for task_id, row in ends.items():
        assert row.id in arrived
        expected = "video.completed" if tasks[task_id].status is TaskStatus.COMPLETED else None
        assert row.type == (expected or "video.failed")
    assert {task.status for task in tasks.values()} == {TaskStatus.COMPLETED, TaskStatus.FAILED}
    # duplicates are the same delivery, sent again with the same webhook-id
    assert arrived <= set(by_id)
    assert len(receiver.received) > len(arrived), "no delivery was ever repeated"
    for item in receiver.received:
        assert by_id[item.id].task_id == item.task_id
        assert by_id[item.id].type == item.type
    # per task, the first arrivals follow the order the events were recorded in
    for task_id in tasks:
        firsts = list(dict.fromkeys(i.id for i in receiver.received if i.task_id == task_id))
        assert firsts == [
            row.id for row in sorted(rows, key=lambda r: r.seq) if row.task_id == task_id
        ]
