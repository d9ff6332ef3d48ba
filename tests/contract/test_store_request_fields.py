"""Every store keeps the richer request fields, and every input image until no task needs it."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from sora_tasks import ReferenceImage, TaskStatus
from sora_tasks._models import ImageData
from sora_tasks.storage import TaskStore
from tests.factories import make_task

pytestmark = pytest.mark.anyio


def picture(tag: bytes) -> ImageData:
    data = b"\x89PNG\r\n\x1a\n" + tag
    return ImageData(data, "image/png", 8, 8, hashlib.sha256(data).hexdigest())


def described(image: ImageData) -> ReferenceImage:
    return ReferenceImage(sha256=image.sha256, mime_type=image.mime_type, byte_size=len(image.data))


async def test_the_request_fields_come_back_as_stored(store: TaskStore) -> None:
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


async def test_every_input_image_stays_until_its_last_task_is_deleted(store: TaskStore) -> None:
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
    guided = await store.insert(make_task(now, reference_images=[described(guide)]), images=[guide])
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
