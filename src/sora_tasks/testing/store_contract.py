"""The store contract suite, shipped: the behaviour every :class:`~sora_tasks.storage.TaskStore`
must show, written against the protocol only.

Subclass :class:`StoreConformance` as ``Test...`` and override its ``store`` fixture to yield an
empty store of yours (closed afterwards)::

    from sora_tasks.testing.store_contract import StoreConformance


    class TestRedisStore(StoreConformance):
        @pytest.fixture
        async def store(self) -> AsyncIterator[TaskStore]:
            store = RedisStore(url)
            try:
                yield store
            finally:
                await store.close()

This module needs pytest (``pip install "sora-tasks[testing]"``); ``sora_tasks.testing`` does not.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import anyio

try:
    import pytest
except ImportError:
    raise ModuleNotFoundError(
        f'{__name__} needs pytest: pip install "sora-tasks[testing]"'
    ) from None

from .._budgets import BudgetCheck, BudgetLimit
from .._exceptions import (
    BudgetExceededError,
    ConflictError,
    DuplicateExternalIdError,
    InvalidRequestError,
    InvalidTransitionError,
    TaskNotFoundError,
)
from .._models import (
    ImageData,
    MediaType,
    ReferenceImage,
    RouteStep,
    SkippedProvider,
    Task,
    TaskCost,
    TaskError,
    TaskQuery,
    TaskResult,
    TaskStatus,
)
from .._states import Phase, is_claimable, phase_of
from ..storage import ChangeCursor, TaskStore
from ._task_factories import make_task, phase_grid

__all__ = ["StoreConformance"]

# a path the store keeps and gives back; nothing opens it
_LOCAL_PATH = "/tmp/y.mp4"  # noqa: S108


def image(content: bytes = b"\x89PNG\r\n\x1a\n-fake-") -> ImageData:
    return ImageData(content, "image/png", 1280, 720, hashlib.sha256(content).hexdigest())


async def _populate(store: TaskStore) -> list[Task]:
    base = await store.now() - timedelta(days=1)
    tasks = []
    for index in range(25):
        task = make_task(
            base + timedelta(minutes=index),
            user_id="u1" if index % 2 else "u2",
            provider="fake" if index % 3 else "other",
            media_type=MediaType.VIDEO if index % 5 else MediaType.IMAGE,
        )
        tasks.append(await store.insert(task))
    for task in tasks[:6]:
        await store.update(task.id, status=TaskStatus.COMPLETED)
    return [await store.get(task.id) for task in tasks]


def picture(tag: bytes) -> ImageData:
    data = b"\x89PNG\r\n\x1a\n" + tag
    return ImageData(data, "image/png", 8, 8, hashlib.sha256(data).hexdigest())


def described(image: ImageData) -> ReferenceImage:
    return ReferenceImage(sha256=image.sha256, mime_type=image.mime_type, byte_size=len(image.data))


class StoreConformance:
    """The checks every task store passes. Subclass it and override the ``store`` fixture."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def store(self) -> TaskStore:
        """An empty store under test: override this fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `store` fixture to yield a TaskStore"
        )

    async def test_insert_then_get_round_trips_every_field(self, store: TaskStore) -> None:
        now = await store.now()
        task = make_task(
            now,
            user_id="u1",
            external_id="job_1",
            media_type=MediaType.IMAGE,
            reference_image=ReferenceImage(
                sha256="ab" * 32, mime_type="image/png", byte_size=10, width=2, height=3
            ),
            metadata={"campaign": "spring", "tags": ["a", "b"], "n": 3, "nested": {"x": None}},
            priority=5,
            submission_id="sub_1",
            next_poll_at=now,
            deadline_at=now + timedelta(hours=1),
        )
        await store.insert(task)
        loaded = await store.get(task.id)
        assert loaded == task

    async def test_get_unknown_id_raises_not_found(self, store: TaskStore) -> None:
        with pytest.raises(TaskNotFoundError):
            await store.get("video_00000000-0000-4000-8000-000000000000")

    async def test_insert_twice_conflicts(self, store: TaskStore) -> None:
        task = make_task(await store.now())
        await store.insert(task)
        with pytest.raises(ConflictError):
            await store.insert(task)

    async def test_get_by_external_id_with_and_without_provider(self, store: TaskStore) -> None:
        now = await store.now()
        task = await store.insert(make_task(now, external_id="job_9"))
        assert (await store.get_by_external_id("job_9")).id == task.id
        assert (await store.get_by_external_id("job_9", provider="fake")).id == task.id
        with pytest.raises(TaskNotFoundError):
            await store.get_by_external_id("job_9", provider="other")
        with pytest.raises(TaskNotFoundError):
            await store.get_by_external_id("nope")

    async def test_external_id_is_unique_per_provider(self, store: TaskStore) -> None:
        now = await store.now()
        await store.insert(make_task(now, external_id="job_1"))
        await store.insert(make_task(now, external_id="job_1", provider="other"))
        with pytest.raises(DuplicateExternalIdError):
            await store.insert(make_task(now, external_id="job_1"))
        second = await store.insert(make_task(now))
        with pytest.raises(DuplicateExternalIdError):
            await store.update(second.id, external_id="job_1")
        assert (await store.get(second.id)).external_id is None

    async def test_update_applies_changes_and_bumps_version(self, store: TaskStore) -> None:
        task = await store.insert(make_task(await store.now()))
        updated = await store.update(
            task.id, status=TaskStatus.PROCESSING, progress=40, external_id="job_2"
        )
        assert (updated.status, updated.progress, updated.external_id) == (
            TaskStatus.PROCESSING,
            40,
            "job_2",
        )
        assert updated.version == task.version + 1
        assert updated.updated_at >= task.updated_at
        assert await store.get(task.id) == updated

    async def test_update_with_stale_version_changes_nothing(self, store: TaskStore) -> None:
        task = await store.insert(make_task(await store.now()))
        await store.update(task.id, expected_version=task.version, progress=10)
        with pytest.raises(ConflictError):
            await store.update(task.id, expected_version=task.version, progress=20)
        assert (await store.get(task.id)).progress == 10

    async def test_update_unknown_task_raises_not_found(self, store: TaskStore) -> None:
        with pytest.raises(TaskNotFoundError):
            await store.update("video_00000000-0000-4000-8000-000000000000", progress=1)

    async def test_forbidden_transition_raises_and_changes_nothing(self, store: TaskStore) -> None:
        task = await store.insert(make_task(await store.now()))
        done = await store.update(task.id, status=TaskStatus.COMPLETED)
        with pytest.raises(InvalidTransitionError):
            await store.update(task.id, status=TaskStatus.PROCESSING)
        with pytest.raises(InvalidTransitionError):
            await store.update(task.id, error=TaskError(code="x", message="y"))
        assert await store.get(task.id) == done

    async def test_progress_never_goes_back(self, store: TaskStore) -> None:
        task = await store.insert(make_task(await store.now()))
        await store.update(task.id, progress=50)
        with pytest.raises(InvalidTransitionError):
            await store.update(task.id, progress=40)
        assert (await store.get(task.id)).progress == 50

    async def test_completion_sets_progress_and_completed_at(self, store: TaskStore) -> None:
        task = await store.insert(make_task(await store.now(), next_poll_at=await store.now()))
        done = await store.update(
            task.id, status=TaskStatus.COMPLETED, result=TaskResult(url="https://x/y.mp4")
        )
        assert done.progress == 100
        assert done.completed_at is not None
        assert done.next_poll_at is None
        assert done.result == TaskResult(url="https://x/y.mp4")
        downloaded = await store.update(
            task.id,
            result=TaskResult(url="https://x/y.mp4", local_path=_LOCAL_PATH),
        )
        assert downloaded.result is not None and downloaded.result.local_path == _LOCAL_PATH

    async def test_list_pages_newest_first_without_gaps_or_repeats(self, store: TaskStore) -> None:
        tasks = await _populate(store)
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.list(TaskQuery(limit=7, cursor=cursor))
            seen.extend(task.id for task in page.items)
            if not page.has_more:
                break
            cursor = page.next_cursor
        expected = [
            task.id for task in sorted(tasks, key=lambda t: (t.created_at, t.id), reverse=True)
        ]
        assert seen == expected

    async def test_list_ascending(self, store: TaskStore) -> None:
        tasks = await _populate(store)
        page = await store.list(TaskQuery(limit=3, order="asc"))
        assert [task.id for task in page.items] == [task.id for task in tasks[:3]]
        after = await store.list(TaskQuery(limit=3, order="asc", cursor=page.next_cursor))
        assert [task.id for task in after.items] == [task.id for task in tasks[3:6]]

    async def test_list_filters(self, store: TaskStore) -> None:
        tasks = await _populate(store)
        cases: list[tuple[TaskQuery, list[Task]]] = [
            (TaskQuery(user_id="u1", limit=100), [t for t in tasks if t.user_id == "u1"]),
            (
                TaskQuery(status=TaskStatus.COMPLETED, limit=100),
                [t for t in tasks if t.status is TaskStatus.COMPLETED],
            ),
            (TaskQuery(provider="other", limit=100), [t for t in tasks if t.provider == "other"]),
            (
                TaskQuery(media_type=MediaType.IMAGE, limit=100),
                [t for t in tasks if t.media_type is MediaType.IMAGE],
            ),
            (
                TaskQuery(
                    created_after=tasks[5].created_at,
                    created_before=tasks[10].created_at,
                    limit=100,
                ),
                tasks[5:10],
            ),
            (
                TaskQuery(user_id="u1", status=TaskStatus.COMPLETED, limit=100),
                [t for t in tasks if t.user_id == "u1" and t.status is TaskStatus.COMPLETED],
            ),
        ]
        for query, expected in cases:
            page = await store.list(query)
            assert {task.id for task in page.items} == {task.id for task in expected}, query
            assert not page.has_more

    async def test_list_rejects_a_forged_cursor(self, store: TaskStore) -> None:
        with pytest.raises(InvalidRequestError):
            await store.list(TaskQuery(cursor="not-a-cursor!"))

    async def test_stats_counts_and_render_times(self, store: TaskStore) -> None:
        tasks = await _populate(store)
        await store.update(
            tasks[6].id, status=TaskStatus.FAILED, error=TaskError(code="x", message="y")
        )
        overall = await store.stats()
        assert overall.total == 25
        assert overall.by_status[TaskStatus.COMPLETED] == 6
        assert overall.by_status[TaskStatus.FAILED] == 1
        assert overall.by_status[TaskStatus.QUEUED] == 18
        assert overall.by_provider == {"fake": 16, "other": 9}
        assert overall.success_rate == pytest.approx(6 / 7)
        assert overall.render_seconds_p50 is not None and overall.render_seconds_p50 > 0
        assert (
            overall.render_seconds_p90 is not None
            and overall.render_seconds_p90 >= overall.render_seconds_p50
        )
        mine = await store.stats(user_id="u1")
        assert mine.total == 12
        empty = await store.stats(user_id="nobody")
        assert (empty.total, empty.success_rate, empty.render_seconds_mean) == (0, None, None)

    async def test_images_are_stored_once_and_removed_with_their_last_task(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        picture = image()
        info = ReferenceImage(
            sha256=picture.sha256, mime_type="image/png", byte_size=len(picture.data)
        )
        first = await store.insert(make_task(now, reference_image=info), images=[picture])
        second = await store.insert(make_task(now, reference_image=info), images=[picture])
        assert await store.get_image(picture.sha256) == picture
        await store.update(first.id, status=TaskStatus.CANCELLED)
        assert await store.delete_finished(before=await store.now() + timedelta(seconds=1)) == 1
        assert await store.get_image(picture.sha256) == picture
        await store.update(second.id, status=TaskStatus.FAILED)
        assert await store.delete_finished(before=await store.now() + timedelta(seconds=1)) == 1
        with pytest.raises(LookupError):
            await store.get_image(picture.sha256)

    async def test_delete_finished_keeps_recent_and_unfinished_tasks(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        running = await store.insert(make_task(now - timedelta(days=90)))
        old = await store.insert(make_task(now - timedelta(days=90)))
        await store.update(old.id, status=TaskStatus.COMPLETED)
        assert await store.delete_finished(before=now - timedelta(days=30)) == 0
        assert await store.delete_finished(before=await store.now() + timedelta(seconds=1)) == 1
        assert (await store.get(running.id)).status is TaskStatus.QUEUED
        with pytest.raises(TaskNotFoundError):
            await store.get(old.id)

    async def test_claim_due_takes_only_due_unleased_unfinished_tasks(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        due = await store.insert(
            make_task(now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=5))
        )
        later = await store.insert(
            make_task(now, submission_id="sub_1", next_poll_at=now + timedelta(hours=1))
        )
        never = await store.insert(make_task(now))
        finished = await store.insert(
            make_task(now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=5))
        )
        await store.update(finished.id, status=TaskStatus.FAILED)
        held = await store.insert(
            make_task(
                now,
                submission_id="sub_1",
                next_poll_at=now - timedelta(seconds=5),
                lease_owner="w0",
                lease_expires_at=now + timedelta(hours=1),
            )
        )
        claimed = await store.claim_due(owner="w1", limit=10, lease_seconds=30)
        assert [task.id for task in claimed] == [due.id]
        (task,) = claimed
        assert task.lease_owner == "w1"
        assert task.lease_expires_at is not None and task.lease_expires_at > now
        assert task.version == due.version + 1
        assert await store.claim_due(owner="w2", limit=10, lease_seconds=30) == []
        for other in (later, never, held):
            assert (await store.get(other.id)).lease_owner == other.lease_owner

    async def test_claim_due_respects_limit_and_order(self, store: TaskStore) -> None:
        now = await store.now()
        tasks = [
            await store.insert(
                make_task(
                    now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=60 - index)
                )
            )
            for index in range(5)
        ]
        first = await store.claim_due(owner="w", limit=2, lease_seconds=30)
        assert [task.id for task in first] == [task.id for task in tasks[:2]]
        rest = await store.claim_due(owner="w", limit=10, lease_seconds=30)
        assert [task.id for task in rest] == [task.id for task in tasks[2:]]

    async def test_expired_lease_is_taken_over_and_the_old_owner_cannot_write(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        task = await store.insert(
            make_task(now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=1))
        )
        (stale,) = await store.claim_due(owner="frozen", limit=1, lease_seconds=0)
        (fresh,) = await store.claim_due(owner="alive", limit=1, lease_seconds=30)
        assert fresh.id == task.id and fresh.lease_owner == "alive"
        with pytest.raises(ConflictError):
            await store.update(stale.id, expected_version=stale.version, status=TaskStatus.FAILED)
        written = await store.update(
            fresh.id,
            expected_version=fresh.version,
            progress=30,
            lease_owner=None,
            lease_expires_at=None,
        )
        assert written.status is TaskStatus.QUEUED and written.progress == 30

    async def test_concurrent_claims_never_hand_out_one_task_twice(self, store: TaskStore) -> None:
        now = await store.now()
        for _ in range(30):
            await store.insert(
                make_task(now, submission_id="sub_1", next_poll_at=now - timedelta(seconds=1))
            )
        results: list[list[str]] = []

        async def claimer(name: str) -> None:
            claimed = await store.claim_due(owner=name, limit=10, lease_seconds=60)
            results.append([task.id for task in claimed])

        async with anyio.create_task_group() as group:
            for index in range(5):
                group.start_soon(claimer, f"w{index}")
        every = [task_id for batch in results for task_id in batch]
        assert len(every) == len(set(every)) == 30

    async def test_tasks_waiting_for_submission_are_claimed_only_as_submissions(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        past = now - timedelta(seconds=1)
        waiting = await store.insert(make_task(now, next_poll_at=past))
        assert await store.claim_due(owner="w", limit=10, lease_seconds=30) == []
        other = await store.claim_submissions(
            provider="other", owner="w", limit=10, lease_seconds=30
        )
        assert other == []
        (claimed,) = await store.claim_submissions(
            provider="fake", owner="w", limit=10, lease_seconds=30
        )
        assert claimed.id == waiting.id and claimed.lease_owner == "w"
        assert (
            await store.claim_submissions(provider="fake", owner="w2", limit=10, lease_seconds=30)
            == []
        )

    async def test_submissions_go_by_priority_then_age(self, store: TaskStore) -> None:
        now = await store.now()
        past = now - timedelta(seconds=1)
        old_low = await store.insert(make_task(now - timedelta(minutes=3), next_poll_at=past))
        new_high = await store.insert(
            make_task(now - timedelta(minutes=1), next_poll_at=past, priority=5)
        )
        old_high = await store.insert(
            make_task(now - timedelta(minutes=2), next_poll_at=past, priority=5)
        )
        claimed = await store.claim_submissions(
            provider="fake", owner="w", limit=10, lease_seconds=30
        )
        assert [task.id for task in claimed] == [old_high.id, new_high.id, old_low.id]

    async def test_submissions_respect_max_in_flight(self, store: TaskStore) -> None:
        now = await store.now()
        past = now - timedelta(seconds=1)
        await store.insert(
            make_task(now, external_id="running-1", next_poll_at=now + timedelta(hours=1))
        )
        await store.insert(
            make_task(now, submission_id="sub_in_flight", next_poll_at=now + timedelta(hours=1))
        )
        finished = await store.insert(make_task(now, external_id="done"))
        await store.update(finished.id, status=TaskStatus.COMPLETED)
        await store.insert(make_task(now, provider="other", external_id="elsewhere"))
        for _ in range(4):
            await store.insert(make_task(now, next_poll_at=past))
        first = await store.claim_submissions(
            provider="fake", owner="w", limit=10, lease_seconds=30, max_in_flight=3
        )
        assert len(first) == 1
        await store.update(first[0].id, expected_version=first[0].version, submission_id="sub_new")
        full = await store.claim_submissions(
            provider="fake", owner="w", limit=10, lease_seconds=0, max_in_flight=3
        )
        assert full == []
        uncapped = await store.claim_submissions(
            provider="fake", owner="w", limit=10, lease_seconds=30
        )
        assert len(uncapped) == 3

    async def test_claims_hand_out_exactly_what_the_phase_definitions_say(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        grid = phase_grid(now)
        for task in grid:
            await store.insert(task)

        def expected(phases: set[Phase]) -> set[str]:
            return {t.id for t in grid if phase_of(t) in phases and is_claimable(t, now)}

        without_content = {Phase.SUBMITTING, Phase.RENDERING}
        claimed = await store.claim_due(owner="w1", limit=1000, lease_seconds=60)
        assert {t.id for t in claimed} == expected(without_content)
        collecting = await store.claim_due(owner="w1", limit=1000, lease_seconds=60, content=True)
        assert {t.id for t in collecting} == expected({Phase.COLLECTING})
        waiting = await store.claim_submissions(
            provider="fake", owner="w1", limit=1000, lease_seconds=60
        )
        assert {t.id for t in waiting} == expected({Phase.WAITING})
        assert all(phase_of(t) is not Phase.DONE for t in [*claimed, *collecting, *waiting])

    async def test_the_request_fields_come_back_as_stored(self, store: TaskStore) -> None:
        now = await store.now()
        last = picture(b"last")
        task = make_task(
            now,
            size="1080x1920",
            aspect_ratio="9:16",
            resolution="1080p",
            negative_prompt="blur, text",
            seed=2**32 - 1,
            audio=False,
            last_frame=described(last),
            reference_images=[ReferenceImage(url="https://example.com/a.png"), described(last)],
            provider_options={"enhance_prompt": True, "loras": [{"path": "x", "scale": 0.5}]},
        )
        await store.insert(task, images=[last])
        assert await store.get(task.id) == task
        plain = await store.insert(make_task(now))
        fetched = await store.get(plain.id)
        assert (fetched.aspect_ratio, fetched.reference_images, fetched.provider_options) == (
            None,
            [],
            {},
        )

    async def test_every_input_image_stays_until_its_last_task_is_deleted(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        first, last, guide = picture(b"first"), picture(b"last"), picture(b"guide")
        everything = await store.insert(
            make_task(
                now,
                reference_image=described(first),
                last_frame=described(last),
                reference_images=[described(guide)],
            ),
            images=[first, last, guide],
        )
        guided = await store.insert(
            make_task(now, reference_images=[described(guide)]), images=[guide]
        )
        await store.update(everything.id, status=TaskStatus.CANCELLED)
        assert await store.delete_finished(before=await store.now() + timedelta(seconds=1)) == 1
        for gone in (first, last):
            with pytest.raises(LookupError):
                await store.get_image(gone.sha256)
        assert await store.get_image(guide.sha256) == guide
        await store.update(guided.id, status=TaskStatus.FAILED)
        assert await store.delete_finished(before=await store.now() + timedelta(seconds=1)) == 1
        with pytest.raises(LookupError):
            await store.get_image(guide.sha256)

    async def test_routes_and_costs_come_back_and_add_up(self, store: TaskStore) -> None:
        now = await store.now()
        steps = [RouteStep(provider=name, model="m", size="1280x720", seconds=4) for name in "ab"]
        skipped = [SkippedProvider(provider="a", code="unreachable", reason="refused", at=now)]
        cost = TaskCost(amount=1.5, source="contract")
        task = await store.insert(make_task(now, route="r", route_steps=steps, user_id="u1"))
        moved = await store.update(task.id, provider="b", skipped=skipped, cost=cost)
        assert await store.get(task.id) == moved
        assert (moved.provider, moved.route_steps, moved.skipped) == ("b", steps, skipped)
        await store.insert(make_task(now, cost=TaskCost(amount=2.0, source="contract")))
        stats = await store.stats()
        assert stats.cost_total == {"USD": 3.5}
        assert stats.cost_by_user == {"": {"USD": 2.0}, "u1": {"USD": 1.5}}

    async def test_budgets_admit_exactly_up_to_the_limit(self, store: TaskStore) -> None:
        now = await store.now()
        checks = [BudgetCheck("u1", BudgetLimit(2.0)), BudgetCheck(None, BudgetLimit(10.0))]
        one = TaskCost(amount=1.0, source="contract")
        await store.insert(make_task(now - timedelta(days=2), user_id="u1", cost=one))
        spent = [
            await store.insert_within_budget(make_task(now, user_id="u1", cost=one), checks=checks)
            for _ in range(2)
        ]
        assert spent == [[0.0, 0.0], [1.0, 1.0]]  # the task two days old is out of the window
        refused = make_task(now, user_id="u1", cost=one)
        with pytest.raises(BudgetExceededError) as caught:
            await store.insert_within_budget(refused, checks=checks)
        assert (caught.value.limit, caught.value.spent, caught.value.estimate) == (2.0, 2.0, 1.0)
        with pytest.raises(TaskNotFoundError):
            await store.get(refused.id)

    async def test_changes_page_by_update_time_then_id_without_gaps_or_repeats(
        self, store: TaskStore
    ) -> None:
        base = await store.now() - timedelta(hours=1)
        tasks = [
            await store.insert(make_task(base + timedelta(seconds=index // 3), user_id=user))
            for index, user in enumerate(["u1", "u2", "u1"] * 6)
        ]
        expected = sorted((task for task in tasks if task.user_id == "u1"), key=ChangeCursor.of)
        seen: list[Task] = []
        after = None
        while page := await store.changes(user_id="u1", after=after, limit=4):
            assert len(page) <= 4
            seen.extend(page)
            after = ChangeCursor.of(page[-1])
        assert seen == expected  # ties on updated_at (three tasks a second) are ordered by id
        everyone = await store.changes(user_id=None, after=None, limit=100)
        assert everyone == sorted(tasks, key=ChangeCursor.of)
        start_of_second = ChangeCursor(expected[2].updated_at)
        assert await store.changes(user_id="u1", after=start_of_second, limit=100) == expected[2:]
        assert await store.changes(user_id="u1", after=None, limit=0) == []

    async def test_changes_bring_a_task_again_in_its_latest_state_only(
        self, store: TaskStore
    ) -> None:
        now = await store.now()
        first = await store.insert(make_task(now, user_id="u1"))
        second = await store.insert(make_task(now, user_id="u1"))
        mark = ChangeCursor.of(max(first, second, key=ChangeCursor.of))
        assert await store.changes(user_id="u1", after=mark, limit=10) == []
        await store.update(first.id, progress=10)
        latest = await store.update(first.id, progress=20)
        assert await store.changes(user_id="u1", after=mark, limit=10) == [latest]
        assert await store.changes(user_id="u2", after=None, limit=10) == []
