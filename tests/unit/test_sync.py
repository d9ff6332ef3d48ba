"""SyncTaskManager: the async manager's methods, blocking, from code without an event loop."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sora_tasks import (
    ManagerNotRunningError,
    PollingPolicy,
    SyncTaskManager,
    TaskFailedError,
    TaskManager,
    TaskNotFoundError,
    TaskStatus,
)
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)


def sync_manager(behaviour: FakeBehaviour = QUICK) -> SyncTaskManager:
    return SyncTaskManager(providers={"fake": FakeProvider(behaviour=behaviour)}, policy=FAST)


def public_methods(cls: type) -> set[str]:
    return {
        name for name, member in vars(cls).items() if callable(member) and not name.startswith("_")
    }


def test_it_offers_every_method_of_task_manager_with_the_same_parameters() -> None:
    assert public_methods(TaskManager) <= public_methods(SyncTaskManager)
    for name in public_methods(TaskManager):
        expected = inspect.signature(getattr(TaskManager, name)).parameters
        actual = inspect.signature(getattr(SyncTaskManager, name)).parameters
        assert list(actual) == list(expected), name
        assert [p.default for p in actual.values()] == [p.default for p in expected.values()], name


def test_generate_blocks_until_the_video_is_on_disk(tmp_path: Path) -> None:
    with sync_manager() as manager:
        task = manager.generate("a calico cat playing piano", output=tmp_path / "cat.mp4")
        assert task.status is TaskStatus.COMPLETED
        assert (tmp_path / "cat.mp4").read_bytes() == sample_video()
        page = manager.list()
        assert [item.id for item in page.items] == [task.id]
        assert manager.stats().by_status[TaskStatus.COMPLETED] == 1


def test_open_content_yields_the_bytes_of_the_video() -> None:
    with sync_manager() as manager:
        task = manager.wait(manager.create("a bird").id, timeout=10)
        with manager.open_content(task.id) as chunks:
            assert b"".join(chunks) == sample_video()


def test_create_wait_download_and_cancel_each_block(tmp_path: Path) -> None:
    with sync_manager() as manager:
        task = manager.create("a dog", user_id="u1")
        done = manager.wait(task.id, timeout=10)
        assert done.status is TaskStatus.COMPLETED
        saved = manager.download(task.id, tmp_path / "dog.mp4", user_id="u1")
        assert saved.result is not None
        assert saved.result.local_path == str(tmp_path / "dog.mp4")
        assert manager.cancel(task.id).status is TaskStatus.COMPLETED


def test_errors_arrive_as_they_are_raised_not_wrapped() -> None:
    failing = FakeBehaviour(render_for=0.05, poll_after=0.01, outcome="failed")
    with sync_manager(failing) as manager:
        with pytest.raises(TaskNotFoundError):
            manager.get("video_00000000-0000-0000-0000-000000000000")
        with pytest.raises(TaskFailedError, match="generation_failed"):
            manager.generate("a doomed render", output="never.mp4")


def test_calls_outside_the_with_block_say_how_to_use_it() -> None:
    manager = sync_manager()
    with pytest.raises(ManagerNotRunningError, match="with SyncTaskManager"):
        manager.list()
    with manager:
        manager.list()
    with pytest.raises(ManagerNotRunningError):
        manager.list()


def test_it_wraps_a_ready_task_manager_or_takes_its_arguments_not_both() -> None:
    ready = TaskManager(providers={"fake": FakeProvider(behaviour=QUICK)}, policy=FAST)
    with SyncTaskManager(ready) as manager:
        assert manager.manager is ready
        assert manager.create("a fish").provider == "fake"
        assert manager.policy is ready.policy
        assert set(manager.providers) == {"fake"}
    with pytest.raises(TypeError, match="not both"):
        SyncTaskManager(ready, policy=FAST)


def test_events_is_a_plain_iterator_of_the_task_changes() -> None:
    with sync_manager() as manager:
        task = manager.create("a bird")
        seen = []
        for event in manager.events(task.id):
            seen.append(event.task.status)
            if event.task.is_terminal:
                break
        assert seen[-1] is TaskStatus.COMPLETED


def test_run_worker_returns_on_sigterm_and_the_block_then_stops_the_engine() -> None:
    assert threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    with sync_manager() as manager:
        task = manager.create("a worker's job")

        def stop_once_done() -> None:
            deadline = time.monotonic() + 10
            while not manager.get(task.id).is_terminal and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)

        stopper = threading.Thread(target=stop_once_done)
        stopper.start()
        manager.run_worker()
        stopper.join(10)
        assert manager.get(task.id).status is TaskStatus.COMPLETED
    assert signal.getsignal(signal.SIGTERM) == previous


def test_content_url_blocks_and_refuses_another_users_task() -> None:
    with SyncTaskManager(
        providers={"fake": FakeProvider(behaviour=QUICK)}, policy=FAST, archive="memory://"
    ) as manager:
        task = manager.wait(manager.create("archived", user_id="u1").id, timeout=10)
        assert task.result is not None and task.result.archive_uri is not None
        assert manager.archive_url(task.id, user_id="u1") is None, "memory cannot sign"
        assert manager.content_url(task.id, user_id="u1") == task.result.url
        with pytest.raises(TaskNotFoundError):
            manager.content_url(task.id, user_id="u2")
