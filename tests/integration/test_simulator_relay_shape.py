"""The simulator's multipart relay shape over a real socket."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.images import make_image
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
RELAY = "/relay/v1/videos"


async def test_relay_job_runs_pending_processing_success_with_relay_words(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(queue_seconds=1, render_seconds=4, clock=clock)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        created = await client.post(RELAY, files={"prompt": (None, "cat"), "seconds": (None, "8")})
        assert created.status_code == 200
        job = created.json()
        assert re.fullmatch(r"task_[0-9a-f]{32}", job["task_id"])
        assert (job["state"], job["progress"], job["video_url"], job["error"]) == (
            "pending",
            "0%",
            None,
            None,
        )
        assert job["created_at"] > 1e12, "relay timestamps are in milliseconds"
        clock.advance(1 + 2)
        running = (await client.get(f"{RELAY}/{job['task_id']}")).json()
        assert (running["state"], running["progress"]) == ("processing", "50%")
        assert running["updated_at"] - running["created_at"] == 3000
        clock.advance(2)
        done = (await client.get(f"{RELAY}/{job['task_id']}")).json()
    assert (done["state"], done["progress"]) == ("success", "100%")
    assert (
        done["video_url"]
        == f"{created.url.scheme}://{created.url.netloc.decode()}{RELAY}/{job['task_id']}/download"
    )
    assert done["expires_at"] > done["created_at"]
    assert app.state.jobs[job["task_id"]].seconds == "8"


async def test_video_url_redirects_to_a_file_served_without_credentials(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=0, api_key="relay-key")
    async with httpx2.AsyncClient(
        base_url=serve(app), headers={"authorization": "relay-key"}
    ) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        video_url = (await client.get(f"{RELAY}/{task_id}")).json()["video_url"]
        redirect = await client.get(video_url)
        assert redirect.status_code == 302
        assert redirect.headers["location"].endswith(f"/files/{task_id}.mp4")
        async with httpx2.AsyncClient() as anonymous:
            video = await anonymous.get(video_url, follow_redirects=True)
    assert video.status_code == 200
    assert video.content == SAMPLE
    assert [r.status_code for r in video.history] == [302]
    assert [(r.route, r.status) for r in app.state.records()][-2:] == [
        ("relay_download", 302),
        ("files", 200),
    ]


async def test_files_host_moves_the_redirect_to_another_origin(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=0, files_host="localhost")
    url = serve(app)
    async with httpx2.AsyncClient(base_url=url, headers={"authorization": "Bearer k"}) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        video_url = (await client.get(f"{RELAY}/{task_id}")).json()["video_url"]
        video = await client.get(video_url, follow_redirects=True)
    port = url.rsplit(":", 1)[1]
    assert str(video.url) == f"http://localhost:{port}/files/{task_id}.mp4"
    assert video.content == SAMPLE
    download, file = app.state.records()[-2:]
    assert (download.has_authorization, file.has_authorization) == (True, False)


async def test_relay_accepts_field_synonyms_a_file_or_a_url_reference(serve: Serve) -> None:
    app = create_simulator_app()
    image = make_image(720, 1280, "WEBP")
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        with_file = await client.post(
            RELAY,
            data={"prompt": "cat", "duration": "12", "aspect_ratio": "9:16", "hd": "true"},
            files={"input_reference": ("ref.webp", image, "image/webp")},
        )
        with_url = await client.post(
            RELAY,
            files={"prompt": (None, "dog"), "input_reference": (None, "https://img.example/a.png")},
        )
    assert (with_file.status_code, with_url.status_code) == (200, 200)
    first = app.state.jobs[with_file.json()["task_id"]]
    assert (first.seconds, first.size, first.fields["hd"]) == ("12", "9:16", "true")
    assert first.reference is not None and first.reference.data == image
    second = app.state.jobs[with_url.json()["task_id"]]
    assert second.fields["input_reference"] == "https://img.example/a.png"


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"json": {"prompt": "cat"}}, 415),
        ({"files": {"seconds": (None, "4")}}, 400),
        ({"files": {"prompt": (None, "cat"), "seconds": (None, "four")}}, 400),
        (
            {"files": {"prompt": (None, "cat"), "input_reference": ("a.txt", b"hi", "text/csv")}},
            400,
        ),
        ({"files": {"prompt": (None, "cat"), "input_reference": (None, "ftp://x")}}, 400),
        (
            {
                "content": b"--x\r\nnonsense",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            400,
        ),
    ],
)
async def test_relay_errors_are_plain_strings(
    serve: Serve, request_kwargs: dict[str, object], status: int
) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        response = await client.post(RELAY, **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)
    assert app.state.creates == 0


async def test_relay_failure_carries_a_string_error(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, fail_prompts=["blocked"])
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "blocked cat")})).json()[
            "task_id"
        ]
        failed = (await client.get(f"{RELAY}/{task_id}")).json()
        download = await client.get(f"{RELAY}/{task_id}/download")
    assert failed["state"] == "failure"
    assert failed["error"].startswith("moderation_blocked")
    assert download.status_code == 404


async def test_relay_auth_takes_bearer_or_raw_key(serve: Serve) -> None:
    app = create_simulator_app(api_key="k-123")
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        statuses = [
            (await client.get(f"{RELAY}/task_x", headers=headers)).status_code
            for headers in (
                {},
                {"authorization": "nope"},
                {"authorization": "k-123"},
                {"authorization": "Bearer k-123"},
            )
        ]
        unauthorized = await client.get(f"{RELAY}/task_x")
    assert statuses == [401, 401, 404, 404]
    assert isinstance(unauthorized.json()["error"], str)


async def test_shapes_do_not_see_each_others_jobs(serve: Serve) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        assert (await client.get(f"{RELAY}/{video_id}")).status_code == 404
        assert (await client.get(f"/v1/videos/{task_id}")).status_code == 404
        listed = (await client.get("/v1/videos")).json()["data"]
    assert [v["id"] for v in listed] == [video_id]
    assert app.state.creates == 2


async def test_relay_path_is_configurable(serve: Serve) -> None:
    app = create_simulator_app(relay_path="/sora/v1/videos")
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        moved = await client.post("/sora/v1/videos", files={"prompt": (None, "cat")})
        old = await client.post(RELAY, files={"prompt": (None, "cat")})
    assert (moved.status_code, old.status_code) == (200, 404)


async def test_relay_downloads_expire_with_the_assets(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(queue_seconds=0, render_seconds=0, clock=clock)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        task_id = (await client.post(RELAY, files={"prompt": (None, "cat")})).json()["task_id"]
        clock.advance(3600)
        expired = await client.get(f"{RELAY}/{task_id}/download")
        file = await client.get(f"/files/{task_id}.mp4")
    assert (expired.status_code, file.status_code) == (404, 404)
    assert "expired" in expired.json()["error"]
