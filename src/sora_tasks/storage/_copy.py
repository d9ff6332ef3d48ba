"""Copy every task (and its input images) from one store to another: SQLite to PostgreSQL."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .._exceptions import ConflictError, DuplicateExternalIdError
from .._models import ImageData, Task, TaskQuery
from ._base import TaskStore

__all__ = ["CopyReport", "copy_tasks"]

logger = logging.getLogger("sora_tasks.storage")

_PAGE = 500


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_tasks` did: tasks written, and tasks the target already had."""

    copied: int
    skipped: int


async def copy_tasks(source: TaskStore, target: TaskStore) -> CopyReport:
    """Copy every task of ``source`` into ``target``, oldest first, with its input images.

    Stop the workers on ``source`` first: a task polled during the copy is copied as it was
    read. Leases are not carried over, so the target's workers take unfinished tasks up at once,
    with the same provider ids (nothing is submitted again). A task the target already holds
    (same id, or the same provider job) is skipped, so an interrupted copy can simply be run
    again. ``target`` must exist and be migrated (``await target.migrate()`` for a SQLStore).
    """
    copied = skipped = 0
    cursor: str | None = None
    while True:
        page = await source.list(TaskQuery(limit=_PAGE, order="asc", cursor=cursor))
        for task in page.items:
            if await _copy_one(source, target, task):
                copied += 1
            else:
                skipped += 1
        if page.next_cursor is None:
            return CopyReport(copied=copied, skipped=skipped)
        cursor = page.next_cursor


async def _copy_one(source: TaskStore, target: TaskStore, task: Task) -> bool:
    images: list[ImageData] = []
    for sha256 in sorted(task.image_hashes):
        try:
            images.append(await source.get_image(sha256))
        except LookupError:
            # the copy goes on without it: the job was submitted long ago, or the source is damaged
            logger.warning("task %s: its input image %s is no longer stored", task.id, sha256)
    unleased = task.model_copy(update={"lease_owner": None, "lease_expires_at": None})
    try:
        await target.insert(unleased, images=images)
    except ConflictError:
        return False  # copied before
    except DuplicateExternalIdError:
        logger.warning(
            "task %s: the target has another task bound to job %s; not copied",
            task.id,
            task.external_id,
        )
        return False
    return True
