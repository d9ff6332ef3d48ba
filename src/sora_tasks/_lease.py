"""Keeping a claimed task's lease alive while one long step runs (saving a video, say).

A lease shorter than the step would let a peer claim the task half-way and do the work twice. The
keeper renews it every third of its length with a fenced write; if a renewal finds the task
changed (a peer took it over), the step is cancelled and :class:`ConflictError` raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import anyio

from ._exceptions import ConflictError
from ._logging import log_task
from ._models import Task
from .storage._base import TaskStore

__all__ = ["LeaseKeeper"]

_T = TypeVar("_T")


class LeaseKeeper:
    """Runs a step while renewing ``task``'s lease; :attr:`task` is the latest snapshot."""

    def __init__(self, store: TaskStore, task: Task, *, lease_seconds: float) -> None:
        self._store = store
        self.task = task
        self._lease_seconds = lease_seconds

    async def run(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """Renew the lease now, then run ``step`` while renewing it; return what it returns.

        Raises :class:`ConflictError` when the lease was lost (the step is cancelled then), and
        whatever ``step`` raised otherwise.
        """
        await self._renew()
        outcome: list[_T] = []
        failure: list[Exception] = []
        lost = False

        async def run_step() -> None:
            try:
                outcome.append(await step())
            except Exception as exc:
                failure.append(exc)
            finally:
                group.cancel_scope.cancel()

        async def keep() -> None:
            nonlocal lost
            while True:
                await anyio.sleep(self._lease_seconds / 3)
                try:
                    await self._renew()
                except ConflictError:
                    lost = True
                    group.cancel_scope.cancel()
                    return
                except Exception:
                    # a store blip: the lease still has two thirds to run; try at the next beat
                    log_task(
                        logging.WARNING,
                        "could not renew the lease",
                        self.task,
                        action="lease",
                        exc_info=True,
                    )

        async with anyio.create_task_group() as group:
            group.start_soon(run_step)
            group.start_soon(keep)
        if lost:
            raise ConflictError(f"task {self.task.id} was taken over while its step ran")
        if failure:
            raise failure[0]
        return outcome[0]

    async def _renew(self) -> None:
        until = await self._store.now() + timedelta(seconds=self._lease_seconds)
        self.task = await self._store.update(
            self.task.id, expected_version=self.task.version, lease_expires_at=until
        )
