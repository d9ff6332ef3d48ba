"""Every fault kind the simulator injects, seen from a raw client over a real socket."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator import Faults
from sora_tasks.testing._simulator_asgi import ASGIApp
from sora_tasks.testing._simulator_config import synthetic_block

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
RELAY = "/relay/v1/videos"


def synthetic_sha256(size: int) -> str:
    block, digest = synthetic_block(), hashlib.sha256()
    full, rest = divmod(size, len(block))
    for _ in range(full):
        digest.update(block)
    digest.update(block[:rest])
    return digest.hexdigest()


async def read_into(response: httpx2.Response, chunks: list[bytes]) -> None:
    async for chunk in response.aiter_raw():
        chunks.append(chunk)


async def test_rate_limits_answer_429_with_retry_after_then_normally(serve: Serve) -> None:
    app = create_simulator_app(faults={"retrieve": Faults(rate_limits=2, retry_after=3)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        answers = [await client.get(f"/v1/videos/{video_id}") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "3"
    assert answers[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert app.state.faults.fired[("retrieve", "rate_limits")] == 2
    assert [r.fault for r in app.state.records("retrieve")] == ["rate_limits", "rate_limits", None]


async def test_server_errors_on_create_create_nothing(serve: Serve) -> None:
    app = create_simulator_app(faults={"create": Faults(server_errors=2)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        answers = [await client.post("/v1/videos", json={"prompt": "cat"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json()["error"]["type"] == "server_error"
    assert app.state.creates == 1
    assert app.state.hits["create"] == 3


async def test_the_wildcard_covers_routes_without_an_entry_of_their_own(serve: Serve) -> None:
    app = create_simulator_app(faults={"*": Faults(server_errors=1), "list": Faults()})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        listed = await client.get("/v1/videos")
        missing = await client.get("/v1/videos/video_0")
        again = await client.get("/v1/videos/video_0")
    assert [listed.status_code, missing.status_code, again.status_code] == [200, 500, 404]
    assert app.state.faults.fired[("*", "server_errors")] == 1


async def test_slow_answers_outlast_a_short_client_timeout(serve: Serve) -> None:
    app = create_simulator_app(faults={"list": Faults(slow_responses=2, delay=0.5)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get("/v1/videos", timeout=0.1)
        started = time.monotonic()
        slow = await client.get("/v1/videos", timeout=5)
        slow_seconds = time.monotonic() - started
        started = time.monotonic()
        fast = await client.get("/v1/videos", timeout=5)
        fast_seconds = time.monotonic() - started
    assert (slow.status_code, fast.status_code) == (200, 200)
    assert slow_seconds >= 0.5
    assert fast_seconds < 0.5
    assert [r.fault for r in app.state.records("list")] == [
        "slow_responses",
        "slow_responses",
        None,
    ]


async def test_a_truncated_download_announces_the_full_length_and_stops_half_way(
    serve: Serve,
) -> None:
    size = 4 * 1024 * 1024 + 3
    app = create_simulator_app(
        queue_seconds=0,
        render_seconds=0,
        content_size=size,
        faults={"content": Faults(truncated_bodies=1)},
    )
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        async with client.stream("GET", f"/v1/videos/{video_id}/content") as response:
            declared = int(response.headers["content-length"])
            chunks: list[bytes] = []
            with pytest.raises(httpx2.RemoteProtocolError):
                await read_into(response, chunks)
        whole = await client.get(f"/v1/videos/{video_id}/content")
    assert declared == size
    assert sum(map(len, chunks)) == size // 2
    assert hashlib.sha256(whole.content).hexdigest() == synthetic_sha256(size)


async def test_a_dropped_create_makes_the_job_but_never_answers(serve: Serve) -> None:
    app = create_simulator_app(faults={"create": Faults(dropped_responses=1)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post("/v1/videos", json={"prompt": "lost answer"})
        assert app.state.creates == 1
        listed = (await client.get("/v1/videos")).json()["data"]
        answered = await client.post("/v1/videos", json={"prompt": "second"})
    assert [v["prompt"] for v in listed] == ["lost answer"]
    assert answered.status_code == 200
    assert app.state.creates == 2


async def test_relay_faults_answer_in_the_relay_shape(serve: Serve) -> None:
    app = create_simulator_app(
        queue_seconds=0,
        render_seconds=0,
        faults={
            "relay_status": Faults(rate_limits=1, retry_after=2, server_errors=1),
            "files": Faults(truncated_bodies=1),
        },
    )
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        limited = await client.get(f"{RELAY}/{task_id}")
        failed = await client.get(f"{RELAY}/{task_id}")
        status = await client.get(f"{RELAY}/{task_id}")
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get(status.json()["video_url"], follow_redirects=True)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert isinstance(limited.json()["error"], str)
    assert (failed.status_code, status.status_code) == (500, 200)
    assert isinstance(failed.json()["error"], str)


async def test_faults_change_between_requests_with_fresh_counts(serve: Serve) -> None:
    app = create_simulator_app(faults={"list": Faults(server_errors=1)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        first = [(await client.get("/v1/videos")).status_code for _ in range(2)]
        app.state.faults.set("list", Faults(server_errors=1))
        second = [(await client.get("/v1/videos")).status_code for _ in range(2)]
        app.state.faults.set("list", None)
        app.state.faults.set("*", None)
        third = (await client.get("/v1/videos")).status_code
    assert (first, second, third) == ([500, 200], [500, 200], 200)


async def test_unauthorized_requests_consume_no_fault(serve: Serve) -> None:
    app = create_simulator_app(api_key="k", faults={"list": Faults(server_errors=1)})
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        refused = await client.get("/v1/videos")
        allowed = await client.get("/v1/videos", headers={"authorization": "Bearer k"})
    assert (refused.status_code, allowed.status_code) == (401, 500)


@pytest.mark.parametrize("path", ["/v1/videos", RELAY])
async def test_auth_failures_rejections_and_chosen_server_errors_do_nothing(
    serve: Serve, path: str
) -> None:
    route = "create" if path == "/v1/videos" else "relay_create"
    app = create_simulator_app(
        faults={
            route: Faults(
                server_errors=1,
                server_error_status=503,
                auth_failures=1,
                rejections=1,
                rejection_status=422,
            )
        }
    )
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        answers = [await client.post(path, files={"prompt": (None, "cat")}) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 401, 422, 200]
    assert app.state.creates == 1
    assert [r.fault for r in app.state.records(route)] == [
        "server_errors",
        "auth_failures",
        "rejections",
        None,
    ]
