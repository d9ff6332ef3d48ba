"""Checking the archive against the tasks: every archived video there, whole and unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .._models import Task, TaskStatus
from ._base import ArchiveError

if TYPE_CHECKING:
    from .._manager import TaskManager

__all__ = ["ArchiveProblem", "verify_archive"]

_PAGE = 500

Problem = Literal["missing", "size", "checksum", "elsewhere", "unreadable"]


@dataclass(frozen=True, slots=True)
class ArchiveProblem:
    """One task whose archived video is not as recorded.

    ``problem``: ``missing`` (no object), ``size`` or ``checksum`` (the object differs from
    what was uploaded), ``elsewhere`` (recorded in another archive than the manager's), or
    ``unreadable`` (the store failed; ``detail`` says how).
    """

    task_id: str
    uri: str
    problem: Problem
    detail: str


async def verify_archive(
    manager: TaskManager, *, checksum: bool = False, user_id: str | None = None
) -> AsyncIterator[ArchiveProblem]:
    """Yield every COMPLETED task whose archived object is missing or differs.

    Sizes are compared from the store's metadata; with ``checksum`` every object is read back
    and its SHA-256 compared too (a full download of the archive).
    """
    archive = manager.archive
    if archive is None:
        raise ArchiveError("the manager has no archive to verify")
    async for task in _archived(manager, user_id):
        assert task.result is not None and task.result.archive_uri is not None
        uri = task.result.archive_uri
        key = archive.key_of(uri)
        if key is None:
            yield ArchiveProblem(task.id, uri, "elsewhere", f"not under {archive.uri}")
            continue
        try:
            size = await archive.size(key)
            if size is None:
                yield ArchiveProblem(task.id, uri, "missing", "no object at this key")
                continue
            if size != task.result.archive_byte_size:
                detail = f"{size:,} bytes stored, {task.result.archive_byte_size:,} recorded"
                yield ArchiveProblem(task.id, uri, "size", detail)
                continue
            if checksum:
                digest = await _sha256(manager, task)
                if digest != task.result.archive_sha256:
                    yield ArchiveProblem(task.id, uri, "checksum", f"SHA-256 is {digest}")
        except ArchiveError as exc:
            yield ArchiveProblem(task.id, uri, "unreadable", str(exc))


async def _archived(manager: TaskManager, user_id: str | None) -> AsyncIterator[Task]:
    cursor = None
    while True:
        page = await manager.list(
            status=TaskStatus.COMPLETED, user_id=user_id, limit=_PAGE, cursor=cursor, order="asc"
        )
        for task in page.items:
            if task.result is not None and task.result.archive_uri is not None:
                yield task
        if not page.has_more:
            return
        cursor = page.next_cursor


async def _sha256(manager: TaskManager, task: Task) -> str:
    archive = manager.archive
    assert archive is not None and task.result is not None and task.result.archive_uri
    key = archive.key_of(task.result.archive_uri)
    assert key is not None
    digest = hashlib.sha256()
    async with archive.open(key) as stream:
        async for chunk in stream.aiter_bytes():
            digest.update(chunk)
    return digest.hexdigest()
