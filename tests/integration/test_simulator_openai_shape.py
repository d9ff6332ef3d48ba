"""The simulator's OpenAI Videos shape over a real socket, checked against the contract."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import httpx2
import pytest

from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.images import make_image
from tests.integration.simulation import ManualClock, check_contract

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()


async def test_json_create_answers_a_contract_video_object_with_a_poll_hint(serve: Serve) -> None:
    url = serve(create_simulator_app())
    async with httpx2.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/v1/videos", json={"prompt": "a calico cat", "seconds": "8", "size": "1280x720"}
        )
    check_contract(response)
    video = response.json()
    assert re.fullmatch(r"video_[0-9a-f]{32}", video["id"])
    assert (video["status"], video["progress"], video["seconds"], video["size"]) == (
        "queued",
        0,
        "8",
        "1280x720",
    )
    assert (video["completed_at"], video["expires_at"], video["error"]) == (None, None, None)
    assert response.headers["openai-poll-after-ms"] == "1000"


async def test_a_job_is_queued_then_follows_the_curve_then_completes(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(
        queue_seconds=2, render_seconds=10, progress_curve="ease_in", clock=clock
    )
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]

        async def status() -> dict[str, object]:
            response = await client.get(f"/v1/videos/{video_id}")
            check_contract(response)
            body: dict[str, object] = response.json()
            return body

        clock.advance(1.9)
        assert (await status())["status"] == "queued"
        clock.advance(0.1 + 5)
        halfway = await status()
        assert (halfway["status"], halfway["progress"]) == ("in_progress", 25)
        assert (await client.get(f"/v1/videos/{video_id}/content")).status_code == 404
        clock.advance(5)
        done = await status()
        assert (done["status"], done["progress"]) == ("completed", 100)
        assert isinstance(done["completed_at"], int)
        assert isinstance(done["created_at"], int)
        assert done["completed_at"] - done["created_at"] in (12, 13)
        assert done["expires_at"] == done["completed_at"] + 3600
        content = await client.get(f"/v1/videos/{video_id}/content", params={"variant": "video"})
        check_contract(content)
        assert content.headers["content-type"] == "video/mp4"
        assert int(content.headers["content-length"]) == len(SAMPLE)
        assert content.content == SAMPLE
        clock.advance(3601)
        expired = await client.get(f"/v1/videos/{video_id}/content")
        assert (expired.status_code, expired.json()["error"]["code"]) == (404, "expired")


async def test_moderated_prompts_fail_by_substring_or_pattern(serve: Serve) -> None:
    app = create_simulator_app(
        queue_seconds=0,
        render_seconds=60,
        fail_prompts=["Forbidden", re.compile(r"^nsfw\b")],
    )
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        results = {}
        for prompt in ("a FORBIDDEN dance", "nsfw scene", "a safe nsfwless cat"):
            created = (await client.post("/v1/videos", json={"prompt": prompt})).json()
            response = await client.get(f"/v1/videos/{created['id']}")
            check_contract(response)
            results[prompt] = response.json()
        blocked = results["a FORBIDDEN dance"]
        assert blocked["status"] == "failed"
        assert blocked["error"]["code"] == "moderation_blocked"
        assert results["nsfw scene"]["status"] == "failed"
        assert results["a safe nsfwless cat"]["status"] == "in_progress"
        content = await client.get(f"/v1/videos/{blocked['id']}/content")
        assert content.status_code == 404


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "cat", "seconds": 8}, "seconds", "invalid_type"),
        ({"prompt": "cat", "seconds": "5"}, "seconds", "invalid_value"),
        ({"prompt": "cat", "size": "640x480"}, "size", "invalid_value"),
        ({"prompt": "cat", "model": "dall-e-3"}, "model", "invalid_value"),
        ({"seconds": "4"}, "prompt", "missing_required_parameter"),
        ({"prompt": "   "}, "prompt", None),
        ({"prompt": "x" * 32_001}, "prompt", None),
        ({"prompt": "cat", "duration": "4"}, "duration", "unknown_parameter"),
        (
            {"prompt": "cat", "input_reference": {"image_url": "u", "file_id": "f"}},
            "input_reference",
            None,
        ),
        ({"prompt": "cat", "input_reference": "https://x/y.png"}, "input_reference", None),
    ],
)
async def test_json_create_rejects_what_the_real_api_rejects(
    serve: Serve, body: dict[str, object], param: str, code: str | None
) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        response = await client.post("/v1/videos", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert app.state.creates == 0


async def test_json_create_accepts_a_reference_by_url(serve: Serve) -> None:
    app = create_simulator_app()
    reference = {"image_url": "data:image/png;base64,AAAA"}
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        response = await client.post(
            "/v1/videos", json={"prompt": "cat", "input_reference": reference}
        )
    assert response.status_code == 200
    (job,) = app.state.jobs.values()
    assert job.fields["input_reference"] == reference


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"prompt=cat", "text/plain"),
    ],
)
async def test_bodies_that_are_not_a_json_object_or_a_form_get_400(
    serve: Serve, content: bytes, kind: str
) -> None:
    async with httpx2.AsyncClient(base_url=serve(create_simulator_app())) as client:
        response = await client.post("/v1/videos", content=content, headers={"content-type": kind})
    assert response.status_code == 400
    assert response.json()["error"]["message"]


async def test_multipart_create_keeps_the_uploaded_reference(serve: Serve) -> None:
    app = create_simulator_app()
    image = make_image(1280, 720, "PNG")
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        response = await client.post(
            "/v1/videos",
            data={"prompt": "cat", "seconds": "4", "size": "1280x720", "model": "sora-2-pro"},
            files={"input_reference": ("ref.png", image, "image/png")},
        )
    check_contract(response)
    assert response.json()["model"] == "sora-2-pro"
    (job,) = app.state.jobs.values()
    assert job.reference is not None
    assert (job.reference.filename, job.reference.content_type) == ("ref.png", "image/png")
    assert job.reference.data == image


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        ((None, make_image(1280, 720), "image/png"), "filename"),
        (("ref.png", make_image(1280, 720), "application/octet-stream"), "file type"),
        (("ref.png", b"GIF89a not really", "image/png"), "not a usable image"),
        (("ref.jpg", make_image(720, 1280, "JPEG"), "image/jpeg"), "720x1280 != 1280x720"),
    ],
)
async def test_multipart_upload_must_be_a_named_image_of_the_requested_size(
    serve: Serve, upload: tuple[str | None, bytes, str], message: str
) -> None:
    app = create_simulator_app()
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        response = await client.post(
            "/v1/videos",
            data={"prompt": "cat", "size": "1280x720"},
            files={"input_reference": upload},
        )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert app.state.creates == 0


async def test_multipart_rejects_unknown_file_parts_and_a_text_reference(serve: Serve) -> None:
    async with httpx2.AsyncClient(base_url=serve(create_simulator_app())) as client:
        extra = await client.post(
            "/v1/videos", data={"prompt": "cat"}, files={"other": ("a.png", b"x", "image/png")}
        )
        text = await client.post(
            "/v1/videos",
            data={"prompt": "cat", "input_reference": "https://x/y.png"},
            files={"unused": (None, b"")},
        )
    assert (extra.status_code, extra.json()["error"]["code"]) == (400, "unknown_parameter")
    assert text.status_code == 400


async def test_list_pages_newest_first_with_after_and_limit(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(clock=clock)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        ids = [
            (await client.post("/v1/videos", json={"prompt": f"p{i}"})).json()["id"]
            for i in range(3)
        ]
        first = await client.get("/v1/videos", params={"limit": 2})
        check_contract(first)
        page = first.json()
        assert [v["id"] for v in page["data"]] == [ids[2], ids[1]]
        assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
            "list",
            ids[2],
            ids[1],
            True,
        )
        rest = (
            await client.get("/v1/videos", params={"limit": 2, "after": page["last_id"]})
        ).json()
        assert ([v["id"] for v in rest["data"]], rest["has_more"]) == ([ids[0]], False)
        ascending = (await client.get("/v1/videos", params={"order": "asc"})).json()
        assert [v["id"] for v in ascending["data"]] == ids
        empty = await client.get("/v1/videos", params={"limit": 0})
        check_contract(empty)
        assert empty.json() == {
            "object": "list",
            "data": [],
            "first_id": None,
            "last_id": None,
            "has_more": True,
        }
        for params in ({"limit": 101}, {"limit": "x"}, {"order": "up"}, {"after": "video_nope"}):
            assert (await client.get("/v1/videos", params=params)).status_code == 400


async def test_delete_removes_a_finished_video_and_refuses_a_running_one(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(queue_seconds=0, render_seconds=10, clock=clock)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        running = await client.delete(f"/v1/videos/{video_id}")
        assert running.status_code == 400
        clock.advance(10)
        deleted = await client.delete(f"/v1/videos/{video_id}")
        check_contract(deleted)
        assert deleted.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
        assert (await client.get(f"/v1/videos/{video_id}")).status_code == 404
        assert (await client.get(f"/v1/videos/{video_id}/content")).status_code == 404
        assert (await client.delete(f"/v1/videos/{video_id}")).status_code == 404
        assert (await client.get("/v1/videos")).json()["data"] == []


async def test_content_variants(serve: Serve) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=0)
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        video_id = (await client.post("/v1/videos", json={"prompt": "cat"})).json()["id"]
        thumbnail = await client.get(
            f"/v1/videos/{video_id}/content", params={"variant": "thumbnail"}
        )
        wrong = await client.get(f"/v1/videos/{video_id}/content", params={"variant": "gif"})
    assert (thumbnail.status_code, thumbnail.json()["error"]["param"]) == (404, "variant")
    assert wrong.status_code == 400


async def test_api_key_is_required_when_set_and_never_logged(serve: Serve) -> None:
    app = create_simulator_app(api_key="sk-canary-123")
    async with httpx2.AsyncClient(base_url=serve(app)) as client:
        missing = await client.get("/v1/videos")
        wrong = await client.get("/v1/videos", headers={"authorization": "Bearer sk-other"})
        raw = await client.get("/v1/videos", headers={"authorization": "sk-canary-123"})
        right = await client.get("/v1/videos", headers={"authorization": "Bearer sk-canary-123"})
    assert [r.status_code for r in (missing, wrong, raw, right)] == [401, 401, 401, 200]
    assert missing.json()["error"]["code"] == "invalid_api_key"
    records = app.state.records("list")
    assert [r.has_authorization for r in records] == [False, True, True, True]
    assert "sk-canary-123" not in repr(records)
    assert all("authorization" not in r.headers for r in records)


async def test_unknown_paths_and_methods(serve: Serve) -> None:
    async with httpx2.AsyncClient(base_url=serve(create_simulator_app())) as client:
        assert (await client.get("/v1/nothing")).status_code == 404
        assert (await client.get("/v1/videos/a/b/c")).status_code == 404
        assert (await client.put("/v1/videos")).status_code == 405
        assert (await client.post("/v1/videos/video_1")).status_code == 405
