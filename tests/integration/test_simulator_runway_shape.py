"""The simulator's Runway shape on the wire, read with a plain HTTP client: what it answers where
the adapter's tests do not look (the version header, body checks, signed files, DELETE)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
KEY = "key_shape-test"
HEADERS = {"authorization": f"Bearer {KEY}", "x-runway-version": "2024-11-06"}


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "veo3.1", "promptText": "a red fox", "ratio": "1280:720", **overrides}


async def test_every_request_needs_the_key_and_the_version(serve: Serve) -> None:
    url = serve(create_simulator_app(api_key=KEY)) + "/runway/v1"
    async with httpx2.AsyncClient() as client:
        anonymous = await client.post(f"{url}/text_to_video", json=body())
        unversioned = await client.post(
            f"{url}/text_to_video", json=body(), headers={"authorization": f"Bearer {KEY}"}
        )
        other = await client.get(
            f"{url}/tasks/nope", headers={**HEADERS, "x-runway-version": "2023-01-01"}
        )
        missing = await client.get(f"{url}/tasks/nope", headers=HEADERS)
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "Invalid API key"}
    assert unversioned.status_code == 400 and "X-Runway-Version" in unversioned.json()["error"]
    assert other.status_code == 400 and "2023-01-01" in other.json()["error"]
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("endpoint", "fields", "where"),
    [
        ("text_to_video", {"seed": 1, "webhook": "https://x.test"}, "webhook"),
        ("text_to_video", {"promptImage": "https://i.test/a.png"}, "promptImage"),
        ("text_to_video", {"ratio": "16:9"}, "ratio"),
        ("text_to_video", {"duration": 11}, "duration"),
        ("text_to_video", {"promptText": "x" * 1001}, "promptText"),
        ("image_to_video", {}, "promptImage"),
        ("image_to_video", {"promptImage": "http://i.test/a.png"}, "promptImage"),
        ("image_to_video", {"promptImage": "data:image/png;base64,%%%"}, "promptImage"),
        (
            "image_to_video",
            {"promptImage": "data:image/png;base64," + base64.b64encode(bytes(3_750_001)).decode()},
            "promptImage",
        ),
        (
            "image_to_video",
            {"promptImage": [{"uri": "https://i.test/l.png", "position": "last"}]},
            "promptImage",
        ),
    ],
)
async def test_a_body_runway_would_refuse_is_a_400_naming_the_field(
    serve: Serve, endpoint: str, fields: dict[str, Any], where: str
) -> None:
    app = create_simulator_app(api_key=KEY)
    url = serve(app) + "/runway/v1"
    async with httpx2.AsyncClient() as client:
        answer = await client.post(f"{url}/{endpoint}", json=body(**fields), headers=HEADERS)
    assert answer.status_code == 400
    assert answer.json()["issues"][0]["path"][0] == where
    assert app.state.creates == 0


async def test_a_task_reads_its_states_and_its_output_url_is_signed(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY, clock=clock, queue_seconds=1, render_seconds=4, asset_ttl_seconds=60
    )
    url = serve(app) + "/runway/v1"
    async with httpx2.AsyncClient() as client:
        created = await client.post(f"{url}/text_to_video", json=body(), headers=HEADERS)
        task_id = created.json()["id"]
        assert created.status_code == 200 and set(created.json()) == {"id"}
        pending = (await client.get(f"{url}/tasks/{task_id}", headers=HEADERS)).json()
        clock.advance(3)
        running = (await client.get(f"{url}/tasks/{task_id}", headers=HEADERS)).json()
        early = await client.get(
            url.replace("/v1", "/files") + f"/{task_id}/output.mp4", headers=HEADERS
        )
        clock.advance(3)
        done = (await client.get(f"{url}/tasks/{task_id}", headers=HEADERS)).json()
        [output] = done["output"]
        fetched = await client.get(output)
        forged = await client.get(output.replace("sig=", "sig=0"))
        clock.advance(61)
        stale = await client.get(output)
        deleted = await client.delete(f"{url}/tasks/{task_id}", headers=HEADERS)
        gone = await client.get(f"{url}/tasks/{task_id}", headers=HEADERS)
    assert pending["status"] == "PENDING" and "estimatedCost" in pending
    assert running["status"] == "RUNNING" and running["progress"] == 0.5
    assert early.status_code == 404
    assert done["status"] == "SUCCEEDED" and "cost" in done
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "video/mp4"
    assert forged.status_code == 403 and stale.status_code == 403
    assert deleted.status_code == 204 and deleted.content == b""
    assert gone.status_code == 404
