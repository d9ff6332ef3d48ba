"""The simulator's per-job tally and its key-echoing faults, seen by a raw client over a socket."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import anyio
import httpx2
import pytest

from sora_tasks.testing import Faults, create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
KEY = "sk-canary-tally"
AUTH = {"authorization": f"Bearer {KEY}"}


async def test_creates_are_counted_per_prompt_and_duplicates_named(serve: Serve) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        for prompt in ("cat", "dog", "cat"):
            await client.post("/v1/videos", json={"prompt": prompt})
    assert app.state.tally.creates == {"cat": 2, "dog": 1}
    assert app.state.tally.duplicate_creates() == {"cat": 2}


async def test_concurrent_status_requests_for_one_job_raise_its_peak(serve: Serve) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        first = (await client.post("/v1/videos", json={"prompt": "one"})).json()["id"]
        second = (await client.post("/v1/videos", json={"prompt": "two"})).json()["id"]
        app.state.faults.set("retrieve", Faults(slow_responses=3, delay=0.3))
        async with anyio.create_task_group() as group:
            for video_id in (first, first, second):
                group.start_soon(client.get, f"/v1/videos/{video_id}")
        await client.get(f"/v1/videos/{second}")
    tally = app.state.tally
    assert tally.peak_in_flight[("retrieve", first)] == 2
    assert tally.peak_in_flight[("retrieve", second)] == 1
    assert tally.max_in_flight("retrieve") == 2
    assert tally.faults[("retrieve", first, "slow_responses")] == 2


async def test_a_client_that_gives_up_on_a_slow_answer_is_no_longer_in_flight(
    serve: Serve,
) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        app.state.faults.set("retrieve", Faults(slow_responses=1, delay=2))
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(f"/v1/videos/{video_id}", timeout=0.2)
        with anyio.fail_after(1.5):  # well before the abandoned answer's 2 s are up
            # the count changes in the server's thread, which cannot set an anyio.Event here
            while app.state.tally.in_flight("retrieve", video_id):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await client.get(f"/v1/videos/{video_id}")
    assert app.state.tally.peak_in_flight[("retrieve", video_id)] == 1


async def test_echoed_keys_quote_the_credential_and_are_filed_under_the_prompt(
    serve: Serve,
) -> None:
    app = create_simulator_app(api_key=KEY, faults={"create": Faults(echoed_keys=1)})
    async with httpx2.AsyncClient(base_url=serve(app), headers=AUTH) as client:
        echoed = await client.post("/v1/videos", json={"prompt": "cat"})
        normal = await client.post("/v1/videos", json={"prompt": "cat"})
    assert (echoed.status_code, normal.status_code) == (400, 200)
    error = echoed.json()["error"]
    assert KEY in error["code"] and KEY in error["type"] and KEY in error["message"]
    assert app.state.tally.faults[("create", "cat", "echoed_keys")] == 1
    assert app.state.tally.creates == {"cat": 1}


async def test_failed_jobs_can_quote_the_key_of_the_status_request(serve: Serve) -> None:
    app = create_simulator_app(
        api_key=KEY,
        queue_seconds=0,
        render_seconds=0,
        fail_prompts=["forbidden"],
        echo_key_in_failures=True,
    )
    async with httpx2.AsyncClient(base_url=serve(app), headers=AUTH) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "forbidden"})).json()["id"]
        failure = (await client.get(f"/v1/videos/{video_id}")).json()["error"]
    assert failure["code"] == f"moderation_blocked:{KEY}"
    assert KEY in failure["message"]


async def test_unique_content_ends_each_body_with_its_job_id(serve: Serve) -> None:
    base = b"\x00\x01video" * 1000
    app = create_simulator_app(queue_seconds=0, render_seconds=0, content=base, unique_content=True)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        ids = [(await client.post("/v1/videos", json={"prompt": p})).json()["id"] for p in "ab"]
        bodies = [(await client.get(f"/v1/videos/{i}/content")).content for i in ids]
    assert bodies == [base + ids[0].encode(), base + ids[1].encode()]
    assert len({hashlib.sha256(body).hexdigest() for body in bodies}) == 2
