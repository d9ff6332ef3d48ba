"""A download without a path is named after the task and what it holds: an image is no .mp4."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from sora_tasks import MediaType, PollingPolicy, Task, TaskManager, TaskStatus
from sora_tasks._filenames import default_filename
from sora_tasks.testing import FakeBehaviour, FakeProvider

NOW = datetime(2026, 11, 30, tzinfo=UTC)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)
FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05)


def task_of(media_type: MediaType) -> Task:
    return Task(
        provider="fake",
        prompt="a cat",
        model="m",
        size="1280x720",
        seconds=4,
        media_type=media_type,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("media_type", "content_type", "extension"),
    [
        (MediaType.VIDEO, None, ".mp4"),
        (MediaType.VIDEO, "video/mp4", ".mp4"),
        (MediaType.VIDEO, "video/webm; codecs=vp9", ".webm"),
        (MediaType.VIDEO, "application/octet-stream", ".mp4"),
        (MediaType.IMAGE, None, ".png"),
        (MediaType.IMAGE, "image/jpeg", ".jpg"),
        (MediaType.IMAGE, "IMAGE/WEBP", ".webp"),
        # a provider answering every variant as video/mp4 does not make an image an MP4
        (MediaType.IMAGE, "video/mp4", ".png"),
    ],
)
def test_the_extension_says_what_the_file_is(
    media_type: MediaType, content_type: str | None, extension: str
) -> None:
    task = task_of(media_type)
    assert default_filename(task, content_type) == f"{task.id}{extension}"


@pytest.mark.anyio
async def test_download_without_a_path_names_an_image_by_its_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with TaskManager(providers=FakeProvider(behaviour=QUICK), policy=FAST) as manager:
        image = await manager.create("a cat", media_type=MediaType.IMAGE)
        video = await manager.create("a dog")
        for task in (image, video):
            assert (await manager.wait(task.id, timeout=10)).status is TaskStatus.COMPLETED
        saved_image = await manager.download(image.id)
        made = await manager.generate("a bird")
    assert saved_image.result is not None
    assert saved_image.result.local_path == f"{image.id}.png"
    assert (tmp_path / f"{image.id}.png").stat().st_size > 0
    assert made.result is not None
    assert made.result.local_path == f"{made.id}.mp4"


@pytest.mark.anyio
async def test_the_engine_saves_an_image_into_download_dir_with_an_image_extension(
    tmp_path: Path,
) -> None:
    async with TaskManager(
        providers=FakeProvider(behaviour=QUICK), policy=FAST, download_dir=tmp_path
    ) as manager:
        task = await manager.create("a cat", media_type=MediaType.IMAGE)
        await manager.wait(task.id, timeout=10)
        with anyio.fail_after(10):
            # the content phase ends with a write of its own, after the task completed
            while not ((task := await manager.get(task.id)).result and task.result.local_path):  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert task.result is not None
    assert task.result.local_path == str(tmp_path / f"{task.id}.png")
