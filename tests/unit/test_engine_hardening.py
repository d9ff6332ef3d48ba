"""The engine survives what goes wrong around it: a task's error, a store outage, a slow provider,
a video that cannot be fetched yet; and completed videos are collected by any worker."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Unpack

import anyio
import pytest

from sora_tasks import (
    DownloadError,
    Limits,
    PollingPolicy,
    ProviderRejectedError,
    ProviderServerError,
    StoreUnavailableError,
    Task,
    TaskManager,
    TaskStatus,
)
from sora_tasks._schedule import PollSchedule
from sora_tasks._states import Phase, TaskChanges, phase_of
from sora_tasks.providers import ContentStream, ProviderJob
from sora_tasks.providers._base import ContentVariant
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(
    retry_interval=0.05,
    max_retry_interval=0.2,
    idle_wait=0.05,
    store_retry_interval=0.05,
    schedule=PollSchedule(first_interval=0.05, dense_window=0.1, dense_interval=0.05),
)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)


async def until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until ``condition()`` holds, failing the test after ``within`` seconds."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - the conditions are plain counters
            await anyio.sleep(0.01)


class FlakyStore(InMemoryStore):
    """An in-memory store whose writes of chosen tasks, or whose claims, fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.poisoned: set[str] = set()
        self.claims_down = False
        self.failed_claims = 0

    async def update(
        self, task_id: str, *, expected_version: int | None = None, **changes: Unpack[TaskChanges]
    ) -> Task:
        if task_id in self.poisoned:
            raise RuntimeError("a bug in somebody's store")
        return await super().update(task_id, expected_version=expected_version, **changes)

    async def claim_due(
        self, *, owner: str, limit: int, lease_seconds: float, content: bool = False
    ) -> Sequence[Task]:
        if self.claims_down:
            self.failed_claims += 1
            raise StoreUnavailableError("the sqlite task store is unavailable (OperationalError)")
        return await super().claim_due(
            owner=owner, limit=limit, lease_seconds=lease_seconds, content=content
        )


async def test_an_unexpected_error_in_one_task_is_logged_with_its_traceback_and_the_engine_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    fake = FakeProvider(behaviour=QUICK)
    async with TaskManager(providers={"fake": fake}, store=store, policy=FAST) as manager:
        doomed = await manager.create("one task whose writes break")
        store.poisoned.add(doomed.id)
        with caplog.at_level(logging.ERROR, logger="sora_tasks"):
            await until(lambda: any(r.exc_info for r in caplog.records))
            healthy = await manager.create("a task after the failure")
            finished = await manager.wait(healthy.id, timeout=10)
    assert finished.status is TaskStatus.COMPLETED
    record = next(r for r in caplog.records if r.exc_info)
    assert record.task_id == doomed.id  # type: ignore[attr-defined]
    assert "processing the task failed (RuntimeError)" in record.getMessage()


async def test_a_store_outage_pauses_claiming_with_backoff_and_work_resumes_after() -> None:
    store = FlakyStore()
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.3, poll_after=0.01))
    async with TaskManager(providers={"fake": fake}, store=store, policy=FAST) as manager:
        task = await manager.create("survives the outage")
        store.claims_down = True
        started = anyio.current_time()
        await until(lambda: store.failed_claims >= 4)
        # 0.05 + 0.1 + 0.2 (capped) s of backoff before the fourth try, not one try per idle wait
        assert anyio.current_time() - started >= 0.3
        store.claims_down = False
        finished = await manager.wait(task.id, timeout=10)
    assert finished.status is TaskStatus.COMPLETED


class SlowStatusProvider(FakeProvider):
    """Answers every status call after ``delay`` seconds, counting the calls in flight."""

    def __init__(self, delay: float) -> None:
        super().__init__(behaviour=QUICK)
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0

    async def status(self, external_id: str) -> ProviderJob:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay)
            return await super().status(external_id)
        finally:
            self.in_flight -= 1


async def test_a_provider_call_ends_before_the_lease_so_one_job_is_never_polled_twice_at_once() -> (
    None
):
    provider = SlowStatusProvider(delay=3600)
    policy = FAST.model_copy(update={"lease_seconds": 1.5, "max_poll_failures": 3})
    async with TaskManager(providers={"slow": provider}, policy=policy) as manager:
        task = await manager.create("a status answer that never comes")
        started = anyio.current_time()
        finished = await manager.wait(task.id, timeout=30)
    assert finished.status is TaskStatus.FAILED
    assert finished.error is not None
    assert "longer than its bound" in finished.error.message
    assert provider.most_in_flight == 1
    assert provider.calls == 3
    # three polls of at most lease - margin (0.5 s), plus backoffs: nowhere near an hour
    assert anyio.current_time() - started < 10


async def test_a_slow_poll_cannot_outlive_the_task_deadline_by_more_than_seconds() -> None:
    provider = SlowStatusProvider(delay=3600)
    policy = FAST.model_copy(update={"lease_seconds": 60, "deadline": timedelta(seconds=1)})
    async with TaskManager(providers={"slow": provider}, policy=policy) as manager:
        task = await manager.create("deadline first")
        finished = await manager.wait(task.id, timeout=10)
    assert finished.status is TaskStatus.FAILED
    assert finished.error is not None
    assert finished.error.code == "timeout"
    assert finished.completed_at is not None and finished.deadline_at is not None
    assert finished.completed_at - finished.deadline_at < timedelta(seconds=4)


class BrokenContentProvider(FakeProvider):
    """A fake whose content download fails ``failures`` times, then works."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__(behaviour=QUICK)
        self.failures = failures
        self.error = error or ProviderServerError("the file server hiccupped", status_code=503)
        self.opened = 0

    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        self.opened += 1
        if self.failures > 0:
            self.failures -= 1
            return _raising(self.error)
        return super().open_content(external_id, variant)


class _raising(AbstractAsyncContextManager[ContentStream]):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __aenter__(self) -> ContentStream:
        raise self.error

    async def __aexit__(self, *_: object) -> None:
        return None


async def test_completion_is_recorded_with_the_content_still_pending_until_the_video_is_saved(
    tmp_path: Path,
) -> None:
    provider = BrokenContentProvider(failures=2)
    seen: list[Task] = []
    async with TaskManager(
        providers={"fake": provider},
        policy=FAST,
        download_dir=tmp_path,
        on_event=lambda event: seen.append(event.task),
    ) as manager:
        task = await manager.create("saved on the third try")
        finished = await manager.wait(task.id, timeout=10)
    assert finished.status is TaskStatus.COMPLETED
    assert not finished.content_pending
    assert finished.result is not None and finished.result.local_path is not None
    assert Path(finished.result.local_path).read_bytes() == sample_video()
    assert provider.opened == 3
    first_completed = next(t for t in seen if t.status is TaskStatus.COMPLETED)
    assert first_completed.content_pending
    assert phase_of(first_completed) is Phase.COLLECTING
    assert first_completed.next_poll_at is not None


async def test_a_video_that_cannot_be_saved_before_its_link_expires_ends_failed_expired(
    tmp_path: Path,
) -> None:
    provider = BrokenContentProvider(failures=1_000)
    policy = FAST.model_copy(update={"link_lifetime": timedelta(seconds=0.5)})
    async with TaskManager(
        providers={"fake": provider}, policy=policy, download_dir=tmp_path
    ) as manager:
        task = await manager.create("never saved")
        finished = await manager.wait(task.id, timeout=10)
    assert finished.status is TaskStatus.FAILED
    assert finished.error is not None and finished.error.code == "expired"
    assert "could not be saved" in finished.error.message
    assert provider.opened >= 2, "it kept trying while the link was valid"
    assert list(tmp_path.iterdir()) == []


async def test_a_provider_that_no_longer_has_the_video_ends_it_expired_at_once(
    tmp_path: Path,
) -> None:
    gone = ProviderRejectedError("no such video", status_code=404)
    provider = BrokenContentProvider(failures=1_000, error=gone)
    async with TaskManager(
        providers={"fake": provider}, policy=FAST, download_dir=tmp_path
    ) as manager:
        task = await manager.create("gone")
        finished = await manager.wait(task.id, timeout=10)
    assert finished.error is not None and finished.error.code == "expired"
    assert provider.opened == 1


async def test_a_completed_task_left_by_a_dead_worker_is_collected_by_another(
    tmp_path: Path,
) -> None:
    store = InMemoryStore()
    provider = FakeProvider(behaviour=QUICK)
    async with TaskManager(providers={"fake": provider}, store=store, policy=FAST) as manager:
        done = await manager.wait((await manager.create("rendered")).id, timeout=10)
    assert done.external_id is not None
    # what a worker that died right after recording completion leaves: content pending, its
    # lease (long) run out
    past = datetime.now(UTC) - timedelta(seconds=1)
    orphan = Task(
        **{
            **done.model_dump(exclude={"id", "external_id", "result", "version"}),
            "external_id": done.external_id + "-orphan",
            "content_pending": True,
            "next_poll_at": past,
            "lease_owner": "dead-worker",
            "lease_expires_at": past,
        }
    )
    provider.jobs[orphan.external_id] = provider.jobs[done.external_id]  # type: ignore[index]
    await store.insert(orphan)
    async with TaskManager(
        providers={"fake": provider}, store=store, policy=FAST, download_dir=tmp_path
    ) as manager:
        collected = await manager.wait(orphan.id, timeout=10)
    assert collected.status is TaskStatus.COMPLETED and not collected.content_pending
    assert (
        collected.result is not None
        and collected.result.sha256 == hashlib.sha256(sample_video()).hexdigest()
    )


class _Drip(ContentStream):
    content_length = 1_000_000

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            yield b"x"
            await anyio.sleep(0.05)


class DrippingProvider(FakeProvider):
    """A fake whose video arrives a byte at a time, for ever."""

    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        return nullcontext(_Drip())


async def test_the_managers_download_limits_apply_to_download_and_to_the_engine(
    tmp_path: Path,
) -> None:
    limits = Limits(download_min_bytes_per_second=1024, download_speed_window=0.5)
    provider = DrippingProvider(behaviour=QUICK)
    async with TaskManager(providers={"drip": provider}, policy=FAST, limits=limits) as manager:
        task = await manager.wait((await manager.create("dripped")).id, timeout=10)
        with anyio.fail_after(10), pytest.raises(DownloadError, match="slower than 1,024 B/s"):
            await manager.download(task.id, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []
