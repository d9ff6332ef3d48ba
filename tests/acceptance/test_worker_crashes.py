"""Real worker processes against the simulator over a real socket, killed with signals."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from sora_tasks import Task, TaskStatus
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore
from sora_tasks.testing import Faults, SimulatorApp, create_simulator_app, serve_in_thread

pytestmark = [pytest.mark.anyio, pytest.mark.acceptance, pytest.mark.timeout(120)]

ROOT = Path(__file__).parents[2]


class Workers:
    """Starts worker processes and makes sure none outlives the test."""

    def __init__(self, tmp_path: Path, base_url: str) -> None:
        self.tmp_path = tmp_path
        self.base_url = base_url
        self.db = tmp_path / "tasks.db"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, **config: object) -> tuple[subprocess.Popen[bytes], Path]:
        ready = self.tmp_path / f"{name}.ready"
        settings = {"db": str(self.db), "base_url": self.base_url, "ready": str(ready), **config}
        with (self.tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.acceptance.worker", json.dumps(settings)],
                cwd=ROOT,
                stderr=log,
            )
        self.processes.append(process)
        return process, ready

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[SimulatorApp], Workers]]:
    """Serves a simulator on 127.0.0.1 and hands out workers that talk to it."""
    made: list[Workers] = []
    with ExitStack() as servers:

        def make(app: SimulatorApp) -> Workers:
            made.append(Workers(tmp_path, servers.enter_context(serve_in_thread(app))))
            return made[-1]

        yield make
        for group in made:
            group.stop_all()


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Re-check ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.05)


async def read_tasks(db: Path) -> list[Task]:
    if not db.exists():
        return []
    store = SQLStore(f"sqlite+aiosqlite:///{db}", create=False)
    try:
        return list((await store.list(TaskQuery(limit=500, order="asc"))).items)
    except Exception:
        return []  # not migrated yet: the worker is still starting
    finally:
        await store.close()


async def test_sigkill_mid_poll_then_a_new_worker_finishes_with_one_create_per_task(
    workers: Callable[[SimulatorApp], Workers],
) -> None:
    simulator = create_simulator_app(render_seconds=4, queue_seconds=0.5, poll_after_ms=100)
    group = workers(simulator)
    first, _ = group.start("first", create=5, lease_seconds=2)

    async def rendering() -> bool:
        tasks = await read_tasks(group.db)
        return (
            len(tasks) == 5
            and all(t.external_id for t in tasks)
            and any(t.status is TaskStatus.PROCESSING and t.progress > 0 for t in tasks)
        )

    await eventually(rendering, timeout=30, what="five tasks rendering")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    before = {t.id: t.external_id for t in await read_tasks(group.db)}
    assert all(t.status is not TaskStatus.COMPLETED for t in await read_tasks(group.db))

    second, _ = group.start("second", lease_seconds=2)

    async def all_done() -> bool:
        tasks = await read_tasks(group.db)
        return bool(tasks) and all(t.status is TaskStatus.COMPLETED for t in tasks)

    await eventually(all_done, timeout=60, what="every task COMPLETED")
    after = await read_tasks(group.db)
    assert {t.id: t.external_id for t in after} == before
    assert simulator.state.creates == 5
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0


async def test_killed_between_the_create_answer_and_the_commit_is_not_submitted_again(
    workers: Callable[[SimulatorApp], Workers], tmp_path: Path
) -> None:
    simulator = create_simulator_app(render_seconds=2, queue_seconds=0, poll_after_ms=100)
    group = workers(simulator)
    marker = tmp_path / "answered"
    first, _ = group.start("first", create=1, lease_seconds=1, hang_after_create=str(marker))

    async def answered() -> bool:
        return marker.exists() and bool(marker.read_text())

    await eventually(answered, timeout=30, what="the create to be answered")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    (orphan,) = await read_tasks(group.db)
    assert orphan.external_id is None and orphan.submission_id is not None

    group.start("second", lease_seconds=1)

    async def settled() -> bool:
        return all(t.is_terminal for t in await read_tasks(group.db))

    await eventually(settled, timeout=30, what="the orphan to be settled")
    (task,) = await read_tasks(group.db)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None and task.error.code == "submit_uncertain"
    assert simulator.state.creates == 1


async def test_sigterm_exits_within_the_grace_and_a_peer_resumes_at_once(
    workers: Callable[[SimulatorApp], Workers],
) -> None:
    simulator = create_simulator_app(render_seconds=600, queue_seconds=0, poll_after_ms=100)
    group = workers(simulator)
    first, ready = group.start("first", create=3, lease_seconds=300, shutdown_grace=2)

    async def started() -> bool:
        return ready.exists()

    await eventually(started, timeout=30, what="the first worker to create its tasks")
    # from now on every status request hangs, so polls are in flight when SIGTERM comes
    simulator.state.faults.set("retrieve", Faults(slow_responses=sys.maxsize, delay=60))
    hung = simulator.state.hits["retrieve"]

    async def polls_in_flight() -> bool:
        return simulator.state.hits["retrieve"] >= hung + 3

    await eventually(polls_in_flight, timeout=30, what="three polls in flight")
    began = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert time.monotonic() - began < 2 + 3, "the worker overstayed its 2 s grace"
    tasks = await read_tasks(group.db)
    assert all(t.lease_owner is None for t in tasks), "leases must be handed back on shutdown"

    simulator.state.faults.set("retrieve", None)
    polled = {t.id: t.polled_at for t in tasks}
    group.start("second", lease_seconds=300)

    async def resumed() -> bool:
        return all(t.polled_at != polled[t.id] for t in await read_tasks(group.db))

    # far sooner than the 300 s lease the first worker held
    await eventually(resumed, timeout=20, what="the peer to poll every task")


async def test_a_worker_killed_while_saving_videos_leaves_them_to_a_peer_that_saves_them_all(
    workers: Callable[[SimulatorApp], Workers], tmp_path: Path
) -> None:
    simulator = create_simulator_app(render_seconds=1, queue_seconds=0, poll_after_ms=100)
    # every download hangs: the first worker records each completion and then stalls saving it
    simulator.state.faults.set("content", Faults(slow_responses=sys.maxsize, delay=60))
    group = workers(simulator)
    videos = tmp_path / "videos"
    videos.mkdir()
    first, _ = group.start("first", create=4, lease_seconds=2, download_dir=str(videos))

    async def completed_unsaved() -> bool:
        tasks = await read_tasks(group.db)
        return len(tasks) == 4 and all(
            t.status is TaskStatus.COMPLETED and t.content_pending for t in tasks
        )

    await eventually(completed_unsaved, timeout=30, what="four completed tasks, videos unsaved")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    assert not any(videos.iterdir())

    simulator.state.faults.set("content", None)
    second, _ = group.start("second", lease_seconds=2, download_dir=str(videos))

    async def all_saved() -> bool:
        tasks = await read_tasks(group.db)
        return bool(tasks) and all(not t.content_pending for t in tasks)

    await eventually(all_saved, timeout=60, what="every video saved")
    expected = hashlib.sha256(simulator.state.config.content.data).hexdigest()
    for task in await read_tasks(group.db):
        assert task.status is TaskStatus.COMPLETED
        assert task.result is not None and task.result.local_path is not None
        saved = Path(task.result.local_path)
        assert saved.parent == videos
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected == task.result.sha256
    assert simulator.state.creates == 4
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0
