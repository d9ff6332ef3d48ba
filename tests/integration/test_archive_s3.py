"""Archiving into a real S3 API (moto's server on 127.0.0.1) from the simulator over a socket,
and serving the archived videos back over HTTP."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import anyio
import httpx2
import pytest
from fastapi import FastAPI, Header

from sora_tasks import PollingPolicy, PollSchedule, Task, TaskManager, TaskNotFoundError
from sora_tasks._secrets import scrub
from sora_tasks.archive import InvalidArchiveError
from sora_tasks.contrib.fastapi import create_router
from sora_tasks.providers import OpenAIVideosProvider
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from sora_tasks.testing import SimulatorApp, create_simulator_app, serve_in_thread
from sora_tasks.testing._server import base_url, bind, make_server
from tests.s3server import LocalS3

pytestmark = pytest.mark.anyio

POLICY = PollingPolicy(
    schedule=PollSchedule(first_interval=0.05, dense_window=0.2, dense_interval=0.05),
    idle_wait=0.05,
    retry_interval=0.1,
)
CANARY = "archive-canary-secret-4f1e9b"
CONTENT = os.urandom(20 * 1024 * 1024 + 12345)  # three multipart parts, the last one short


def user_from_header(x_user: Annotated[str, Header()]) -> str:
    return x_user


@asynccontextmanager
async def archiving(
    s3: LocalS3, bucket: str, simulator: SimulatorApp | None = None
) -> AsyncIterator[TaskManager]:
    simulator = simulator or create_simulator_app(
        render_seconds=0.2, queue_seconds=0, poll_after_ms=50, content=CONTENT
    )
    with serve_in_thread(simulator) as url:
        provider = OpenAIVideosProvider(
            api_key="sk-archive-tests",
            base_url=f"{url}/v1",
            capabilities=DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0}),
        )
        manager = TaskManager(
            providers={"sim": provider}, policy=POLICY, archive=f"s3://{bucket}/videos"
        )
        async with manager:
            yield manager


async def finished(manager: TaskManager, user: str) -> Task:
    task = await manager.create("archived", model="sora-2", seconds=4, user_id=user)
    return await manager.wait(task.id, timeout=30)


async def test_the_engine_streams_each_video_into_s3_and_presigns_it(s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    async with archiving(s3, bucket) as manager:
        done = await finished(manager, "alice")
        result = done.result
        assert result is not None and not done.content_pending
        assert result.archive_uri == f"s3://{bucket}/videos/alice/{done.id}.mp4"
        assert result.archive_byte_size == len(CONTENT)
        assert result.archive_sha256 == hashlib.sha256(CONTENT).hexdigest()
        assert result.local_path is None
        assert s3.keys(bucket) == [f"videos/alice/{done.id}.mp4"]
        assert s3.unfinished_uploads(bucket) == []

        url = await manager.content_url(done.id, user_id="alice", expires_in=timedelta(minutes=5))
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
        async with httpx2.AsyncClient() as plain:
            fetched = await plain.get(url)
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == result.archive_sha256

        with pytest.raises(TaskNotFoundError):
            await manager.content_url(done.id, user_id="mallory")
        with pytest.raises(TaskNotFoundError):
            await manager.archive_url(done.id, user_id="mallory")

        async with manager.open_content(done.id, user_id="alice") as stream:
            assert stream.content_length == len(CONTENT)
            read = b"".join([chunk async for chunk in stream.aiter_bytes()])
        assert read == CONTENT

        assert await manager.cleanup(older_than=timedelta(0)) == 1
        assert s3.keys(bucket) == []


@asynccontextmanager
async def serving_router(manager: TaskManager) -> AsyncIterator[str]:
    """The router over ``manager``, served by uvicorn on 127.0.0.1; yields the content URL base."""
    app = FastAPI()
    app.include_router(create_router(manager, current_user=user_from_header))
    server, sock = make_server(app), bind()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
                    await anyio.sleep(0.005)
            try:
                yield f"{base_url(sock)}/api/video/tasks"
            finally:
                server.should_exit = True
    finally:
        sock.close()


async def test_the_content_route_redirects_to_a_presigned_url(s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    async with archiving(s3, bucket) as manager:
        done = await finished(manager, "alice")
        async with serving_router(manager) as tasks, httpx2.AsyncClient(timeout=30) as client:
            path = f"{tasks}/{done.id}/content"
            redirect = await client.get(path, headers={"x-user": "alice"})
            stranger = await client.get(path, headers={"x-user": "mallory"})
            followed = await client.get(redirect.headers["location"])
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(f"{s3.endpoint}/{bucket}/videos/alice/")
    assert stranger.status_code == 404
    assert "location" not in stranger.headers
    assert followed.status_code == 200 and followed.content == CONTENT


async def test_a_local_archive_is_streamed_by_the_route_with_ranges(tmp_path: Path) -> None:
    simulator = create_simulator_app(
        render_seconds=0.2, queue_seconds=0, poll_after_ms=50, content=CONTENT
    )
    with serve_in_thread(simulator) as url:
        provider = OpenAIVideosProvider(
            api_key="sk-archive-tests",
            base_url=f"{url}/v1",
            capabilities=DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0}),
        )
        manager = TaskManager(
            providers={"sim": provider}, policy=POLICY, archive=f"file://{tmp_path}"
        )
        async with manager:
            done = await finished(manager, "alice")
            async with serving_router(manager) as tasks, httpx2.AsyncClient(timeout=30) as client:
                path = f"{tasks}/{done.id}/content"
                ranged = await client.get(
                    path, headers={"x-user": "alice", "range": "bytes=100-199"}
                )
                stranger = await client.get(path, headers={"x-user": "mallory"})
    assert ranged.status_code == 206
    assert ranged.content == CONTENT[100:200]
    assert stranger.status_code == 404


async def test_a_bucket_that_does_not_exist_is_refused_at_start(s3: LocalS3) -> None:
    simulator = create_simulator_app(render_seconds=0, queue_seconds=0)
    with pytest.raises(InvalidArchiveError, match="the bucket 'no-such-bucket' does not exist"):
        async with archiving(s3, "no-such-bucket", simulator):
            pass
    assert simulator.state.jobs == {}, "nothing was asked of the provider"


async def test_missing_credentials_are_named_at_start_never_their_values(
    s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.create_bucket()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # without keys obstore asks the instance metadata service: one that is not there, on any
    # machine the tests run on
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(InvalidArchiveError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        async with archiving(s3, bucket):
            pass
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "only-the-id")
    with pytest.raises(InvalidArchiveError, match="AWS_SECRET_ACCESS_KEY is not set"):
        async with archiving(s3, bucket):
            pass
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    with pytest.raises(InvalidArchiveError, match="AWS_ACCESS_KEY_ID is not set") as caught:
        async with archiving(s3, bucket):
            pass
    assert CANARY not in str(caught.value)
    assert CANARY not in scrub(f"key={CANARY}"), "the secret is known to the scrubber from now on"
