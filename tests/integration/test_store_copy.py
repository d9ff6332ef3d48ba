"""Copying tasks between stores: from an SQLite file into SQLite and PostgreSQL, and in memory."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sora_tasks import TaskStatus
from sora_tasks._models import ImageData, ReferenceImage, TaskQuery
from sora_tasks.storage import InMemoryStore, SQLStore, TaskStore, copy_tasks
from tests.factories import make_task
from tests.images import make_image

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def fill(store: TaskStore) -> list[str]:
    """Three tasks: one finished, one polling under a lease, one with a reference image."""
    data = make_image(1280, 720)
    image = ImageData(data, "image/png", 1280, 720, hashlib.sha256(data).hexdigest())
    done = make_task(NOW, status=TaskStatus.COMPLETED, external_id="job_1")
    leased = make_task(
        NOW + timedelta(seconds=1),
        status=TaskStatus.PROCESSING,
        external_id="job_2",
        lease_owner="dead-worker",
        lease_expires_at=NOW + timedelta(minutes=2),
    )
    pictured = make_task(
        NOW + timedelta(seconds=2),
        reference_image=ReferenceImage(
            sha256=image.sha256, mime_type=image.mime_type, byte_size=len(data)
        ),
    )
    for task, with_image in ((done, None), (leased, None), (pictured, image)):
        await store.insert(task, images=[with_image] if with_image else [])
    return [done.id, leased.id, pictured.id]


async def check_copy(source: TaskStore, target: TaskStore) -> None:
    ids = await fill(source)
    report = await copy_tasks(source, target)
    assert (report.copied, report.skipped) == (3, 0)
    page = await target.list(TaskQuery(order="asc"))
    assert [task.id for task in page.items] == ids
    for original_id in ids:
        original, copy = await source.get(original_id), await target.get(original_id)
        assert copy.model_dump(exclude={"lease_owner", "lease_expires_at"}) == original.model_dump(
            exclude={"lease_owner", "lease_expires_at"}
        )
        assert copy.lease_owner is None and copy.lease_expires_at is None
    pictured = await target.get(ids[2])
    assert pictured.reference_image is not None and pictured.reference_image.sha256 is not None
    image = await target.get_image(pictured.reference_image.sha256)
    assert image == await source.get_image(pictured.reference_image.sha256)

    again = await copy_tasks(source, target)
    assert (again.copied, again.skipped) == (0, 3)


async def test_copy_between_memory_stores() -> None:
    await check_copy(InMemoryStore(), InMemoryStore())


async def test_copy_from_an_sqlite_file_into_each_database(
    sql_store: SQLStore, tmp_path: Path
) -> None:
    source = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}")
    try:
        await check_copy(source, sql_store)
    finally:
        await source.close()


async def test_a_job_the_target_binds_to_another_task_is_not_copied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, target = InMemoryStore(), InMemoryStore()
    await source.insert(make_task(NOW, status=TaskStatus.PROCESSING, external_id="job_1"))
    other = make_task(NOW, status=TaskStatus.PROCESSING, external_id="job_1")
    await target.insert(other)
    report = await copy_tasks(source, target)
    assert (report.copied, report.skipped) == (0, 1)
    assert [task.id for task in (await target.list(TaskQuery())).items] == [other.id]
    assert "bound to job job_1" in caplog.text
