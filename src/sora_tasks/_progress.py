"""Following one task's changes while a block of code runs: what progress bars are made of."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from ._exceptions import SoraTasksError
from ._models import Task

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = ["follow"]


@asynccontextmanager
async def follow(
    manager: TaskManager, on_change: Callable[[Task], object], *, task_id: str | None = None
) -> AsyncIterator[None]:
    """Call ``on_change`` with every new snapshot of one task while the block runs, and once
    more with its final state as the block ends.

    The task is ``task_id``, or else the first task this manager creates inside the block (so
    ``generate``, whose id is not known beforehand, can be followed)::

        async with follow(manager, lambda task: print(task.progress)):
            await manager.generate("a calico cat playing piano")

    An error raised in the block comes out as it is, not wrapped in an exception group.
    """

    followed: list[str] = [task_id] if task_id is not None else []

    async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        events = manager.events()
        # the subscription is made before this task first suspends, so before the block runs
        task_status.started()
        async for event in events:
            if not followed and event.kind == "created":
                followed.append(event.task.id)
            if followed and event.task.id == followed[0]:
                on_change(event.task)

    error: Exception | None = None
    async with anyio.create_task_group() as group:
        await group.start(watch)
        try:
            yield
        except Exception as exc:
            error = exc
        finally:
            group.cancel_scope.cancel()
    if followed:
        # the last event may still sit unread in the watcher's buffer: show the final state
        with contextlib.suppress(SoraTasksError):
            on_change(await manager.get(followed[0]))
    if error is not None:
        raise error
