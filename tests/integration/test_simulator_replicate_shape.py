"""The simulator's Replicate shape on the wire, read with a plain HTTP client: what it answers
where the adapter's tests do not look (problem details, paging, header checks, files)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from sora_tasks.testing import REPLICATE_WEBHOOK_SECRET, create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
KEY = "r8_shape-test"
AUTH = {"authorization": f"Bearer {KEY}"}


def create_body(prompt: str = "a calico cat") -> dict[str, object]:
    return {"input": {"prompt": prompt, "duration": 8}}


async def test_errors_are_problem_details(serve: Serve) -> None:
    url = serve(create_simulator_app(api_key=KEY)) + "/replicate/v1"
    async with httpx2.AsyncClient() as client:
        unauthenticated = await client.get(f"{url}/predictions/nope")
        missing = await client.get(f"{url}/predictions/nope", headers=AUTH)
        invalid = await client.post(
            f"{url}/models/google/veo-3.1/predictions", json={"inptu": {}}, headers=AUTH
        )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    assert unauthenticated.json()["title"] == "Unauthenticated"
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert invalid.status_code == 422
    assert "inptu" in invalid.json()["invalid_fields"][0]["description"]


async def test_a_create_answers_201_with_urls_and_a_deadline(serve: Serve) -> None:
    url = serve(create_simulator_app(api_key=KEY)) + "/replicate/v1"
    async with httpx2.AsyncClient() as client:
        created = await client.post(
            f"{url}/models/google/veo-3.1/predictions",
            json=create_body(),
            headers={**AUTH, "cancel-after": "1h30m"},
        )
        refused = await client.post(
            f"{url}/models/google/veo-3.1/predictions",
            json=create_body(),
            headers={**AUTH, "cancel-after": "soon"},
        )
    assert created.status_code == 201
    prediction = created.json()
    assert prediction["status"] == "starting" and prediction["model"] == "google/veo-3.1"
    assert prediction["urls"]["cancel"].endswith(f"/predictions/{prediction['id']}/cancel")
    assert prediction["deadline"] is not None
    assert refused.status_code == 400 and "soon" in refused.json()["detail"]


async def test_listing_pages_newest_first(serve: Serve) -> None:
    url = serve(create_simulator_app(api_key=KEY)) + "/replicate/v1"
    async with httpx2.AsyncClient() as client:
        ids = []
        for n in range(101):
            created = await client.post(
                f"{url}/models/acme/model/predictions", json=create_body(f"p{n}"), headers=AUTH
            )
            ids.append(created.json()["id"])
        first = (await client.get(f"{url}/predictions", headers=AUTH)).json()
        second = (await client.get(first["next"], headers=AUTH)).json()
    assert [p["id"] for p in first["results"]] == ids[::-1][:100]
    assert [p["id"] for p in second["results"]] == [ids[0]] and second["next"] is None
    assert "logs" not in first["results"][0]


async def test_outputs_are_files_until_the_ttl(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY, clock=clock, queue_seconds=0, render_seconds=1, asset_ttl_seconds=60
    )
    url = serve(app)
    async with httpx2.AsyncClient() as client:
        created = await client.post(
            f"{url}/replicate/v1/models/acme/model/predictions", json=create_body(), headers=AUTH
        )
        prediction_id = created.json()["id"]
        early = await client.get(f"{url}/replicate/files/{prediction_id}/output.mp4")
        clock.advance(2)
        done = await client.get(f"{url}/replicate/v1/predictions/{prediction_id}", headers=AUTH)
        served = await client.get(done.json()["output"])
        clock.advance(60)
        gone = await client.get(done.json()["output"])
        removed = await client.get(f"{url}/replicate/v1/predictions/{prediction_id}", headers=AUTH)
        secret = await client.get(f"{url}/replicate/v1/webhooks/default/secret", headers=AUTH)
    assert early.status_code == 404
    assert done.json()["metrics"]["predict_time"] == 1
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert gone.status_code == 404
    assert removed.json()["data_removed"] is True and removed.json()["output"] is None
    assert secret.json() == {"key": REPLICATE_WEBHOOK_SECRET}
