"""A worker SIGKILLed half-way through uploading videos to S3 leaves no object behind it, and a
peer archives each video exactly once, whole, with the right checksum."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Callable

import anyio
import httpx2
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sora_tasks import TaskStatus
from sora_tasks.testing import SimulatorApp, create_simulator_app
from tests.acceptance.test_worker_crashes import Workers, eventually, read_tasks, workers
from tests.s3server import LocalS3

pytestmark = [pytest.mark.anyio, pytest.mark.acceptance, pytest.mark.timeout(120)]

__all__ = ["workers"]  # the fixture, imported for this module's tests

CONTENT = os.urandom(24 * 1024 * 1024)
HELD_AFTER = 12 * 1024 * 1024  # past the first 8 MiB part: the multipart upload has begun


class HeldContent:
    """Wraps the simulator: video bodies stop after ``HELD_AFTER`` bytes until ``gate`` opens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gate = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/content"):
            await self.app(scope, receive, send)
            return
        sent = 0

        async def held(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                # the gate is set from the test's thread: a threading.Event, polled
                while sent > HELD_AFTER and not self.gate.is_set():  # noqa: ASYNC110
                    await anyio.sleep(0.05)  # the stalled provider the worker dies behind
            await send(message)

        await self.app(scope, receive, held)


async def test_a_worker_killed_mid_upload_leaves_no_object_and_a_peer_archives_each_once(
    workers: Callable[[SimulatorApp], Workers], s3: LocalS3
) -> None:
    bucket = s3.create_bucket()
    archive = f"s3://{bucket}/videos"
    simulator = create_simulator_app(
        render_seconds=0.5, queue_seconds=0, poll_after_ms=100, content=CONTENT
    )
    held = HeldContent(simulator)
    group = workers(held)  # type: ignore[arg-type]
    first, _ = group.start("first", create=2, lease_seconds=2, archive=archive)

    async def uploading() -> bool:
        tasks = await read_tasks(group.db)
        pending = len(tasks) == 2 and all(t.content_pending for t in tasks)
        return pending and len(s3.unfinished_uploads(bucket)) == 2

    await eventually(uploading, timeout=60, what="two multipart uploads under way")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    assert s3.keys(bucket) == [], "an interrupted upload shows no object"
    stale = set(s3.unfinished_uploads(bucket))

    held.gate.set()
    group.start("second", lease_seconds=2, archive=archive)

    async def archived() -> bool:
        tasks = await read_tasks(group.db)
        return bool(tasks) and all(not t.content_pending for t in tasks)

    await eventually(archived, timeout=60, what="every video archived")
    expected = hashlib.sha256(CONTENT).hexdigest()
    tasks = await read_tasks(group.db)
    keys = sorted(f"videos/_anonymous/{task.id}.mp4" for task in tasks)
    assert sorted(s3.keys(bucket)) == keys, "each video exactly once"
    assert stale <= set(s3.unfinished_uploads(bucket)), "the dead worker's parts never completed"
    for task in tasks:
        assert task.status is TaskStatus.COMPLETED and task.result is not None
        assert task.result.archive_sha256 == expected
        assert task.result.archive_byte_size == len(CONTENT)
        assert task.result.archive_uri == f"s3://{bucket}/{keys[0].rsplit('/', 1)[0]}/{task.id}.mp4"
        body = httpx2.get(f"{s3.endpoint}/{bucket}/videos/_anonymous/{task.id}.mp4", timeout=30)
        assert hashlib.sha256(body.content).hexdigest() == expected
