"""A pinned job answers in each shape exactly as its Pin says, seen from a raw client."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from sora_tasks.testing import Pin, create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
RELAY = "/relay/v1/videos"


async def test_the_openai_shape_answers_with_the_pin(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=60)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        app.state.pin(video_id, Pin("in_progress", word="in_review", poll_after=2.5))
        unknown = await client.get(f"/v1/videos/{video_id}")
        failure = Pin("failed", error_code="quota_exceeded", error_message="out of credits")
        app.state.pin(video_id, failure)
        failed = (await client.get(f"/v1/videos/{video_id}")).json()
        app.state.pin(video_id, Pin("cancelled"))
        cancelled = (await client.get(f"/v1/videos/{video_id}")).json()
        app.state.pin(video_id, Pin("completed", expired=True))
        expired = await client.get(f"/v1/videos/{video_id}/content")
        app.state.pin(video_id, None)
        released = (await client.get(f"/v1/videos/{video_id}")).json()
    assert unknown.json()["status"] == "in_review"
    assert "progress" not in unknown.json()
    assert unknown.headers["openai-poll-after-ms"] == "2500"
    assert failed["error"] == {"code": "quota_exceeded", "message": "out of credits"}
    assert cancelled["status"] == "cancelled"
    assert (expired.status_code, expired.json()["error"]["code"]) == (404, "expired")
    assert (released["status"], released["progress"]) == ("in_progress", 0)


async def test_the_relay_shape_answers_with_the_pin(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=60, relay_path=RELAY)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        app.state.pin(task_id, Pin("in_progress", progress=37, poll_after=1))
        rendering = await client.get(f"{RELAY}/{task_id}")
        app.state.pin(task_id, Pin("failed", error_code="nsfw", error_message="refused"))
        failed = (await client.get(f"{RELAY}/{task_id}")).json()
        app.state.pin(task_id, Pin("cancelled"))
        cancelled = (await client.get(f"{RELAY}/{task_id}")).json()
        app.state.pin(task_id, Pin("completed", empty=True))
        empty = (await client.get(f"{RELAY}/{task_id}")).json()
        download = await client.get(f"{RELAY}/{task_id}/download")
    assert (rendering.json()["state"], rendering.json()["progress"]) == ("processing", "37%")
    assert rendering.headers["openai-poll-after-ms"] == "1000"
    assert (failed["state"], failed["error"]) == ("failure", None)
    assert (failed["error_code"], failed["error_message"]) == ("nsfw", "refused")
    assert cancelled["state"] == "cancelled"
    assert (empty["state"], empty["video_url"]) == ("success", None)
    assert download.status_code == 404
