"""The storage interface, and the small pure helpers every store shares.

A store persists tasks and their reference images. It enforces the state machine on every write
(through :func:`sora_tasks._states.apply`), makes every write conditional when asked to, and hands
out due tasks under leases so that several pollers never poll one task at the same time.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Unpack, runtime_checkable

from .._budgets import BudgetCheck, describe_window
from .._exceptions import BudgetExceededError, InvalidRequestError
from .._models import ImageData, Task, TaskPage, TaskQuery, TaskStats, TaskStatus
from .._states import TaskChanges

__all__ = [
    "ChangeCursor",
    "CostRow",
    "check_budget",
    "TaskStore",
    "decode_cursor",
    "encode_cursor",
    "percentile",
    "stats_from",
]


@dataclass(frozen=True, order=True, slots=True)
class ChangeCursor:
    """A place in the change feed: just after the task ``task_id`` as of ``updated_at``.

    Changes are ordered by ``(updated_at, task_id)``; an empty ``task_id`` stands before every
    task changed at ``updated_at``.
    """

    updated_at: datetime
    task_id: str = ""

    @classmethod
    def of(cls, task: Task) -> ChangeCursor:
        """The place of ``task``'s current snapshot in the feed."""
        return cls(task.updated_at, task.id)


@runtime_checkable
class TaskStore(Protocol):
    """Where tasks live. :class:`~sora_tasks.storage.InMemoryStore` and
    :class:`~sora_tasks.storage.SQLStore` implement it; so can you.

    Errors are the library's own: :class:`TaskNotFoundError`, :class:`ConflictError`,
    :class:`DuplicateExternalIdError`, :class:`InvalidTransitionError`, never a driver's.
    """

    async def now(self) -> datetime:
        """The store's clock (the database's, for SQL stores). Leases are measured with it."""
        ...

    async def insert(self, task: Task, *, images: Sequence[ImageData] = ()) -> Task:
        """Store a new task and its input images (each kept once per distinct content).

        ``images`` hold the bytes of the images ``task.image_hashes`` names; an image a task no
        longer needs is removed by :meth:`delete_finished` once no other task names it.
        """
        ...

    async def insert_within_budget(
        self,
        task: Task,
        *,
        checks: Sequence[BudgetCheck],
        images: Sequence[ImageData] = (),
    ) -> list[float]:
        """:meth:`insert` ``task`` only if its cost fits every limit of ``checks``, atomically
        with any other insert checked against them; return what each limit's window held
        before it.

        A limit's window holds the costs (in the limit's currency) of the tasks created within
        ``limit.window`` of the store's clock, of ``check.user_id`` or of everyone. Raises
        :class:`BudgetExceededError` for the first limit the task would pass, storing nothing.
        """
        ...

    async def get(self, task_id: str) -> Task:
        """The task with our id, or :class:`TaskNotFoundError`."""
        ...

    async def get_by_external_id(self, external_id: str, *, provider: str | None = None) -> Task:
        """The task bound to a provider's job id, or :class:`TaskNotFoundError`."""
        ...

    async def update(
        self, task_id: str, *, expected_version: int | None = None, **changes: Unpack[TaskChanges]
    ) -> Task:
        """Apply ``changes`` through the state machine; return the new snapshot.

        With ``expected_version`` the write happens only if the stored task still has that
        version (it is also the lease's fencing token); otherwise :class:`ConflictError`.
        """
        ...

    async def list(self, query: TaskQuery) -> TaskPage:
        """One page of tasks matching ``query``, ordered by creation time then id."""
        ...

    async def changes(
        self, *, user_id: str | None, after: ChangeCursor | None, limit: int
    ) -> Sequence[Task]:
        """Up to ``limit`` tasks (of ``user_id``, or of everyone) whose ``(updated_at, id)``
        comes after ``after`` (all when None), in that order, each as it is now.

        A task changed several times since ``after`` comes once, in its latest state. The feed
        is read-committed: a write whose transaction began earlier can become visible after a
        later one was read, with the smaller ``updated_at``, so a reader that must miss nothing
        re-reads a window behind its cursor (see ``sora_tasks.contrib``'s live events).
        """
        ...

    async def stats(self, *, user_id: str | None = None) -> TaskStats:
        """Counts and render times, for one user or for all."""
        ...

    async def get_image(self, sha256: str) -> ImageData:
        """A stored input image by content hash, or :class:`LookupError`."""
        ...

    async def delete_finished(self, *, before: datetime) -> int:
        """Delete terminal tasks finished before ``before``, and images no task uses any more."""
        ...

    async def claim_due(
        self, *, owner: str, limit: int, lease_seconds: float, content: bool = False
    ) -> Sequence[Task]:
        """Lease up to ``limit`` tasks whose ``next_poll_at`` has come, among those in the
        engine's phases (:data:`sora_tasks._states.ENGINE_PHASES`): a submission under way (to
        reconcile), a provider job to poll and, with ``content``, a completed task whose content
        is still to be saved.

        A task is claimable when no live lease holds it. Claiming sets ``lease_owner`` and
        ``lease_expires_at`` and bumps ``version``, which the claimant passes back as
        ``expected_version`` on its next write: a peer that took the task over since then makes
        that write fail with :class:`ConflictError`. Earliest ``next_poll_at`` first.
        """
        ...

    async def claim_submissions(
        self,
        *,
        provider: str,
        owner: str,
        limit: int,
        lease_seconds: float,
        max_in_flight: int | None = None,
    ) -> Sequence[Task]:
        """Lease tasks of ``provider`` that wait to be submitted, highest priority then oldest.

        A task waits to be submitted in the ``WAITING`` phase, once its ``next_poll_at`` has
        come. With ``max_in_flight``, no more are handed out than leave the provider's unfinished
        jobs within it: those ``SUBMITTING`` or ``RENDERING``, and those leased (claimed for
        submission but not sent yet).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def check_budget(task: Task, checks: Sequence[BudgetCheck], spent: Sequence[float]) -> None:
    """Raise :class:`BudgetExceededError` if ``task``'s cost passes a limit, given ``spent``."""
    cost = task.cost.amount if task.cost is not None else 0.0
    for check, before in zip(checks, spent, strict=True):
        limit = check.limit
        if before + cost <= limit.amount + 1e-9:
            continue
        who = f"user {check.user_id!r}" if check.user_id is not None else "all users together"
        raise BudgetExceededError(
            f"this task ({cost:.2f} {limit.currency}) would take {who} past the limit of "
            f"{limit.amount:.2f} {limit.currency} per {describe_window(limit.window)}: "
            f"{before:.2f} {limit.currency} spent already",
            limit=limit.amount,
            spent=before,
            estimate=cost,
            currency=limit.currency,
            user_id=check.user_id,
        )


def encode_cursor(task: Task) -> str:
    """The opaque cursor that resumes a listing right after ``task``."""
    raw = json.dumps([task.created_at.isoformat(), task.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Undo :func:`encode_cursor`; any other string is an :class:`InvalidRequestError`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, task_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), str(task_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("invalid page cursor", field="cursor") from exc


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile of already sorted values (``None`` when empty)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


CostRow = tuple[str | None, str, str, str, float]
"""One sum of task costs: user id, provider, model, currency and amount."""


def stats_from(
    by_status: dict[TaskStatus, int],
    by_provider: dict[str, int],
    render_seconds: Sequence[float],
    costs: Iterable[CostRow] = (),
) -> TaskStats:
    """Build :class:`TaskStats` from counts, the sorted render times of completed tasks and
    sums of task costs (any grouping finer than user, provider, model and currency)."""
    totals: dict[str, float] = {}
    groups: tuple[dict[str, dict[str, float]], ...] = ({}, {}, {})
    for user, provider, model, currency, amount in costs:
        totals[currency] = totals.get(currency, 0.0) + amount
        for group, key in zip(groups, (user or "", provider, model), strict=True):
            by_currency = group.setdefault(key, {})
            by_currency[currency] = by_currency.get(currency, 0.0) + amount
    full = {status: by_status.get(status, 0) for status in TaskStatus}
    finished = full[TaskStatus.COMPLETED] + full[TaskStatus.FAILED]
    return TaskStats(
        total=sum(full.values()),
        by_status=full,
        by_provider=dict(sorted(by_provider.items())),
        success_rate=full[TaskStatus.COMPLETED] / finished if finished else None,
        render_seconds_mean=sum(render_seconds) / len(render_seconds) if render_seconds else None,
        render_seconds_p50=percentile(render_seconds, 0.5),
        render_seconds_p90=percentile(render_seconds, 0.9),
        cost_total=_rounded(totals),
        cost_by_user={key: _rounded(value) for key, value in sorted(groups[0].items())},
        cost_by_provider={key: _rounded(value) for key, value in sorted(groups[1].items())},
        cost_by_model={key: _rounded(value) for key, value in sorted(groups[2].items())},
    )


def _rounded(amounts: dict[str, float]) -> dict[str, float]:
    # sums of binary fractions drift: a cent's millionth is no part of any price
    return {currency: round(amount, 6) for currency, amount in sorted(amounts.items())}
