"""A store that keeps everything in the process: for tests, notebooks and one-off scripts."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Unpack

from .._budgets import BudgetCheck
from .._exceptions import ConflictError, DuplicateExternalIdError, TaskNotFoundError
from .._models import ImageData, Task, TaskPage, TaskQuery, TaskStats, TaskStatus
from .._outbox import WebhookDelivery, WebhookState, events_for
from .._states import ENGINE_PHASES, Phase, TaskChanges, apply, is_claimable, phase_of
from ._base import (
    ChangeCursor,
    CostRow,
    check_budget,
    decode_cursor,
    encode_cursor,
    stats_from,
)

__all__ = ["InMemoryStore"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InMemoryStore:
    """A :class:`TaskStore` in plain dictionaries. Nothing survives the process.

    It follows the same contract as the SQL store (the same test suite runs on both), so code
    tested against it behaves the same on a database. ``clock`` lets tests control time.
    """

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._by_external: dict[tuple[str, str], str] = {}
        self._active: set[str] = set()
        self._awaiting: set[str] = set()
        self._due: list[tuple[datetime, str, int]] = []
        self._images: dict[str, ImageData] = {}
        self._webhooks: dict[str, WebhookDelivery] = {}
        self._pending_webhooks: set[str] = set()

    def __repr__(self) -> str:
        return f"InMemoryStore(tasks={len(self._tasks)})"

    async def now(self) -> datetime:
        """The injected clock's time."""
        return self._clock()

    async def insert(self, task: Task, *, images: Sequence[ImageData] = ()) -> Task:
        """Store a new task; see :meth:`TaskStore.insert`."""
        if task.id in self._tasks:
            raise ConflictError(f"a task with id {task.id!r} already exists")
        if task.external_id is not None:
            self._check_external_free(task.provider, task.external_id, task.id)
        for image in images:
            self._images.setdefault(image.sha256, image)
        self._store(task)
        return task

    async def insert_within_budget(
        self,
        task: Task,
        *,
        checks: Sequence[BudgetCheck],
        images: Sequence[ImageData] = (),
    ) -> list[float]:
        """See :meth:`TaskStore.insert_within_budget` (no await between check and insert)."""
        now = self._clock()
        spent = [self._spent(check, now - check.limit.window) for check in checks]
        check_budget(task, checks, spent)
        await self.insert(task, images=images)
        return spent

    def _spent(self, check: BudgetCheck, since: datetime) -> float:
        return sum(
            task.cost.amount
            for task in self._tasks.values()
            if task.cost is not None
            and task.cost.currency == check.limit.currency
            and task.created_at >= since
            and (check.user_id is None or task.user_id == check.user_id)
        )

    async def get(self, task_id: str) -> Task:
        """See :meth:`TaskStore.get`."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFoundError(task_id) from None

    async def get_by_external_id(self, external_id: str, *, provider: str | None = None) -> Task:
        """See :meth:`TaskStore.get_by_external_id`."""
        if provider is not None:
            task_id = self._by_external.get((provider, external_id))
            if task_id is None:
                raise TaskNotFoundError(external_id)
            return self._tasks[task_id]
        matches = [
            self._tasks[tid] for (_, ext), tid in self._by_external.items() if ext == external_id
        ]
        if not matches:
            raise TaskNotFoundError(external_id)
        return max(matches, key=lambda task: (task.created_at, task.id))

    async def update(
        self, task_id: str, *, expected_version: int | None = None, **changes: Unpack[TaskChanges]
    ) -> Task:
        """See :meth:`TaskStore.update`."""
        current = self._tasks.get(task_id)
        if current is None:
            raise TaskNotFoundError(task_id)
        if expected_version is not None and current.version != expected_version:
            raise ConflictError(
                f"task {task_id} is at version {current.version}, not {expected_version}"
            )
        now = self._clock()
        updated = apply(current, changes, now=now)
        if updated.external_id is not None and updated.external_id != current.external_id:
            self._check_external_free(updated.provider, updated.external_id, task_id)
        self._store(updated)
        for delivery in events_for(current, updated, now=now):
            self._put_webhook(delivery)
        return updated

    async def list(self, query: TaskQuery) -> TaskPage:
        """See :meth:`TaskStore.list`."""
        descending = query.order == "desc"
        after = decode_cursor(query.cursor) if query.cursor else None
        matches = []
        for task in self._tasks.values():
            if not _matches(task, query):
                continue
            key = (task.created_at, task.id)
            if after is not None and (key >= after if descending else key <= after):
                continue
            matches.append(task)
        matches.sort(key=lambda task: (task.created_at, task.id), reverse=descending)
        items = matches[: query.limit]
        more = len(matches) > query.limit
        return TaskPage(items=items, next_cursor=encode_cursor(items[-1]) if more else None)

    async def changes(
        self, *, user_id: str | None, after: ChangeCursor | None, limit: int
    ) -> Sequence[Task]:
        """See :meth:`TaskStore.changes`."""
        found = [
            task
            for task in self._tasks.values()
            if (user_id is None or task.user_id == user_id)
            and (after is None or ChangeCursor.of(task) > after)
        ]
        found.sort(key=ChangeCursor.of)
        return found[: max(0, limit)]

    async def stats(self, *, user_id: str | None = None) -> TaskStats:
        """See :meth:`TaskStore.stats`."""
        by_status: dict[TaskStatus, int] = {}
        by_provider: dict[str, int] = {}
        renders: list[float] = []
        costs: list[CostRow] = []
        for task in self._tasks.values():
            if user_id is not None and task.user_id != user_id:
                continue
            if task.cost is not None:
                cost = task.cost
                costs.append((task.user_id, task.provider, task.model, cost.currency, cost.amount))
            by_status[task.status] = by_status.get(task.status, 0) + 1
            by_provider[task.provider] = by_provider.get(task.provider, 0) + 1
            if task.status is TaskStatus.COMPLETED and task.completed_at is not None:
                renders.append((task.completed_at - task.created_at).total_seconds())
        return stats_from(by_status, by_provider, sorted(renders), costs)

    async def get_image(self, sha256: str) -> ImageData:
        """See :meth:`TaskStore.get_image`."""
        try:
            return self._images[sha256]
        except KeyError:
            raise LookupError(f"no stored image with sha256 {sha256}") from None

    async def delete_finished(self, *, before: datetime) -> int:
        """See :meth:`TaskStore.delete_finished`."""
        owing = {self._webhooks[key].task_id for key in self._pending_webhooks}
        doomed = [
            task
            for task in self._tasks.values()
            if phase_of(task) is Phase.DONE
            and (task.completed_at or task.updated_at) < before
            and task.id not in owing
        ]
        gone = {task.id for task in doomed}
        for key in [key for key, row in self._webhooks.items() if row.task_id in gone]:
            del self._webhooks[key]
        for task in doomed:
            del self._tasks[task.id]
            if task.external_id is not None:
                self._by_external.pop((task.provider, task.external_id), None)
        used = {sha256 for task in self._tasks.values() for sha256 in task.image_hashes}
        for sha256 in set(self._images) - used:
            del self._images[sha256]
        return len(doomed)

    async def claim_due(
        self, *, owner: str, limit: int, lease_seconds: float, content: bool = False
    ) -> Sequence[Task]:
        """See :meth:`TaskStore.claim_due`."""
        now = self._clock()
        phases = set(ENGINE_PHASES) if content else set(ENGINE_PHASES) - {Phase.COLLECTING}
        chosen: list[Task] = []
        passed_over: list[tuple[datetime, str, int]] = []
        while self._due and len(chosen) < limit and self._due[0][0] <= now:
            entry = heapq.heappop(self._due)
            task = self._tasks.get(entry[1])
            if task is None or task.version != entry[2] or not is_claimable(task, now):
                continue
            if phase_of(task) in phases:
                chosen.append(task)
            else:
                passed_over.append(entry)
        for entry in passed_over:
            heapq.heappush(self._due, entry)
        return self._lease(chosen, owner, now, lease_seconds)

    async def claim_submissions(
        self,
        *,
        provider: str,
        owner: str,
        limit: int,
        lease_seconds: float,
        max_in_flight: int | None = None,
    ) -> Sequence[Task]:
        """See :meth:`TaskStore.claim_submissions`."""
        now = self._clock()
        waiting = [
            task
            for task in (self._tasks[task_id] for task_id in self._awaiting)
            if task.provider == provider and is_claimable(task, now)
        ]
        if not waiting:
            return []
        if max_in_flight is not None:
            in_flight = sum(
                1
                for task in (self._tasks[task_id] for task_id in self._active)
                if task.provider == provider
                and (
                    phase_of(task) is not Phase.WAITING
                    or (task.lease_expires_at is not None and task.lease_expires_at > now)
                )
            )
            limit = min(limit, max_in_flight - in_flight)
        waiting.sort(key=lambda task: (-task.priority, task.created_at, task.id))
        return self._lease(waiting[: max(0, limit)], owner, now, lease_seconds)

    def _lease(
        self, tasks: Sequence[Task], owner: str, now: datetime, seconds: float
    ) -> Sequence[Task]:
        expires = now + timedelta(seconds=seconds)
        claimed = []
        for task in tasks:
            leased = apply(task, {"lease_owner": owner, "lease_expires_at": expires}, now=now)
            # a lease is the engine's bookkeeping, not a change of the task: see claim_due
            leased = leased.model_copy(update={"updated_at": task.updated_at})
            self._store(leased)
            claimed.append(leased)
        return claimed

    async def claim_webhooks(
        self, *, owner: str, limit: int, lease_seconds: float
    ) -> Sequence[WebhookDelivery]:
        """See :meth:`TaskStore.claim_webhooks`."""
        now = self._clock()
        pending = [self._webhooks[key] for key in self._pending_webhooks]
        first_seq: dict[str, int] = {}
        for row in pending:
            first_seq[row.task_id] = min(row.seq, first_seq.get(row.task_id, row.seq))
        due = sorted(
            (
                row
                for row in pending
                if row.seq == first_seq[row.task_id]
                and row.next_attempt_at is not None
                and row.next_attempt_at <= now
                and (row.lease_expires_at is None or row.lease_expires_at <= now)
            ),
            key=lambda row: (row.next_attempt_at, row.id),
        )
        expires = now + timedelta(seconds=lease_seconds)
        claimed = []
        for row in due[: max(0, limit)]:
            leased = row.model_copy(
                update={
                    "lease_owner": owner,
                    "lease_expires_at": expires,
                    "attempts": row.attempts + 1,
                }
            )
            self._put_webhook(leased)
            claimed.append(leased)
        return claimed

    async def settle_webhook(
        self,
        delivery_id: str,
        *,
        owner: str,
        state: WebhookState,
        error: str | None = None,
        retry_in: float = 0.0,
    ) -> None:
        """See :meth:`TaskStore.settle_webhook`."""
        row = self._webhooks.get(delivery_id)
        if row is None:
            raise LookupError(f"no webhook delivery {delivery_id}")
        if row.state is not WebhookState.PENDING or row.lease_owner != owner:
            raise ConflictError(f"webhook delivery {delivery_id} is no longer held by {owner}")
        now = self._clock()
        self._put_webhook(
            row.model_copy(
                update={
                    "state": state,
                    "last_error": error,
                    "next_attempt_at": now + timedelta(seconds=retry_in)
                    if state is WebhookState.PENDING
                    else None,
                    "delivered_at": now if state is WebhookState.DELIVERED else None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                }
            )
        )

    async def list_webhooks(
        self,
        *,
        state: WebhookState | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[WebhookDelivery]:
        """See :meth:`TaskStore.list_webhooks`."""
        rows = [
            row
            for row in self._webhooks.values()
            if (state is None or row.state is state) and (task_id is None or row.task_id == task_id)
        ]
        rows.sort(key=lambda row: (row.created_at, row.seq, row.id), reverse=True)
        return rows[:limit]

    async def retry_webhooks(self, delivery_ids: Sequence[str] | None = None) -> int:
        """See :meth:`TaskStore.retry_webhooks`."""
        now = self._clock()
        chosen = list(self._webhooks) if delivery_ids is None else list(delivery_ids)
        rearmed = 0
        for key in chosen:
            row = self._webhooks.get(key)
            if row is None or row.state is not WebhookState.FAILED:
                continue
            self._put_webhook(
                row.model_copy(
                    update={
                        "state": WebhookState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "armed_at": now,
                    }
                )
            )
            rearmed += 1
        return rearmed

    def _put_webhook(self, row: WebhookDelivery) -> None:
        self._webhooks[row.id] = row
        if row.state is WebhookState.PENDING:
            self._pending_webhooks.add(row.id)
        else:
            self._pending_webhooks.discard(row.id)

    async def close(self) -> None:
        """Nothing to release."""

    def _store(self, task: Task) -> None:
        self._tasks[task.id] = task
        if task.external_id is not None:
            self._by_external[(task.provider, task.external_id)] = task.id
        self._awaiting.discard(task.id)
        phase = phase_of(task)
        if phase in (Phase.COLLECTING, Phase.DONE):
            self._active.discard(task.id)
        else:
            self._active.add(task.id)
        if phase is Phase.WAITING:
            self._awaiting.add(task.id)
        elif phase is not Phase.DONE and task.next_poll_at is not None:
            self._schedule(task)

    def _schedule(self, task: Task) -> None:
        # an entry is live while its version is the task's; a leased task comes due when its
        # lease runs out, unless its holder writes (and so schedules) it first
        assert task.next_poll_at is not None
        when = task.next_poll_at
        if task.lease_expires_at is not None and task.lease_expires_at > when:
            when = task.lease_expires_at
        heapq.heappush(self._due, (when, task.id, task.version))
        if len(self._due) > 4 * len(self._active) + 1024:
            self._due = [entry for entry in self._due if self._live(entry)]
            heapq.heapify(self._due)

    def _live(self, entry: tuple[datetime, str, int]) -> bool:
        task = self._tasks.get(entry[1])
        return task is not None and task.version == entry[2]

    def _check_external_free(self, provider: str, external_id: str, task_id: str) -> None:
        holder = self._by_external.get((provider, external_id))
        if holder is not None and holder != task_id:
            raise DuplicateExternalIdError(
                f"{provider} job {external_id!r} is already bound to task {holder}"
            )


def _matches(task: Task, query: TaskQuery) -> bool:
    return (
        (query.user_id is None or task.user_id == query.user_id)
        and (query.status is None or task.status is query.status)
        and (query.provider is None or task.provider == query.provider)
        and (query.media_type is None or task.media_type is query.media_type)
        and (query.created_after is None or task.created_at >= query.created_after)
        and (query.created_before is None or task.created_at < query.created_before)
    )
