"""TaskManager's use cases, end to end on the in-memory store and the fake provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from sora_tasks import (
    DownloadError,
    GenerationRequest,
    InvalidRequestError,
    ManagerNotRunningError,
    MediaType,
    PollingPolicy,
    ProviderRejectedError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
    Task,
    TaskError,
    TaskFailedError,
    TaskManager,
    TaskNotFoundError,
    TaskNotReadyError,
    TaskStatus,
    UnknownProviderError,
    WaitTimeoutError,
)
from sora_tasks._models import TaskQuery
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import ContentStream
from sora_tasks.providers._base import ContentVariant
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video
from tests.images import make_image

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)


def manager_for(*providers: FakeProvider, **options: object) -> TaskManager:
    named = {f"p{index}": provider for index, provider in enumerate(providers)}
    options.setdefault("policy", FAST)
    return TaskManager(providers=named, **options)  # type: ignore[arg-type]


async def test_create_stores_submits_and_binds_the_external_id() -> None:
    fake = FakeProvider(behaviour=QUICK)
    async with manager_for(fake) as manager:
        task = await manager.create(
            "  a calico cat playing piano ", user_id="u1", metadata={"k": "v"}
        )
        assert task.id.startswith("video_")
        assert task.external_id is not None and task.external_id.startswith("fake_")
        assert task.prompt == "a calico cat playing piano"
        assert (task.model, task.size, task.seconds) == ("fake-video-1", "1280x720", 4)
        assert task.submission_id is not None and task.lease_owner is None
        (sent,) = fake.submissions
        assert sent.task_id == task.id and sent.idempotency_key == task.submission_id
        assert await manager.get(task.id) == await manager.get(task.external_id)


@pytest.mark.parametrize(
    "options",
    [
        {"prompt": ""},
        {"prompt": "x" * 10_001},
        {"prompt": "a", "model": "nope"},
        {"prompt": "a", "seconds": 5},
        {"prompt": "a", "seconds": -1},
        {"prompt": "a", "reference_image": b"not an image"},
        {"prompt": "a", "reference_image": make_image(64, 48)},
        {"prompt": "a", "provider": "missing"},
    ],
)
async def test_rejected_input_stores_nothing_and_sends_nothing(options: dict[str, object]) -> None:
    fake = FakeProvider()
    store = InMemoryStore()
    async with manager_for(fake, store=store) as manager:
        prompt = options.pop("prompt")
        with pytest.raises(InvalidRequestError):
            await manager.create(prompt, **options)  # type: ignore[arg-type]
        assert (await manager.list()).items == []
        assert fake.submissions == []


async def test_reference_image_bytes_go_to_the_provider_and_metadata_to_the_task() -> None:
    fake = FakeProvider(behaviour=QUICK)
    picture = make_image(1280, 720, "JPEG")
    async with manager_for(fake) as manager:
        task = await manager.create("a", reference_image=picture)
        assert task.reference_image is not None and task.reference_image.mime_type == "image/jpeg"
        assert fake.submissions[0].image is not None and fake.submissions[0].image.data == picture
        assert (await manager.store.get_image(task.reference_image.sha256 or "")).data == picture


async def test_named_providers_and_the_default() -> None:
    first, second = FakeProvider(behaviour=QUICK), FakeProvider(behaviour=QUICK)
    async with manager_for(first, second) as manager:
        assert (await manager.create("a")).provider == "p0"
        assert (await manager.create("a", provider="p1")).provider == "p1"
        assert len(first.submissions) == len(second.submissions) == 1
    with pytest.raises(UnknownProviderError):
        TaskManager(providers={"a": first}, default_provider="b")


async def test_wait_returns_the_finished_task_and_download_writes_the_video(tmp_path: Path) -> None:
    fake = FakeProvider(behaviour=QUICK)
    async with manager_for(fake) as manager:
        task = await manager.create("a")
        done = await manager.wait(task.id, timeout=10)
        assert done.status is TaskStatus.COMPLETED and done.progress == 100
        saved = await manager.download(task.id, tmp_path / "v.mp4")
        assert (tmp_path / "v.mp4").read_bytes() == sample_video()
        assert saved.result is not None
        assert saved.result.byte_size == len(sample_video()) and saved.result.local_path == str(
            tmp_path / "v.mp4"
        )
        assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"]


async def test_generate_is_create_wait_download(tmp_path: Path) -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        task = await manager.generate("a", output=tmp_path / "out.mp4", timeout=10, user_id="u1")
        assert task.status is TaskStatus.COMPLETED and task.user_id == "u1"
        assert (tmp_path / "out.mp4").stat().st_size == len(sample_video())


async def test_generate_raises_with_the_providers_reason() -> None:
    failing = FakeBehaviour(
        render_for=0.01,
        outcome="failed",
        error=TaskError(code="moderation_blocked", message="nope"),
    )
    async with manager_for(FakeProvider(behaviour=failing)) as manager:
        with pytest.raises(TaskFailedError, match="moderation_blocked") as caught:
            await manager.generate("a", timeout=10)
        assert (
            caught.value.task.error is not None
            and caught.value.task.error.code == "moderation_blocked"
        )


async def test_wait_times_out_and_the_task_goes_on() -> None:
    slow = FakeBehaviour(render_for=3600, poll_after=0.01)
    async with manager_for(FakeProvider(behaviour=slow)) as manager:
        task = await manager.create("a")
        with pytest.raises(WaitTimeoutError, match="still"):
            await manager.wait(task.id, timeout=0.1)
        assert not (await manager.get(task.id)).is_terminal


async def test_wait_needs_a_running_manager() -> None:
    manager = manager_for(FakeProvider(behaviour=QUICK))
    task = await manager.create("a")
    with pytest.raises(ManagerNotRunningError, match="async with"):
        await manager.wait(task.id)


async def test_download_before_completion_is_refused() -> None:
    slow = FakeBehaviour(render_for=3600)
    async with manager_for(FakeProvider(behaviour=slow)) as manager:
        task = await manager.create("a")
        with pytest.raises(TaskNotReadyError):
            await manager.download(task.id, "never.mp4")


class _ShortStream(ContentStream):
    content_length = 1000
    content_type = "video/mp4"

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        yield b"x" * 400


class _TruncatingProvider(FakeProvider):
    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        @asynccontextmanager
        async def opened() -> AsyncIterator[ContentStream]:
            yield _ShortStream()

        return opened()


async def test_truncated_download_leaves_no_file_and_keeps_an_older_one(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"previous")
    async with manager_for(_TruncatingProvider(behaviour=QUICK)) as manager:
        task = await manager.wait((await manager.create("a")).id, timeout=10)
        with pytest.raises(DownloadError, match="cut short: 400 of 1,000 bytes"):
            await manager.download(task.id, target)
    assert target.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [target]


async def test_a_user_never_sees_another_users_task(tmp_path: Path) -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        task = await manager.create("a", user_id="alice")
        await manager.wait(task.id, timeout=10)
        for call in (
            manager.get(task.id, user_id="mallory"),
            manager.get(task.external_id or "", user_id="mallory"),
            manager.cancel(task.id, user_id="mallory"),
            manager.wait(task.id, user_id="mallory", timeout=1),
            manager.download(task.id, tmp_path / "x.mp4", user_id="mallory"),
        ):
            with pytest.raises(TaskNotFoundError):
                await call
        assert (await manager.list(user_id="mallory")).items == []
        assert (await manager.stats(user_id="mallory")).total == 0
        assert (await manager.get(task.id, user_id="alice")).id == task.id


async def test_cancel_is_local_immediate_idempotent_and_reaches_the_provider() -> None:
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=3600, poll_after=0.01))
    async with manager_for(fake) as manager:
        task = await manager.create("a")
        cancelled = await manager.cancel(task.id)
        assert cancelled.status is TaskStatus.CANCELLED
        assert fake.cancelled == [task.external_id]
        again = await manager.cancel(task.id)
        assert again == await manager.get(task.id)
        assert fake.cancelled == [task.external_id]


async def test_cancel_stands_even_if_the_provider_refuses() -> None:
    class Refusing(FakeProvider):
        async def cancel(self, external_id: str) -> None:
            raise ProviderServerError("down", status_code=503)

    async with manager_for(Refusing(behaviour=FakeBehaviour(render_for=3600))) as manager:
        task = await manager.create("a")
        assert (await manager.cancel(task.id)).status is TaskStatus.CANCELLED


async def test_list_pages_and_filters_through_the_manager() -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        ids = [(await manager.create(f"prompt {i}", user_id="u1")).id for i in range(5)]
        await manager.create("other", user_id="u2", media_type=MediaType.IMAGE)
        first = await manager.list(user_id="u1", limit=3)
        second = await manager.list(user_id="u1", limit=3, cursor=first.next_cursor)
        assert [t.id for t in first.items + second.items] == ids[::-1]
        assert not second.has_more
        images = await manager.list(media_type=MediaType.IMAGE)
        assert [t.user_id for t in images.items] == ["u2"]
        with pytest.raises(InvalidRequestError, match="limit"):
            await manager.list(limit=0)
        with pytest.raises(InvalidRequestError, match="order"):
            await manager.list(order="sideways")


async def test_stats_and_cleanup() -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        done = await manager.wait((await manager.create("a", user_id="u1")).id, timeout=10)
        running = await manager.create("b", user_id="u1", provider="p0")
        await manager.cancel(running.id)
        stats = await manager.stats(user_id="u1")
        assert (
            stats.by_status[TaskStatus.COMPLETED] == 1
            and stats.by_status[TaskStatus.CANCELLED] == 1
        )
        assert stats.success_rate == 1.0 and stats.render_seconds_p50 is not None
        assert await manager.cleanup(older_than=timedelta(days=1)) == 0
        assert await manager.cleanup(older_than=timedelta(seconds=-1)) == 2
        with pytest.raises(TaskNotFoundError):
            await manager.get(done.id)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ProviderRejectedError("blocked", status_code=400, code="moderation_blocked"),
            "moderation_blocked",
        ),
        (ProviderRejectedError("bad", status_code=400), "submit_rejected"),
        (SubmissionUncertainError("read timeout after sending"), "submit_uncertain"),
    ],
)
async def test_a_create_the_provider_refused_or_may_have_started_ends_failed(
    error: Exception, code: str
) -> None:
    fake = FakeProvider(behaviour=FakeBehaviour(submit_error=error))
    async with manager_for(fake) as manager:
        task = await manager.create("a")
        assert (
            task.status is TaskStatus.FAILED and task.error is not None and task.error.code == code
        )
        assert len(fake.submissions) == 1


async def test_a_create_that_was_never_sent_is_sent_again_later() -> None:
    attempts: list[int] = []

    def script(_: object) -> FakeBehaviour:
        attempts.append(1)
        if len(attempts) == 1:
            return FakeBehaviour(submit_error=ProviderTransportError("connection refused"))
        return QUICK

    fake = FakeProvider(script=script)
    async with manager_for(fake) as manager:
        task = await manager.create("a")
        assert (
            task.status is TaskStatus.QUEUED
            and task.external_id is None
            and task.submission_id is None
        )
        done = await manager.wait(task.id, timeout=10)
        assert done.status is TaskStatus.COMPLETED and len(fake.submissions) == 2
        assert fake.submissions[0].idempotency_key != fake.submissions[1].idempotency_key


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (FakeBehaviour(render_for=0.01, outcome="expired"), "expired"),
        (FakeBehaviour(render_for=0.01, outcome="failed"), "generation_failed"),
        (
            FakeBehaviour(poll_errors=[ProviderServerError("boom", status_code=500)] * 3),
            "provider_error",
        ),
        (FakeBehaviour(poll_errors=[ProviderRejectedError("gone", status_code=404)]), "lost"),
    ],
)
async def test_polls_that_cannot_succeed_end_failed_with_a_reason(
    behaviour: FakeBehaviour, code: str
) -> None:
    policy = FAST.model_copy(update={"max_poll_failures": 3})
    async with manager_for(FakeProvider(behaviour=behaviour), policy=policy) as manager:
        task = await manager.wait((await manager.create("a")).id, timeout=10)
        assert (
            task.status is TaskStatus.FAILED and task.error is not None and task.error.code == code
        )


async def test_transient_poll_errors_are_absorbed() -> None:
    flaky = FakeBehaviour(
        render_for=0.02,
        poll_after=0.01,
        poll_errors=[ProviderServerError("boom", status_code=502)] * 2,
    )
    async with manager_for(FakeProvider(behaviour=flaky)) as manager:
        task = await manager.wait((await manager.create("a")).id, timeout=10)
        assert task.status is TaskStatus.COMPLETED and task.poll_failures == 0


async def test_a_status_nobody_knows_ends_at_the_deadline() -> None:
    odd = FakeBehaviour(render_for=0.0, outcome="unknown", poll_after=0.01)
    async with manager_for(FakeProvider(behaviour=odd)) as manager:
        task = await manager.create("a", deadline=timedelta(seconds=0.2))
        done = await manager.wait(task.id, timeout=10)
        assert (
            done.status is TaskStatus.FAILED
            and done.error is not None
            and done.error.code == "timeout"
        )


async def test_on_event_sees_creation_progress_and_the_end() -> None:
    seen: list[tuple[str, TaskStatus, int]] = []
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.1, poll_after=0.005, progress_step=10))
    async with manager_for(
        fake, on_event=lambda e: seen.append((e.kind, e.task.status, e.task.progress))
    ) as manager:
        await manager.wait((await manager.create("a")).id, timeout=10)
    kinds = [kind for kind, _, _ in seen]
    assert kinds[0] == "created" and seen[-1][1] is TaskStatus.COMPLETED
    progress = [p for _, _, p in seen]
    assert progress == sorted(progress)


async def test_submit_accepts_a_prepared_request() -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        task = await manager.submit(GenerationRequest(prompt="a", seconds=8))
        assert task.seconds == 8


async def test_refresh_polls_now_and_leaves_finished_tasks_alone() -> None:
    provider_time = [0.0]
    fake = FakeProvider(
        behaviour=FakeBehaviour(render_for=10, poll_after=3600), clock=lambda: provider_time[0]
    )
    async with manager_for(
        fake, policy=FAST.model_copy(update={"schedule": PollSchedule(first_interval=3600)})
    ) as manager:
        task = await manager.create("a")
        assert task.status is TaskStatus.PROCESSING
        provider_time[0] = 11.0
        calls = fake.status_calls
        refreshed = await manager.refresh(task.id)
        assert refreshed.status is TaskStatus.COMPLETED
        assert fake.status_calls == calls + 1
        assert await manager.refresh(task.id) == refreshed
        assert fake.status_calls == calls + 1


async def test_a_capped_provider_runs_at_most_its_limit_and_admits_by_priority() -> None:
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05))
    policy = FAST.model_copy(update={"max_in_flight": {"p0": 2}})
    async with manager_for(fake, policy=policy) as manager:
        low = [await manager.create(f"low {i}") for i in range(4)]
        high = await manager.create("urgent", priority=10)
        assert all(t.status is TaskStatus.QUEUED and t.external_id is None for t in [*low, high])
        for task in [*low, high]:
            assert (await manager.wait(task.id, timeout=10)).status is TaskStatus.COMPLETED
    order = [request.prompt for request in fake.submissions]
    assert order.index("urgent") <= 2, order
    assert fake.max_concurrent_jobs <= 2


async def test_create_many_validates_everything_before_storing_anything() -> None:
    fake = FakeProvider(behaviour=QUICK)
    async with manager_for(fake) as manager:
        with pytest.raises(InvalidRequestError):
            await manager.create_many(
                [GenerationRequest(prompt="fine"), GenerationRequest(prompt="", user_id="u")]
            )
        assert (await manager.list()).items == [] and fake.submissions == []
        tasks = await manager.create_many(GenerationRequest(prompt=f"p{i}") for i in range(5))
        assert [t.prompt for t in tasks] == [f"p{i}" for i in range(5)]
        assert len(fake.submissions) == 5


def test_a_manager_can_be_built_outside_an_event_loop() -> None:
    # FastAPI apps build theirs at import time, before any loop runs
    manager = TaskManager(providers={"f": FakeProvider()})
    assert "f" in manager.providers


async def test_a_manager_can_be_entered_again_after_leaving() -> None:
    manager = manager_for(FakeProvider(behaviour=QUICK))
    for _ in range(2):
        async with manager:
            task = await manager.create("a")
            assert (await manager.wait(task.id, timeout=10)).status is TaskStatus.COMPLETED


async def test_download_dir_fetches_every_video_as_soon_as_it_completes(tmp_path: Path) -> None:
    async with manager_for(FakeProvider(behaviour=QUICK), download_dir=tmp_path) as manager:
        task = await manager.create("a")

        async def fetched() -> bool:
            current = await manager.get(task.id)
            return current.result is not None and current.result.local_path is not None

        with anyio.fail_after(10):
            while not await fetched():
                await manager.wait(task.id, timeout=10)
                await anyio.sleep(0.01)
        done = await manager.get(task.id)
    assert done.result is not None and done.result.local_path == str(tmp_path / f"{task.id}.mp4")
    assert (tmp_path / f"{task.id}.mp4").read_bytes() == sample_video()


async def test_an_error_inside_the_block_comes_out_as_itself() -> None:
    # the engine's task group must not turn the caller's own error into an ExceptionGroup
    with pytest.raises(TaskNotFoundError):
        async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
            await manager.get("video_00000000-0000-4000-8000-000000000000")
    with pytest.raises(KeyError, match="mine"):
        async with manager_for(FakeProvider(behaviour=QUICK)):
            raise KeyError("mine")


async def test_fake_job_ids_do_not_collide_across_fakes_sharing_a_store() -> None:
    # regression: the CLI's embedded store outlives each process's fake provider
    store = InMemoryStore()
    for _ in range(2):
        async with manager_for(FakeProvider(behaviour=QUICK), store=store) as manager:
            await manager.create("a")
    assert len({t.external_id for t in (await store.list(TaskQuery())).items}) == 2


async def test_generate_can_show_a_progress_bar(tmp_path: Path) -> None:
    async with manager_for(FakeProvider(behaviour=QUICK)) as manager:
        task = await manager.generate("a", output=tmp_path / "v.mp4", timeout=10, progress=True)
    assert task.status is TaskStatus.COMPLETED
    assert (tmp_path / "v.mp4").read_bytes() == sample_video()
