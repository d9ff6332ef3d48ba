"""The same predictions through the official ``replicate`` package and through our adapter,
compared request by request: method, path, the headers that matter and the JSON body.

Both talk to a recording ASGI app served on 127.0.0.1. ``replicate`` (1.x, built on httpx) is a
test dependency only; the library never imports it. Ours adds ``Cancel-After`` when the task has
a deadline, which that client cannot send.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from replicate.client import Client

from sora_tasks._models import ImageData
from sora_tasks.providers import ReplicateProvider, SubmitRequest
from sora_tasks.testing import serve_in_thread
from tests.images import make_image
from tests.recording import Recorded, Recorder

pytestmark = pytest.mark.anyio

TOKEN = "r8_equivalence-test"
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
HOOK = "https://hooks.example.test/replicate"
MATTERS = ("authorization", "content-type", "prefer", "cancel-after")


def prediction(request: Recorded) -> tuple[int, object]:
    """A prediction (``canceled`` for a cancel), as Replicate answers a create, read or cancel."""
    status = "canceled" if request.path.endswith("/cancel") else "starting"
    return 201, {
        "id": "eqprediction",
        "model": "google/veo-3.1",
        "version": "hidden",
        "input": {},
        "output": None,
        "error": None,
        "logs": "",
        "status": status,
        "created_at": "2026-11-30T05:00:00Z",
        "data_removed": False,
        "urls": {"get": "x", "cancel": "y", "web": "z"},
    }


@asynccontextmanager
async def clients(
    **ours: Any,
) -> AsyncIterator[tuple[Client, ReplicateProvider, Recorder]]:
    recorder = Recorder(prediction)
    with serve_in_thread(recorder) as url:
        sdk = Client(api_token=TOKEN, base_url=url)
        adapter = ReplicateProvider(TOKEN, base_url=f"{url}/v1", max_retries=0, **ours)
        try:
            yield sdk, adapter, recorder
        finally:
            await adapter.aclose()
            await sdk._async_client.aclose()


def request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_eq",
        "idempotency_key": "sub_eq",
        "prompt": "a calico cat playing piano",
        "model": "google/veo-3.1",
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return SubmitRequest(**fields)


def assert_same(theirs: Recorded, ours: Recorded) -> None:
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert ours.matters(MATTERS) == theirs.matters(MATTERS)
    assert ours.json() == theirs.json()


async def test_an_official_model_create_with_an_image_and_a_webhook_matches_the_sdk() -> None:
    data = make_image(64, 36)
    image = ImageData(data, "image/png", 64, 36, "")
    data_uri = "data:image/png;base64," + base64.b64encode(data).decode()
    async with clients(webhook_url=HOOK, webhook_events=("start", "completed")) as (
        sdk,
        adapter,
        recorder,
    ):
        await sdk.models.predictions.async_create(
            model="google/veo-3.1",
            input={
                "prompt": "a calico cat playing piano",
                "duration": 8,
                "aspect_ratio": "16:9",
                "resolution": "720p",
                "image": data_uri,
                "seed": 3,
            },
            webhook=HOOK,
            webhook_events_filter=["start", "completed"],
        )
        job = await adapter.submit(request(image=image, seed=3))
    theirs, ours = recorder.requests
    assert_same(theirs, ours)
    assert ours.path == "/v1/models/google/veo-3.1/predictions"
    assert job.external_id == "eqprediction"


async def test_a_version_create_matches_the_sdk() -> None:
    async with clients() as (sdk, adapter, recorder):
        await sdk.predictions.async_create(
            version=VERSION, input={"prompt": "a calico cat playing piano", "fps": 24}
        )
        await adapter.submit(request(model=f"acme/video:{VERSION}", provider_options={"fps": 24}))
    theirs, ours = recorder.requests
    assert_same(theirs, ours)
    assert ours.path == "/v1/predictions"


async def test_get_and_cancel_match_the_sdk() -> None:
    async with clients() as (sdk, adapter, recorder):
        await sdk.predictions.async_get("eqprediction")
        await adapter.status("eqprediction")
        await sdk.predictions.async_cancel("eqprediction")
        await adapter.cancel("eqprediction")
    get_theirs, get_ours, cancel_theirs, cancel_ours = recorder.requests
    assert_same(get_theirs, get_ours)
    assert_same(cancel_theirs, cancel_ours)
    assert cancel_ours.path == "/v1/predictions/eqprediction/cancel"


async def test_ours_adds_cancel_after_for_a_deadline() -> None:
    async with clients() as (sdk, adapter, recorder):
        await sdk.models.predictions.async_create(
            model="google/veo-3.1",
            input={
                "prompt": "a calico cat playing piano",
                "duration": 8,
                "aspect_ratio": "16:9",
                "resolution": "720p",
            },
        )
        deadline = datetime.now(UTC) + timedelta(minutes=10)
        await adapter.submit(request(deadline_at=deadline))
    theirs, ours = recorder.requests
    assert ours.json() == theirs.json()
    assert "cancel-after" not in theirs.headers
    assert ours.headers["cancel-after"] in ("599s", "600s")
    assert "prefer" not in ours.headers  # the engine polls; it never holds a request open
