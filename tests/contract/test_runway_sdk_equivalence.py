"""The same tasks through the official ``runwayml`` package and through our adapter, compared
request by request: method, path, the headers that matter and the JSON body.

Both talk to a recording ASGI app served on 127.0.0.1. ``runwayml`` (5.x, built on httpx) is a
test dependency only; the library never imports it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from runwayml import AsyncRunwayML

from sora_tasks._models import ImageData
from sora_tasks.providers import RunwayProvider, SubmitRequest
from sora_tasks.testing import serve_in_thread
from tests.images import make_image
from tests.recording import Recorded, Recorder

pytestmark = pytest.mark.anyio

SECRET = "key_equivalence-test"
MATTERS = ("authorization", "content-type", "x-runway-version")


def task(request: Recorded) -> tuple[int, object]:
    """Runway's answers: an id to a create, a task to a read, nothing (204) to a delete."""
    if request.method == "DELETE":
        return 204, None
    if request.method == "GET":
        return 200, {
            "id": "eqtask",
            "status": "RUNNING",
            "progress": 0.25,
            "createdAt": "2026-11-30T05:00:00.000Z",
            "estimatedCost": {"credits": 40},
        }
    return 200, {"id": "eqtask"}


@asynccontextmanager
async def clients() -> AsyncIterator[tuple[AsyncRunwayML, RunwayProvider, Recorder]]:
    recorder = Recorder(task)
    with serve_in_thread(recorder) as url:
        sdk = AsyncRunwayML(api_key=SECRET, base_url=url, max_retries=0)
        adapter = RunwayProvider(SECRET, base_url=f"{url}/v1", max_retries=0)
        try:
            yield sdk, adapter, recorder
        finally:
            await adapter.aclose()
            await sdk.close()


def request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_eq",
        "idempotency_key": "sub_eq",
        "prompt": "a red fox in snow",
        "model": "veo3.1",
        "size": "1920x1080",
        "seconds": 6,
        **overrides,
    }
    return SubmitRequest(**fields)


def assert_same(theirs: Recorded, ours: Recorded) -> None:
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert ours.matters(MATTERS) == theirs.matters(MATTERS)
    assert ours.json() == theirs.json()


async def test_a_text_to_video_create_matches_the_sdk() -> None:
    async with clients() as (sdk, adapter, recorder):
        created = await sdk.text_to_video.create(
            model="veo3.1",
            prompt_text="a red fox in snow",
            ratio="1920:1080",
            duration=6,
            seed=11,
            audio=False,
            negative_prompt="fog",
        )
        job = await adapter.submit(request(seed=11, audio=False, negative_prompt="fog"))
    theirs, ours = recorder.requests
    assert_same(theirs, ours)
    assert ours.path == "/v1/text_to_video"
    assert job.external_id == created.id == "eqtask"


async def test_an_image_to_video_create_with_first_and_last_frames_matches_the_sdk() -> None:
    data = make_image(64, 36)
    image = ImageData(data, "image/png", 64, 36, "")
    data_uri = "data:image/png;base64," + base64.b64encode(data).decode()
    async with clients() as (sdk, adapter, recorder):
        await sdk.image_to_video.create(
            model="veo3.1_fast",
            prompt_image=[
                {"uri": data_uri, "position": "first"},
                {"uri": "https://images.test/last.png", "position": "last"},
            ],
            prompt_text="a red fox in snow",
            ratio="720:1280",
            duration=4,
        )
        await adapter.submit(
            request(
                model="veo3.1_fast",
                size="720x1280",
                seconds=4,
                image=image,
                last_frame="https://images.test/last.png",
            )
        )
    theirs, ours = recorder.requests
    assert_same(theirs, ours)
    assert ours.path == "/v1/image_to_video"


async def test_a_gen4_turbo_create_with_content_moderation_matches_the_sdk() -> None:
    async with clients() as (sdk, adapter, recorder):
        await sdk.image_to_video.create(
            model="gen4_turbo",
            prompt_image="https://images.test/first.png",
            prompt_text="a red fox in snow",
            ratio="960:960",
            duration=5,
            content_moderation={"public_figure_threshold": "low"},
        )
        await adapter.submit(
            request(
                model="gen4_turbo",
                size="960x960",
                seconds=5,
                image_url="https://images.test/first.png",
                provider_options={"contentModeration": {"publicFigureThreshold": "low"}},
            )
        )
    theirs, ours = recorder.requests
    assert_same(theirs, ours)


async def test_retrieve_and_delete_match_the_sdk() -> None:
    async with clients() as (sdk, adapter, recorder):
        theirs_task = await sdk.tasks.retrieve("eqtask")
        job = await adapter.status("eqtask")
        await sdk.tasks.delete("eqtask")
        await adapter.cancel("eqtask")
    get_theirs, get_ours, delete_theirs, delete_ours = recorder.requests
    assert_same(get_theirs, get_ours)
    assert_same(delete_theirs, delete_ours)
    assert delete_ours.path == "/v1/tasks/eqtask" and delete_ours.method == "DELETE"
    assert theirs_task.status == "RUNNING" and job.progress == 25
