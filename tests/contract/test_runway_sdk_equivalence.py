"""The same tasks through the official ``runwayml`` package and through our adapter, compared
request by request: method, path, the headers that matter and the JSON body.

Both talk to a recording ASGI app served on 127.0.0.1. ``runwayml`` (5.x, built on httpx) is a
test dependency only; the library never imports it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from runwayml import AsyncRunwayML

from sora_tasks._models import ImageData
from sora_tasks.providers import RunwayProvider, SubmitRequest
from sora_tasks.testing import serve_in_thread
from tests.images import make_image

pytestmark = pytest.mark.anyio

SECRET = "key_equivalence-test"
MATTERS = ("authorization", "content-type", "x-runway-version")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def matters(self) -> dict[str, str]:
        # the SDK names a JSON content type even on a DELETE without a body; nothing reads it
        names = MATTERS if self.body else tuple(n for n in MATTERS if n != "content-type")
        return {name: self.headers[name] for name in names if name in self.headers}

    def json(self) -> object:
        return json.loads(self.body) if self.body else None


class Recorder:
    """Keeps every request; answers a create with an id, a read with a task, a delete with 204."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
        if scope["method"] == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        answer: dict[str, object] = {"id": "eqtask"}
        if scope["method"] == "GET":
            answer = {
                "id": "eqtask",
                "status": "RUNNING",
                "progress": 0.25,
                "createdAt": "2026-11-30T05:00:00.000Z",
                "estimatedCost": {"credits": 40},
            }
        payload = json.dumps(answer).encode()
        headers_out = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})


@asynccontextmanager
async def clients() -> AsyncIterator[tuple[AsyncRunwayML, RunwayProvider, Recorder]]:
    recorder = Recorder()
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
    assert ours.matters() == theirs.matters()
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
