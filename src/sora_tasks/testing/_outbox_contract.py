"""The webhook outbox part of the store contract suite (mixed into ``StoreConformance``)."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from .._exceptions import ConflictError, TaskNotFoundError
from .._models import Task, TaskError, TaskStatus
from .._outbox import WebhookState
from ..storage import TaskStore
from ._task_factories import make_task

__all__ = ["OutboxConformance"]

_URL = "https://hooks.example.com/sora?team=7"


async def _notified(store: TaskStore, *, progress: bool = False, **fields: object) -> Task:
    now = await store.now()
    return await store.insert(make_task(now, notify_url=_URL, notify_progress=progress, **fields))


class OutboxConformance:
    """How a store keeps the webhook outbox: written with the status change, claimed in order
    per task under leases, settled, listed, re-armed and cleaned up with its tasks."""

    async def test_a_terminal_change_owes_one_delivery_of_its_kind(self, store: TaskStore) -> None:
        kinds = {
            TaskStatus.FAILED: "video.failed",
            TaskStatus.CANCELLED: "video.cancelled",
        }
        for status, kind in kinds.items():
            task = await _notified(store)
            error = (
                TaskError(code="boom", message="it broke") if status is TaskStatus.FAILED else None
            )
            ended = await store.update(task.id, status=status, error=error)
            await store.update(task.id, metadata={"after": "the end"})
            (delivery,) = await store.list_webhooks(task_id=task.id)
            assert delivery.type == kind
            assert delivery.url == _URL
            assert delivery.seq == ended.version
            assert delivery.state is WebhookState.PENDING
            assert delivery.attempts == 0
            assert delivery.id.startswith("msg_")
            assert delivery.payload["type"] == kind
            assert delivery.payload["data"]["videoId"] == task.id
            assert delivery.payload["data"]["status"] == status.value

    async def test_completion_owes_a_delivery_only_once_the_content_is_saved(
        self, store: TaskStore
    ) -> None:
        task = await _notified(store, progress=True)
        later = await store.now() + timedelta(minutes=5)
        await store.update(
            task.id, status=TaskStatus.COMPLETED, content_pending=True, next_poll_at=later
        )
        assert await store.list_webhooks(task_id=task.id) == []
        await store.update(task.id, content_pending=False)
        (delivery,) = await store.list_webhooks(task_id=task.id)
        assert delivery.type == "video.completed"
        assert delivery.payload["data"]["progress"] == 100

    async def test_no_url_no_delivery_and_progress_only_when_asked(self, store: TaskStore) -> None:
        now = await store.now()
        silent = await store.insert(make_task(now))
        await store.update(silent.id, status=TaskStatus.PROCESSING, progress=40)
        await store.update(silent.id, status=TaskStatus.CANCELLED)
        quiet = await _notified(store)
        await store.update(quiet.id, status=TaskStatus.PROCESSING, progress=40)
        chatty = await _notified(store, progress=True)
        await store.update(chatty.id, status=TaskStatus.PROCESSING, progress=40)
        await store.update(chatty.id, status=TaskStatus.PROCESSING, progress=40)
        await store.update(chatty.id, progress=70)
        assert await store.list_webhooks(task_id=silent.id) == []
        assert await store.list_webhooks(task_id=quiet.id) == []
        progress = [
            d.payload["data"]["progress"] for d in await store.list_webhooks(task_id=chatty.id)
        ]
        assert progress == [70, 40]

    async def test_a_refused_update_owes_nothing(self, store: TaskStore) -> None:
        task = await _notified(store)
        with pytest.raises(ConflictError):
            await store.update(task.id, expected_version=task.version + 5, status=TaskStatus.FAILED)
        assert await store.list_webhooks() == []

    async def test_claims_keep_each_tasks_deliveries_in_order(self, store: TaskStore) -> None:
        task = await _notified(store, progress=True)
        await store.update(task.id, status=TaskStatus.PROCESSING, progress=10)
        await store.update(task.id, progress=20)
        await store.update(task.id, status=TaskStatus.CANCELLED)
        seen: list[str] = []
        for _ in range(3):
            (claimed,) = await store.claim_webhooks(owner="w1", limit=10, lease_seconds=60)
            assert await store.claim_webhooks(owner="w2", limit=10, lease_seconds=60) == []
            assert claimed.attempts == 1
            assert claimed.lease_owner == "w1"
            seen.append(claimed.type)
            await store.settle_webhook(claimed.id, owner="w1", state=WebhookState.DELIVERED)
        assert seen == ["video.progress", "video.progress", "video.cancelled"]
        assert await store.claim_webhooks(owner="w1", limit=10, lease_seconds=60) == []
        delivered = await store.list_webhooks(state=WebhookState.DELIVERED)
        assert len(delivered) == 3
        assert all(d.delivered_at is not None and d.lease_owner is None for d in delivered)

    async def test_a_given_up_delivery_unblocks_the_next_one(self, store: TaskStore) -> None:
        task = await _notified(store, progress=True)
        await store.update(task.id, status=TaskStatus.PROCESSING, progress=10)
        await store.update(task.id, status=TaskStatus.CANCELLED)
        (first,) = await store.claim_webhooks(owner="w1", limit=10, lease_seconds=60)
        await store.settle_webhook(
            first.id, owner="w1", state=WebhookState.FAILED, error="HTTP 500"
        )
        (second,) = await store.claim_webhooks(owner="w1", limit=10, lease_seconds=60)
        assert second.type == "video.cancelled"
        (failed,) = await store.list_webhooks(state=WebhookState.FAILED)
        assert (failed.id, failed.last_error, failed.attempts) == (first.id, "HTTP 500", 1)

    async def test_a_retry_waits_its_turn_and_counts_attempts(self, store: TaskStore) -> None:
        task = await _notified(store)
        await store.update(task.id, status=TaskStatus.CANCELLED)
        (claimed,) = await store.claim_webhooks(owner="w1", limit=1, lease_seconds=60)
        await store.settle_webhook(
            claimed.id, owner="w1", state=WebhookState.PENDING, error="HTTP 503", retry_in=3600
        )
        assert await store.claim_webhooks(owner="w1", limit=1, lease_seconds=60) == []
        (waiting,) = await store.list_webhooks(state=WebhookState.PENDING)
        assert waiting.next_attempt_at is not None
        assert waiting.next_attempt_at > await store.now() + timedelta(minutes=59)
        assert waiting.last_error == "HTTP 503"

    async def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_settle(
        self, store: TaskStore
    ) -> None:
        task = await _notified(store)
        await store.update(task.id, status=TaskStatus.CANCELLED)
        (first,) = await store.claim_webhooks(owner="w1", limit=1, lease_seconds=0)
        (again,) = await store.claim_webhooks(owner="w2", limit=1, lease_seconds=60)
        assert again.id == first.id
        assert again.attempts == 2
        with pytest.raises(ConflictError):
            await store.settle_webhook(first.id, owner="w1", state=WebhookState.DELIVERED)
        await store.settle_webhook(again.id, owner="w2", state=WebhookState.DELIVERED)
        with pytest.raises(ConflictError):
            await store.settle_webhook(again.id, owner="w2", state=WebhookState.DELIVERED)
        with pytest.raises(LookupError):
            await store.settle_webhook("msg_missing", owner="w2", state=WebhookState.DELIVERED)

    async def test_concurrent_claims_never_hand_out_one_delivery_twice(
        self, store: TaskStore
    ) -> None:
        for _ in range(12):
            task = await _notified(store)
            await store.update(task.id, status=TaskStatus.CANCELLED)
        results: list[list[str]] = []

        async def claimer(name: str) -> None:
            claimed = await store.claim_webhooks(owner=name, limit=5, lease_seconds=60)
            results.append([delivery.id for delivery in claimed])

        async with anyio.create_task_group() as group:
            for index in range(4):
                group.start_soon(claimer, f"w{index}")
        every = [delivery_id for batch in results for delivery_id in batch]
        assert len(every) == len(set(every)) == 12

    async def test_retry_rearms_failed_deliveries_only(self, store: TaskStore) -> None:
        ids = []
        for _ in range(3):
            task = await _notified(store)
            await store.update(task.id, status=TaskStatus.CANCELLED)
            (claimed,) = await store.claim_webhooks(owner="w1", limit=1, lease_seconds=60)
            ids.append(claimed.id)
        await store.settle_webhook(ids[0], owner="w1", state=WebhookState.FAILED, error="x")
        await store.settle_webhook(ids[1], owner="w1", state=WebhookState.FAILED, error="y")
        await store.settle_webhook(ids[2], owner="w1", state=WebhookState.DELIVERED)
        assert await store.retry_webhooks([ids[0], ids[2], "msg_missing"]) == 1
        assert await store.retry_webhooks() == 1
        pending = await store.list_webhooks(state=WebhookState.PENDING)
        assert {d.id for d in pending} == {ids[0], ids[1]}
        assert all(d.attempts == 0 for d in pending)
        claimed_again = await store.claim_webhooks(owner="w2", limit=5, lease_seconds=60)
        assert {d.id for d in claimed_again} == {ids[0], ids[1]}

    async def test_cleanup_keeps_tasks_that_owe_a_delivery(self, store: TaskStore) -> None:
        task = await _notified(store)
        await store.update(task.id, status=TaskStatus.CANCELLED)
        later = await store.now() + timedelta(seconds=1)
        assert await store.delete_finished(before=later) == 0
        (claimed,) = await store.claim_webhooks(owner="w1", limit=1, lease_seconds=60)
        await store.settle_webhook(claimed.id, owner="w1", state=WebhookState.DELIVERED)
        assert await store.delete_finished(before=later) == 1
        with pytest.raises(TaskNotFoundError):
            await store.get(task.id)
        assert await store.list_webhooks(task_id=task.id) == []
