"""What the engine does with tasks another process left behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sora_tasks import PollingPolicy, Task, TaskManager, TaskStatus
from sora_tasks._models import new_task_id
from sora_tasks.providers import ProviderJob, SubmitRequest
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider

pytestmark = pytest.mark.anyio

QUICK = FakeBehaviour(render_for=0.02, poll_after=0.01)


def orphan(**fields: object) -> Task:
    """A task whose worker died after storing the submission id, before storing the answer."""
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": new_task_id(),
        "provider": "fake",
        "prompt": "a cat",
        "model": "fake-video-1",
        "size": "1280x720",
        "seconds": 4,
        "created_at": now - timedelta(minutes=5),
        "updated_at": now - timedelta(minutes=5),
        "submission_id": "sub_dead",
        "next_poll_at": now - timedelta(minutes=5),
        "deadline_at": now + timedelta(hours=1),
        "lease_owner": "dead-worker",
        "lease_expires_at": now - timedelta(minutes=1),
    }
    values.update(fields)
    return Task.model_validate(values)


def request_for(task: Task) -> SubmitRequest:
    return SubmitRequest(
        task_id=task.id,
        idempotency_key=task.submission_id or "",
        prompt=task.prompt,
        model=task.model,
        size=task.size,
        seconds=task.seconds,
    )


async def run_until_done(
    store: InMemoryStore, fake: FakeProvider, task: Task, policy: str, *, window: float = 0.0
) -> Task:
    async with TaskManager(
        providers={"fake": fake},
        store=store,
        policy=PollingPolicy(
            retry_interval=0.01,
            idle_wait=0.02,
            reconcile_delay=0,
            reconcile_window=window,
            submit_uncertain=policy,
        ),
    ) as manager:
        return await manager.wait(task.id, timeout=10)


class LateJob(FakeProvider):
    """A provider still working on a create its client gave up on: the job appears later."""

    def __init__(self, request: SubmitRequest) -> None:
        super().__init__(behaviour=QUICK)
        self.request, self.finds = request, 0

    async def find(self, request: SubmitRequest) -> ProviderJob | None:
        self.finds += 1
        if self.finds == 3:
            await self.submit(self.request)  # the slow create lands at last
        return await super().find(request)


async def test_reconcile_keeps_looking_while_the_create_may_still_be_running() -> None:
    store = InMemoryStore()
    task = await store.insert(orphan(submitted_at=datetime.now(UTC)))
    late = LateJob(request_for(task))
    done = await run_until_done(store, late, task, "reconcile", window=60)
    assert done.status is TaskStatus.COMPLETED
    assert late.finds >= 3 and len(late.submissions) == 1  # the one the provider was working on


async def test_default_policy_never_resends_an_uncertain_create() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    task = await store.insert(orphan())
    done = await run_until_done(store, fake, task, "fail")
    assert done.status is TaskStatus.FAILED and done.error is not None
    assert done.error.code == "submit_uncertain"
    assert fake.submissions == []


async def test_reconcile_binds_the_job_the_dead_worker_started() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    task = await store.insert(orphan())
    started = await fake.submit(request_for(task))  # the create that did reach the provider
    done = await run_until_done(store, fake, task, "reconcile")
    assert done.status is TaskStatus.COMPLETED and done.external_id == started.external_id
    assert len(fake.submissions) == 1


async def test_reconcile_without_a_match_fails_rather_than_guess() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    task = await store.insert(orphan())
    done = await run_until_done(store, fake, task, "reconcile")
    assert done.status is TaskStatus.FAILED and done.error is not None
    assert done.error.code == "submit_uncertain" and fake.submissions == []


async def test_resubmit_sends_again_with_the_same_idempotency_key_only_when_nothing_is_found() -> (
    None
):
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    task = await store.insert(orphan())
    done = await run_until_done(store, fake, task, "resubmit")
    assert done.status is TaskStatus.COMPLETED
    assert [s.idempotency_key for s in fake.submissions] == ["sub_dead"]


async def test_a_task_left_mid_poll_is_resumed_with_the_same_external_id() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    placeholder = orphan()
    job = await fake.submit(request_for(placeholder))
    task = await store.insert(
        orphan(
            id=placeholder.id,
            external_id=job.external_id,
            status=TaskStatus.PROCESSING,
            progress=30,
        )
    )
    done = await run_until_done(store, fake, task, "fail")
    assert done.status is TaskStatus.COMPLETED and done.external_id == job.external_id
    assert len(fake.submissions) == 1


async def test_a_live_lease_is_left_alone() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    far = datetime.now(UTC) + timedelta(hours=1)
    task = await store.insert(orphan(lease_owner="alive", lease_expires_at=far))
    async with TaskManager(
        providers={"fake": fake},
        store=store,
        policy=PollingPolicy(retry_interval=0.01, idle_wait=0.01),
    ) as manager:
        # several idle rounds of the engine, bounded by the wait timeout
        with pytest.raises(TimeoutError):
            await manager.wait(task.id, timeout=0.2)
    assert (await store.get(task.id)).lease_owner == "alive"
    assert fake.submissions == []


async def test_a_match_that_belongs_to_another_task_is_not_bound() -> None:
    store = InMemoryStore()
    fake = FakeProvider(behaviour=QUICK)
    owner = await store.insert(orphan(id=new_task_id(), submission_id="sub_other"))
    taken = await fake.submit(request_for(owner))
    await store.update(owner.id, external_id=taken.external_id)

    class Confused(FakeProvider):
        async def find(self, request: SubmitRequest) -> ProviderJob | None:
            return taken

    task = await store.insert(orphan())
    done = await run_until_done(store, Confused(behaviour=QUICK), task, "reconcile")
    assert done.status is TaskStatus.FAILED and done.error is not None
    assert done.error.code == "submit_uncertain"
    assert (await store.get(owner.id)).external_id == taken.external_id


async def test_an_uncertain_task_past_its_deadline_times_out_without_asking() -> None:
    store, fake = InMemoryStore(), FakeProvider(behaviour=QUICK)
    task = await store.insert(orphan(deadline_at=datetime.now(UTC) - timedelta(seconds=1)))
    done = await run_until_done(store, fake, task, "resubmit")
    assert done.error is not None and done.error.code == "timeout"
    assert fake.submissions == []
