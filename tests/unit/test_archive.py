"""The archive seam with memory:// and file:// stores: keys, the content phase, serving, cleanup."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sora_tasks import (
    DownloadError,
    InvalidRequestError,
    PollingPolicy,
    Task,
    TaskManager,
    TaskNotFoundError,
    TaskNotReadyError,
    TaskStatus,
)
from sora_tasks._download_pace import Pace
from sora_tasks._saved import SavedContent
from sora_tasks._schedule import PollSchedule
from sora_tasks.archive import (
    ArchiveError,
    InvalidArchiveError,
    ObstoreArchive,
    archive_key,
    archive_stream,
    check_key_template,
    open_archive,
)
from sora_tasks.providers import ContentStream
from sora_tasks.providers._base import ContentVariant
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video
from tests.factories import make_task

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(
    retry_interval=0.05,
    max_retry_interval=0.2,
    idle_wait=0.05,
    store_retry_interval=0.05,
    schedule=PollSchedule(first_interval=0.05, dense_window=0.1, dense_interval=0.05),
)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
THUMBNAIL = b"RIFF\x00\x00\x00\x00WEBPVP8 thumbnail"
SHA256 = hashlib.sha256(sample_video()).hexdigest()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(archive: ObstoreArchive, key: str) -> bytes:
    async with archive.open(key) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


def test_keys_follow_the_template_and_cannot_climb_out_of_their_user() -> None:
    task = make_task(NOW, user_id="../alice/x")
    assert archive_key("{user_id}/{task_id}.mp4", task) == f"..%2Falice%2Fx/{task.id}.mp4"
    anonymous = make_task(NOW, user_id=None)
    assert archive_key("{provider}/{user_id}/{task_id}.mp4", anonymous) == (
        f"fake/_anonymous/{anonymous.id}.mp4"
    )
    dotted = make_task(NOW, user_id="..")
    assert archive_key("{user_id}/{task_id}", dotted).startswith("%2E%2E/")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{user_id}/video.mp4", "must contain {task_id}"),
        ("{bucket}/{task_id}.mp4", "unknown fields ['bucket']"),
        ("{task_id", "malformed"),
        ("/{task_id}.mp4", "must not start or end"),
    ],
)
def test_a_bad_key_template_is_refused(template: str, problem: str) -> None:
    with pytest.raises(InvalidArchiveError, match=re.escape(problem)) as caught:
        check_key_template(template)
    assert caught.value.field == "archive_key"
    with pytest.raises(InvalidArchiveError, match=re.escape(problem)):
        TaskManager(providers=FakeProvider(), archive="memory://", archive_key=template)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://host/dir", "scheme 'ftp' is not supported"),
        ("videos", "scheme 'none' is not supported"),
        ("s3:///prefix", "names no bucket"),
        ("file://relative/dir", "absolute directory"),
    ],
)
def test_a_bad_archive_url_is_refused_when_the_manager_is_built(url: str, problem: str) -> None:
    with pytest.raises(InvalidArchiveError, match=problem) as caught:
        TaskManager(providers=FakeProvider(), archive=url)
    assert caught.value.field == "archive"
    assert isinstance(caught.value, InvalidRequestError)


def test_half_an_aws_key_names_the_missing_variable_and_never_the_value() -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    with pytest.raises(InvalidArchiveError) as caught:
        open_archive("s3://bucket/videos", environ={"AWS_SECRET_ACCESS_KEY": secret})
    assert "AWS_ACCESS_KEY_ID is not set" in str(caught.value)
    assert secret not in str(caught.value)


async def test_a_missing_directory_is_refused_before_any_task(tmp_path: Path) -> None:
    with pytest.raises(InvalidArchiveError, match="missing does not exist"):
        TaskManager(providers=FakeProvider(), archive=f"file://{tmp_path}/missing")
    archive_dir = tmp_path / "gone"
    archive_dir.mkdir()
    manager = TaskManager(providers=FakeProvider(), archive=f"file://{archive_dir}")
    archive_dir.rmdir()
    with pytest.raises(InvalidArchiveError, match="gone does not exist"):
        async with manager:
            pass


async def test_an_upload_that_fails_leaves_no_object_and_the_old_one_untouched() -> None:
    archive = open_archive("memory://")
    await archive.upload("k.mp4", _chunks(b"old" * 10))

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (9 * 1024 * 1024)
        raise ArchiveError("the body broke off")

    with pytest.raises(ArchiveError, match="broke off"):
        await archive.upload("k.mp4", broken())
    with pytest.raises(ArchiveError, match="broke off"):
        await archive.upload("new.mp4", broken())
    assert await _read(archive, "k.mp4") == b"old" * 10
    assert await archive.size("new.mp4") is None
    await archive.delete("new.mp4")  # missing: not an error


class _Declared(ContentStream):
    def __init__(self, data: bytes, *, length: int | None = None, md5: bytes | None = None) -> None:
        self._data = data
        self.content_length = length
        self.md5 = md5

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in _chunks(self._data):
            yield chunk


@pytest.mark.parametrize(
    ("stream", "max_bytes", "problem"),
    [
        (
            _Declared(b"v" * 3_000_000, length=4_000_000),
            10_000_000,
            "cut short: 3,000,000 of 4,000,000",
        ),
        (_Declared(b"v" * 3_000_000, md5=hashlib.md5(b"other").digest()), 10_000_000, "MD5"),
        (_Declared(b"v" * 3_000_000), 2_000_000, "download limit of 2,000,000 bytes"),
        (_Declared(b"v", length=3_000_000), 2_000_000, "content is 3,000,000 bytes"),
    ],
)
async def test_a_bad_body_aborts_the_upload_and_leaves_no_object(
    stream: ContentStream, max_bytes: int, problem: str
) -> None:
    archive = open_archive("memory://")
    with pytest.raises(DownloadError, match=problem):
        await archive_stream(archive, "bad.mp4", stream, max_bytes=max_bytes, pace=Pace())
    assert await archive.size("bad.mp4") is None


async def test_a_good_body_is_stored_with_its_checksum() -> None:
    data = os.urandom(3_000_001)
    archive = open_archive("memory://")
    stream = _Declared(data, length=len(data), md5=hashlib.md5(data).digest())
    stored = await archive_stream(archive, "a/b.mp4", stream, max_bytes=len(data), pace=Pace())
    assert stored.uri == "memory:///a/b.mp4"
    assert (stored.byte_size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await _read(archive, "a/b.mp4") == data


async def test_the_engine_archives_every_video_with_its_size_and_checksum() -> None:
    provider = FakeProvider(behaviour=QUICK)
    async with TaskManager(
        providers={"fake": provider}, policy=FAST, archive="memory://"
    ) as manager:
        task = await manager.create("archived", user_id="alice")
        done = await manager.wait(task.id, timeout=10)
        assert done.status is TaskStatus.COMPLETED and not done.content_pending
        result = done.result
        assert result is not None
        assert result.archive_uri == f"memory:///alice/{task.id}.mp4"
        assert result.archive_byte_size == len(sample_video())
        assert result.archive_sha256 == SHA256
        assert result.local_path is None, "with only an archive nothing is kept on disk"
        assert result.thumbnail_uri is None, "the fake's thumbnail is the video: skipped"
        archive = manager.archive
        assert isinstance(archive, ObstoreArchive)
        assert await _read(archive, f"alice/{task.id}.mp4") == sample_video()
        async with manager.open_content(task.id, user_id="alice") as stream:
            assert b"".join([c async for c in stream.aiter_bytes()]) == sample_video()
        with pytest.raises(TaskNotFoundError):
            async with manager.open_content(task.id, user_id="mallory"):
                pass
        assert provider.jobs, "the job ran"


async def test_archive_and_download_dir_together_ask_the_provider_once(tmp_path: Path) -> None:
    counted = _CountingProvider(behaviour=QUICK)
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    async with TaskManager(
        providers={"fake": counted},
        policy=FAST,
        archive=f"file://{archive_dir}",
        download_dir=tmp_path,
    ) as manager:
        task = await manager.create("both")
        done = await manager.wait(task.id, timeout=10)
        async with manager.open_content(task.id) as stream:
            assert isinstance(stream, SavedContent), "a local archive serves a file (ranges)"
            assert stream.path == archive_dir / "_anonymous" / f"{task.id}.mp4"
    result = done.result
    assert result is not None and result.local_path == str(tmp_path / f"{task.id}.mp4")
    assert result.sha256 == result.archive_sha256 == SHA256
    assert (archive_dir / "_anonymous" / f"{task.id}.mp4").read_bytes() == sample_video()
    assert counted.video_opens == 1


async def test_a_providers_thumbnail_is_archived_beside_the_video() -> None:
    async with TaskManager(
        providers={"fake": _ThumbnailProvider(behaviour=QUICK)}, policy=FAST, archive="memory://"
    ) as manager:
        task = await manager.create("with a thumbnail", user_id="bob")
        done = await manager.wait(task.id, timeout=10)
        assert done.result is not None
        assert done.result.thumbnail_uri == f"memory:///bob/{task.id}.thumbnail.webp"
        archive = manager.archive
        assert isinstance(archive, ObstoreArchive)
        assert await _read(archive, f"bob/{task.id}.thumbnail.webp") == THUMBNAIL
        await manager.cleanup(older_than=timedelta(0))
        assert await archive.size(f"bob/{task.id}.thumbnail.webp") is None
        assert await archive.size(f"bob/{task.id}.mp4") is None


async def test_content_url_gives_the_providers_link_while_valid_and_nothing_is_archived() -> None:
    provider = FakeProvider(behaviour=QUICK)
    async with TaskManager(providers={"fake": provider}, policy=FAST) as manager:
        task = await manager.create("not archived", user_id="alice")
        done = await manager.wait(task.id, timeout=10)
        assert done.result is not None and done.result.url is not None
        url = await manager.content_url(task.id, user_id="alice")
        assert url == done.result.url
        with pytest.raises(TaskNotFoundError):
            await manager.content_url(task.id, user_id="mallory")
        for bad in (timedelta(0), timedelta(days=8)):
            with pytest.raises(InvalidRequestError, match="at most 7 days") as caught:
                await manager.content_url(task.id, expires_in=bad)
            assert caught.value.field == "expires_in"
            assert caught.value.limit == timedelta(days=7)


async def test_content_url_of_an_unsigned_archive_without_a_link_is_not_ready() -> None:
    provider = FakeProvider(behaviour=QUICK)
    async with TaskManager(
        providers={"fake": provider}, policy=FAST, archive="memory://"
    ) as manager:
        task = await manager.create("archived in memory")
        done = await manager.wait(task.id, timeout=10)
        assert await manager.archive_url(task.id) is None, "memory cannot sign"
        assert done.result is not None
        await manager.store.update(task.id, result=done.result.model_copy(update={"url": None}))
        with pytest.raises(TaskNotReadyError, match="no URL to give"):
            await manager.content_url(task.id)


async def test_cleanup_deletes_the_archived_objects_of_the_tasks_it_removes(
    tmp_path: Path,
) -> None:
    provider = FakeProvider(behaviour=QUICK)
    async with TaskManager(
        providers={"fake": provider}, policy=FAST, archive=f"file://{tmp_path}"
    ) as manager:
        kept_task = await manager.create("kept", user_id="u")
        gone_task = await manager.create("gone", user_id="u")
        await manager.wait(kept_task.id, timeout=10)
        await manager.wait(gone_task.id, timeout=10)
        assert await manager.cleanup(older_than=timedelta(0), delete_archived=False) == 2
        assert (tmp_path / "u" / f"{kept_task.id}.mp4").exists(), "opted out: kept"
        third = await manager.create("third", user_id="u")
        await manager.wait(third.id, timeout=10)
        assert await manager.cleanup(older_than=timedelta(0)) == 1
    assert not (tmp_path / "u" / f"{third.id}.mp4").exists()


async def test_a_failed_upload_leaves_the_task_due_and_logs_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    archive = _FailingArchive()
    provider = FakeProvider(behaviour=QUICK)
    policy = FAST.model_copy(update={"link_lifetime": timedelta(seconds=0.5)})
    caplog.set_level(logging.WARNING)
    async with TaskManager(providers={"fake": provider}, policy=policy, archive=archive) as manager:
        task = await manager.create("never archived")
        finished = await manager.wait(task.id, timeout=10)
    assert finished.status is TaskStatus.FAILED
    assert finished.error is not None and finished.error.code == "expired"
    assert archive.attempts >= 2, "it kept trying while the link was valid"


class _CountingProvider(FakeProvider):
    """A fake that counts the videos asked of it."""

    video_opens = 0

    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        if variant == "video":
            self.video_opens += 1
        return super().open_content(external_id, variant, task=task)


class _Thumbnail(ContentStream):
    content_type = "image/webp"

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.content_length = len(data)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        yield self._data


class _ThumbnailProvider(FakeProvider):
    """A fake whose jobs also have a thumbnail, as OpenAI's do."""

    @asynccontextmanager
    async def _thumbnail(self) -> AsyncIterator[ContentStream]:
        yield _Thumbnail(THUMBNAIL)

    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        if variant == "thumbnail":
            return self._thumbnail()
        return super().open_content(external_id, variant, task=task)


class _FailingArchive(ObstoreArchive):
    def __init__(self) -> None:
        base = open_archive("memory://")
        super().__init__(base.store, "memory://")
        self.attempts = 0

    async def upload(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> None:
        self.attempts += 1
        raise ArchiveError(f"could not store {self.uri_of(key)}: the store is down")
