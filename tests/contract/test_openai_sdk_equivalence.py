"""The same create through the official ``openai`` package and through our adapter, compared.

Both talk to a recording ASGI app served by uvicorn on 127.0.0.1 (an ephemeral port) inside the
test's own event loop. ``openai`` is a test dependency only; the library never imports it.

Found on the way (openai 3.x): the SDK sends *every* create as ``multipart/form-data``, even with
no file, and refuses an ``input_reference={"image_url": ...}`` object outright. The adapter sends
JSON when there is no file, as PROVIDERS.md describes; the contract accepts both encodings, so the
fields are compared and the content types are each checked against the contract's two.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import openai
import pytest
import uvicorn

from sora_tasks._models import ImageData
from sora_tasks.providers import OpenAIVideosProvider, SubmitRequest
from tests.factories import submit_request, video_object
from tests.forms import parse_form
from tests.images import make_image

pytestmark = [
    pytest.mark.anyio,
    # the SDK marks the whole Videos API deprecated (shutdown announced for 2026-09-24)
    pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning"),
]

KEY = "sk-equivalence-test"
CONTRACT_TYPES = ("application/json", "multipart/form-data")
VIDEO = video_object(id="video_eq", seconds="8")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def fields(self) -> dict[str, object]:
        """Field name → text, or (filename, content type, bytes) for a file part."""
        if self.media_type == "application/json":
            return dict(json.loads(self.body))
        form = parse_form(self.headers["content-type"], self.body)
        return {
            name: part.text
            if part.filename is None
            else (part.filename, part.content_type, part.value)
            for name, part in form.items()
        }


class Recorder:
    """A tiny ASGI app that keeps every request and answers with one Video object."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.started = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
        payload = json.dumps(VIDEO).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # listening before uvicorn starts lets clients queue in the backlog: no start-up race
    sock.listen()
    config = uvicorn.Config(
        recorder, lifespan="on", log_config=None, log_level="warning", http="h11"
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            await recorder.started.wait()
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", recorder
            server.should_exit = True
    finally:
        sock.close()


def request(**overrides: Any) -> SubmitRequest:
    return submit_request(**{"seconds": 8, "idempotency_key": "sub_equivalence", **overrides})


async def send_both(image: ImageData | None) -> tuple[Recorded, Recorded]:
    async with recording_server() as (base_url, recorder):
        sdk = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)
        try:
            if image is None:
                await sdk.videos.create(
                    prompt="a calico cat playing piano",
                    model="sora-2",
                    seconds="8",
                    size="720x1280",
                )
            else:
                await sdk.videos.create(
                    prompt="a calico cat playing piano",
                    model="sora-2",
                    seconds="8",
                    size="720x1280",
                    input_reference=(image.filename, image.data, image.mime_type),
                )
        finally:
            await sdk.close()
        adapter = OpenAIVideosProvider(KEY, base_url=base_url, max_retries=0)
        try:
            job = await adapter.submit(request(image=image))
        finally:
            await adapter.aclose()
        assert job.external_id == "video_eq"
    assert len(recorder.requests) == 2
    return recorder.requests[0], recorder.requests[1]


def assert_same_call(theirs: Recorded, ours: Recorded) -> None:
    assert (ours.method, ours.path) == (theirs.method, theirs.path) == ("POST", "/v1/videos")
    assert ours.headers["authorization"] == theirs.headers["authorization"] == f"Bearer {KEY}"
    assert ours.media_type in CONTRACT_TYPES
    assert theirs.media_type in CONTRACT_TYPES
    assert ours.fields() == theirs.fields()
    # ours adds what the SDK lacks: a key that lets a server drop a duplicate create
    assert ours.headers["idempotency-key"] == "sub_equivalence"
    assert "idempotency-key" not in theirs.headers


async def test_create_without_an_image_matches_the_sdk() -> None:
    theirs, ours = await send_both(None)
    assert_same_call(theirs, ours)
    assert ours.media_type == "application/json"
    assert theirs.media_type == "multipart/form-data", "the SDK changed its encoding: revisit"


async def test_create_with_an_image_matches_the_sdk() -> None:
    data = make_image(720, 1280)
    image = ImageData(data, "image/png", 720, 1280, "")
    theirs, ours = await send_both(image)
    assert_same_call(theirs, ours)
    assert ours.media_type == theirs.media_type == "multipart/form-data"
    assert ours.fields()["input_reference"] == ("reference.png", "image/png", data)
