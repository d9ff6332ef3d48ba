"""The FastAPI router over real HTTP: uvicorn on 127.0.0.1, an httpx2 client, a fake provider.

The server runs in the test's own event loop (not the ``serve`` fixture's thread) because the
manager must live in the loop that serves it, and the tests look into its store and provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI, Header, HTTPException

from sora_tasks import (
    PollingPolicy,
    PriceTable,
    ProviderServerError,
    StoreUnavailableError,
    Task,
    TaskManager,
    WebhookPolicy,
)
from sora_tasks._models import TaskQuery
from sora_tasks.contrib.fastapi import create_router
from sora_tasks.providers import ContentStream
from sora_tasks.providers._base import ContentVariant, SubmitRequest
from sora_tasks.storage import InMemoryStore, TaskStore
from sora_tasks.testing import FakeBehaviour, FakeProvider, sample_video, serve_in_thread
from sora_tasks.testing._server import base_url, bind, make_server
from tests.images import make_image
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.05, poll_after=0.01)
SLOW = FakeBehaviour(render_for=3600, poll_after=0.01)
PRICES = PriceTable.from_csv(
    "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
    "fake,*,*,*,0.25,,USD,2026-01-01,a test price\n"
)
KEY = b"a 32-byte signing key for tests!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
TASK_FIELDS = {
    "videoId",
    "userId",
    "route",
    "cost",
    "status",
    "mediaType",
    "prompt",
    "model",
    "size",
    "aspectRatio",
    "resolution",
    "seconds",
    "negativePrompt",
    "seed",
    "audio",
    "providerOptions",
    "progress",
    "videoUrl",
    "error",
    "externalTaskId",
    "provider",
    "metadata",
    "createdAt",
    "updatedAt",
    "completedAt",
}

Json = dict[str, Any]


def user_from_header(x_user: Annotated[str | None, Header()] = None) -> str:
    """The host application's authentication, reduced to a header for the tests."""
    if not x_user:
        raise HTTPException(401, "who are you?")
    return x_user


def slow_when_asked(request: SubmitRequest) -> FakeBehaviour | None:
    return SLOW if "slow" in request.prompt else None


@dataclass
class Api:
    client: httpx2.AsyncClient
    manager: TaskManager
    fake: FakeProvider

    async def stored(self) -> int:
        return len((await self.manager.store.list(TaskQuery())).items)

    async def create(self, user: str = "u1", **body: object) -> httpx2.Response:
        return await self.client.post("/api/video/tasks", json=body, headers={"x-user": user})

    async def get(self, path: str, user: str = "u1", **params: str) -> httpx2.Response:
        return await self.client.get(f"/api/video{path}", params=params, headers={"x-user": user})

    async def until_done(self, video_id: str) -> Json:
        with anyio.fail_after(10):
            while True:
                task: Json = (await self.get(f"/tasks/{video_id}")).json()
                if task["status"] not in ("QUEUED", "PROCESSING"):
                    return task
                await anyio.sleep(0.02)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on an ephemeral port in this event loop; yield its base URL."""
    server = make_server(app)
    sock = bind()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
                    await anyio.sleep(0.005)
            try:
                yield base_url(sock)
            finally:
                server.should_exit = True
    finally:
        sock.close()


@asynccontextmanager
async def running(
    fake: FakeProvider | None = None,
    *,
    poll: bool = True,
    download_dir: Path | None = None,
    store: TaskStore | None = None,
    manager_options: Mapping[str, Any] | None = None,
    **router_options: Any,
) -> AsyncIterator[Api]:
    fake = fake or FakeProvider(behaviour=QUICK, script=slow_when_asked)
    manager = TaskManager(
        providers={"fake": fake},
        store=store,
        policy=FAST,
        poll=poll,
        webhook_secrets={"fake": SECRET},
        download_dir=download_dir,
        prices=PRICES,
        **(manager_options or {}),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(manager, current_user=user_from_header, **router_options))
    async with serving(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as client:
        yield Api(client, manager, fake)


def data_url(image: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


async def test_the_full_lifecycle() -> None:
    async with running() as api:
        created = await api.create(
            prompt="a calico cat playing piano",
            size="1280x720",
            duration=8,
            referenceImage=data_url(make_image(1280, 720)),
            metadata={"campaign": "spring"},
        )
        assert created.status_code == 201, created.text
        task = created.json()
        assert set(task) == TASK_FIELDS
        assert task["videoId"].startswith("video_") and task["userId"] == "u1"
        assert (task["seconds"], task["mediaType"], task["metadata"]) == (
            8,
            "VIDEO",
            {"campaign": "spring"},
        )
        assert task["externalTaskId"].startswith("fake_") and task["videoUrl"] is None
        assert api.fake.submissions[0].image is not None

        done = await api.until_done(task["videoId"])
        assert done["status"] == "COMPLETED" and done["progress"] == 100
        assert done["completedAt"] is not None and done["error"] is None
        assert done["videoUrl"].endswith(f"/api/video/tasks/{task['videoId']}/content")

        content = await api.client.get(done["videoUrl"], headers={"x-user": "u1"})
        assert content.status_code == 200
        assert content.content == sample_video()
        assert content.headers["content-type"] == "video/mp4"
        assert content.headers["content-length"] == str(len(sample_video()))

        listed = (await api.get("/tasks")).json()
        assert [item["videoId"] for item in listed["items"]] == [task["videoId"]]
        assert (listed["nextCursor"], listed["hasMore"]) == (None, False)

        stats = (await api.get("/stats")).json()
        assert stats["total"] == 1 and stats["byStatus"]["COMPLETED"] == 1
        assert stats["byStatus"]["FAILED"] == 0 and stats["successRate"] == 1.0
        assert task["cost"] == {
            "amount": 2.0,
            "currency": "USD",
            "estimated": True,
            "source": "estimate: 8 s, fake * * audio=* at 0.25 USD/s "
            "(seen 2026-01-01; a test price)",
        }
        assert done["cost"]["amount"] == 2.0 and done["cost"]["estimated"] is False
        assert stats["costTotal"] == {"USD": 2.0}
        assert stats["costByUser"] == {"u1": {"USD": 2.0}}
        assert stats["costByProvider"] == {"fake": {"USD": 2.0}}
        assert stats["costByModel"] == {done["model"]: {"USD": 2.0}}

        again = await api.client.post(
            f"/api/video/tasks/{task['videoId']}/cancel", headers={"x-user": "u1"}
        )
        assert again.status_code == 200 and again.json()["status"] == "COMPLETED"

        slow = (await api.create(prompt="a slow render")).json()
        early = await api.get(f"/tasks/{slow['videoId']}/content")
        assert early.status_code == 409 and early.json()["error"]["code"] == "task_not_ready"
        cancelled = await api.client.post(
            f"/api/video/tasks/{slow['videoId']}/cancel", headers={"x-user": "u1"}
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        assert api.fake.cancelled == [slow["externalTaskId"]]


async def test_a_downloaded_video_is_served_from_disk_with_byte_ranges(tmp_path: Path) -> None:
    video = sample_video()
    async with running(download_dir=tmp_path) as api:
        task = (await api.create(prompt="a calico cat")).json()
        await api.until_done(task["videoId"])
        with anyio.fail_after(10):
            while True:  # the engine downloads right after it records the completion
                stored = await api.manager.get(task["videoId"])
                if stored.result is not None and stored.result.local_path is not None:
                    break
                await anyio.sleep(0.02)
        path = f"/tasks/{task['videoId']}/content"

        whole = await api.get(path)
        assert (whole.status_code, whole.content) == (200, video)
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-type"] == "video/mp4"

        ranged = {"x-user": "u1", "range": "bytes=100-199"}
        part = await api.client.get(f"/api/video{path}", headers=ranged)
        assert (part.status_code, part.content) == (206, video[100:200])
        assert part.headers["content-range"] == f"bytes 100-199/{len(video)}"
        beyond = {"x-user": "u1", "range": f"bytes={len(video) + 10}-"}
        assert (await api.client.get(f"/api/video{path}", headers=beyond)).status_code == 416
        assert (await api.get(path, user="u2")).status_code == 404

        # a copy that is no longer whole is never served: the provider's is
        Path(stored.result.local_path).write_bytes(video[:100])
        fallback = await api.get(path)
        assert (fallback.status_code, fallback.content) == (200, video)
        assert "accept-ranges" not in fallback.headers


async def test_listing_pages_and_filters() -> None:
    async with running() as api:
        ids = [(await api.create(prompt=f"cat {n}")).json()["videoId"] for n in range(3)]
        image = (await api.create(prompt="a still", mediaType="IMAGE")).json()["videoId"]
        first = (await api.get("/tasks", limit="2")).json()
        assert [item["videoId"] for item in first["items"]] == [image, ids[2]]
        assert first["hasMore"] is True
        rest = (await api.get("/tasks", limit="2", cursor=first["nextCursor"])).json()
        assert [item["videoId"] for item in rest["items"]] == [ids[1], ids[0]]
        assert rest["hasMore"] is False
        only_images = (await api.get("/tasks", mediaType="IMAGE")).json()
        assert [item["videoId"] for item in only_images["items"]] == [image]
        created = (await api.get(f"/tasks/{ids[1]}")).json()["createdAt"]
        before = (await api.get("/tasks", createdBefore=created)).json()
        assert [item["videoId"] for item in before["items"]] == [ids[0]]
        await api.until_done(ids[0])
        queued = (await api.get("/tasks", status="COMPLETED")).json()
        assert ids[0] in [item["videoId"] for item in queued["items"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"mediaType": "AUDIO"}, "mediaType"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_bad_list_parameters_answer_400(params: dict[str, str], field: str) -> None:
    async with running() as api:
        answer = await api.get("/tasks", **params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == field


@dataclass(frozen=True)
class Bad:
    body: Callable[[Path], Json | bytes]
    status: int
    code: str
    field: str
    message: str
    limit: object = None


OVERSIZED = b"\x89PNG\r\n\x1a\n" + bytes(5 * 1024 * 1024)

BAD_INPUT = {
    "oversized image": Bad(
        lambda _: {"prompt": "a", "referenceImage": data_url(OVERSIZED)},
        413,
        "image_too_large",
        "referenceImage",
        "the limit is 5,242,880 bytes",
        5 * 1024 * 1024,
    ),
    "too long prompt": Bad(
        lambda _: {"prompt": "x" * 10_001},
        400,
        "prompt",
        "prompt",
        "the limit is 10,000",
        10_000,
    ),
    "blank prompt": Bad(lambda _: {"prompt": "  "}, 400, "prompt", "prompt", "required"),
    "missing prompt": Bad(
        lambda _: {"model": "sora-2"}, 400, "invalid_request", "prompt", "required"
    ),
    "bad base64": Bad(
        lambda _: {"prompt": "a", "referenceImage": "data:image/png;base64,%%%not-base64"},
        400,
        "invalid_image_encoding",
        "referenceImage",
        "not valid base64",
    ),
    "not an image": Bad(
        lambda _: {"prompt": "a", "referenceImage": data_url(b"hello, world")},
        400,
        "unsupported_image_type",
        "referenceImage",
        "not an image",
    ),
    "unknown model": Bad(
        lambda _: {"prompt": "a", "model": "sora-9"},
        400,
        "unsupported_parameter",
        "model",
        "model 'sora-9' is not offered",
        ["fake-video-1", "sora-2", "sora-2-pro"],
    ),
    "unoffered length": Bad(
        lambda _: {"prompt": "a", "seconds": 5}, 400, "unsupported_parameter", "seconds", "5"
    ),
    "wrong image dimensions": Bad(
        lambda _: {
            "prompt": "a",
            "size": "1280x720",
            "referenceImage": data_url(make_image(64, 48)),
        },
        400,
        "image_dimensions",
        "referenceImage",
        "64x48",
        "1280x720",
    ),
    "seconds and duration disagree": Bad(
        lambda _: {"prompt": "a", "seconds": 4, "duration": 8},
        400,
        "invalid_request",
        "duration",
        "disagree",
    ),
    "unknown media type": Bad(
        lambda _: {"prompt": "a", "mediaType": "AUDIO"},
        400,
        "invalid_request",
        "mediaType",
        "VIDEO",
    ),
    "misspelt field": Bad(
        lambda _: {"prompt": "a", "referenceImg": "x"},
        400,
        "invalid_request",
        "referenceImg",
        "Extra",
    ),
    "unknown provider": Bad(
        lambda _: {"prompt": "a", "provider": "elsewhere"},
        400,
        "unknown_provider",
        "provider",
        "elsewhere",
    ),
    "not json": Bad(lambda _: b'{"prompt": ', 400, "invalid_request", "body", "JSON"),
    "malformed aspect ratio": Bad(
        lambda _: {"prompt": "a", "aspectRatio": "wide"},
        400,
        "invalid_request",
        "aspectRatio",
        "W:H",
    ),
    "a field the model does not take": Bad(
        lambda _: {"prompt": "a", "negativePrompt": "blur"},
        400,
        "unsupported_parameter",
        "negativePrompt",
        "does not take negative_prompt",
    ),
    "reference images the model does not take": Bad(
        lambda _: {"prompt": "a", "referenceImages": [data_url(make_image(8, 8))]},
        400,
        "unsupported_parameter",
        "referenceImages",
        "does not take reference_images",
        0,
    ),
    "a notify URL at the metadata service": Bad(
        lambda _: {"prompt": "a", "notifyUrl": "http://169.254.169.254/latest/meta-data/"},
        400,
        "invalid_request",
        "notifyUrl",
        "metadata",
        "public addresses",
    ),
    "a notify URL that is too long": Bad(
        lambda _: {"prompt": "a", "notifyUrl": "https://hooks.example.com/" + "a" * 2048},
        400,
        "invalid_request",
        "notifyUrl",
        "at most 2,048",
        2048,
    ),
    "a notify URL that is not http": Bad(
        lambda _: {"prompt": "a", "notifyUrl": "gopher://hooks.example.com/"},
        400,
        "invalid_request",
        "notifyUrl",
        "http:// or https://",
        "http, https",
    ),
    "a path on the server": Bad(
        lambda folder: {"prompt": "a", "referenceImage": str(folder / "reference.png")},
        400,
        "invalid_image_encoding",
        "referenceImage",
        "base64",
    ),
}


@pytest.mark.parametrize("bad", BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_is_refused_and_nothing_is_stored_or_sent(bad: Bad, tmp_path: Path) -> None:
    (tmp_path / "reference.png").write_bytes(make_image(1280, 720))
    async with running() as api:
        body = bad.body(tmp_path)
        answer = await api.client.post(
            "/api/video/tasks",
            content=body if isinstance(body, bytes) else json.dumps(body).encode(),
            headers={"x-user": "u1", "content-type": "application/json"},
        )
        assert answer.status_code == bad.status, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (bad.code, bad.field)
        assert bad.message in error["message"]
        if bad.limit is not None:
            assert error["limit"] == bad.limit
        assert await api.stored() == 0
        assert api.fake.submissions == []


async def test_a_notify_url_in_the_body_gets_the_signed_end_of_the_task() -> None:
    receiver = Receiver(SECRET)
    options = {
        "webhook_secret": SECRET,
        "webhook_policy": WebhookPolicy(allow_private=True, idle_wait=0.02),
    }
    with serve_in_thread(receiver) as hooks:
        async with running(manager_options=options) as api:
            answer = await api.create(prompt="a cat", notifyUrl=f"{hooks}/hooks")
            assert answer.status_code == 201, answer.text
            video_id = answer.json()["videoId"]
            assert (await api.until_done(video_id))["status"] == "COMPLETED"
            with anyio.fail_after(10):
                while not receiver.received:  # noqa: ASYNC110 - the receiver runs in a thread
                    await anyio.sleep(0.02)
    (item,) = receiver.received
    assert (item.type, item.task_id) == ("video.completed", video_id)


async def test_frame_forms_and_provider_options_are_taken_and_shown() -> None:
    async with running() as api:
        answer = await api.create(
            prompt="a tall cat", aspectRatio="9:16", resolution="720p", providerOptions={"k": 1}
        )
        assert answer.status_code == 201, answer.text
        task = answer.json()
        assert (task["size"], task["aspectRatio"], task["resolution"]) == (
            "720x1280",
            "9:16",
            "720p",
        )
        assert task["providerOptions"] == {"k": 1}
        (sent,) = api.fake.submissions
        assert (sent.size, sent.provider_options) == ("720x1280", {"k": 1})


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed() -> None:
    async with running(max_body_bytes=1024) as api:
        declared = await api.create(prompt="x" * 2000)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"
        assert "the limit is 1,024 bytes" in declared.json()["error"]["message"]

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"prompt": "'
            yield b"x" * 2000
            yield b'"}'

        streamed = await api.client.post(
            "/api/video/tasks",
            content=chunks(),
            headers={"x-user": "u1", "content-type": "application/json"},
        )
        assert streamed.status_code == 413 and streamed.json()["error"]["limit"] == 1024
        assert await api.stored() == 0 and api.fake.submissions == []


NOT_JSON = {
    "a cross-site form's text/plain": "text/plain",
    "text/plain with a charset": "text/plain;charset=UTF-8",
    "a urlencoded form": "application/x-www-form-urlencoded",
    "a multipart form": "multipart/form-data; boundary=x",
    "json under another top-level type": "text/json",
    "no content-type at all": None,
}


@pytest.mark.parametrize("content_type", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_not_declared_as_json_is_refused_with_415(content_type: str | None) -> None:
    # a cross-site form may send text/plain (or a no-cors fetch no type) without a preflight
    async with running() as api:
        headers = {"x-user": "u1"}
        if content_type is not None:
            headers["content-type"] = content_type
        answer = await api.client.post(
            "/api/video/tasks", content=json.dumps({"prompt": "a"}).encode(), headers=headers
        )
        assert answer.status_code == 415, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"], error["limit"]) == (
            "unsupported_media_type",
            "content-type",
            "application/json",
        )
        assert "accepts only application/json" in error["message"]
        assert await api.stored() == 0 and api.fake.submissions == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ],
)
async def test_json_media_types_are_accepted(content_type: str) -> None:
    async with running() as api:
        answer = await api.client.post(
            "/api/video/tasks",
            content=json.dumps({"prompt": "a"}).encode(),
            headers={"x-user": "u1", "content-type": content_type},
        )
        assert answer.status_code == 201, answer.text
        assert len(api.fake.submissions) == 1


async def test_another_users_task_is_not_found() -> None:
    async with running() as api:
        task = (await api.create(prompt="mine")).json()
        done = await api.until_done(task["videoId"])
        assert done["status"] == "COMPLETED"
        for answer in (
            await api.get(f"/tasks/{task['videoId']}", user="u2"),
            await api.get(f"/tasks/{task['externalTaskId']}", user="u2"),
            await api.get(f"/tasks/{task['videoId']}/content", user="u2"),
            await api.client.post(
                f"/api/video/tasks/{task['videoId']}/cancel", headers={"x-user": "u2"}
            ),
        ):
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "task_not_found"
        assert (await api.get("/tasks", user="u2")).json()["items"] == []
        assert (await api.get("/stats", user="u2")).json()["total"] == 0
        assert (await api.get(f"/tasks/{task['videoId']}")).json()["status"] == "COMPLETED"


async def test_authentication_is_the_host_applications() -> None:
    async with running() as api:
        answer = await api.client.get("/api/video/tasks")
        assert answer.status_code == 401 and answer.json() == {"detail": "who are you?"}
        refused = await api.client.post("/api/video/tasks", json={"prompt": "a"})
        assert refused.status_code == 401 and api.fake.submissions == []


class _Refused(AbstractAsyncContextManager[ContentStream]):
    async def __aenter__(self) -> ContentStream:
        raise ProviderServerError("the provider is down", status_code=503)

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _BrokenContent(FakeProvider):
    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        return _Refused()


async def test_a_provider_failure_before_the_first_byte_answers_502() -> None:
    async with running(_BrokenContent(behaviour=QUICK)) as api:
        task = (await api.create(prompt="a")).json()
        await api.until_done(task["videoId"])
        answer = await api.get(f"/tasks/{task['videoId']}/content")
        assert answer.status_code == 502
        assert answer.json()["error"] == {
            "code": "provider_server",
            "message": "the provider is down",
            "field": None,
            "limit": None,
        }


class _StoreAway(InMemoryStore):
    async def get(self, task_id: str) -> Task:
        raise StoreUnavailableError("the sqlite task store at /srv/private/tasks.db is unavailable")


async def test_a_store_outage_answers_503_with_retry_after_and_no_detail() -> None:
    async with running(store=_StoreAway()) as api:
        answer = await api.get("/tasks/video_00000000-0000-4000-8000-000000000000")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert "/srv/private" not in answer.text


def sign(body: bytes, webhook_id: str = "msg_1", key: bytes = KEY) -> Mapping[str, str]:
    timestamp = str(int(time.time()))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_webhooks_are_verified_then_re_read_the_job() -> None:
    clock = Clock()
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=10, poll_after=None), clock=clock)
    # an API server whose polling runs elsewhere: only the webhook can move the task
    async with running(fake, poll=False) as api:
        task = (await api.create(prompt="a")).json()
        clock.now += 60
        event = {"type": "video.completed", "data": {"id": task["externalTaskId"]}}
        body = json.dumps(event).encode()
        url = "/api/video/webhooks/fake"

        forged = await api.client.post(url, content=body, headers=sign(body, key=b"wrong" * 7))
        assert forged.status_code == 400
        assert forged.json()["error"]["code"] == "webhook_verification"
        assert fake.status_calls == 0
        assert (await api.get(f"/tasks/{task['videoId']}")).json()["status"] == task["status"]

        accepted = await api.client.post(url, content=body, headers=sign(body))
        assert accepted.status_code == 200
        assert accepted.json() == {"outcome": "processed", "webhookId": "msg_1"}
        assert (await api.get(f"/tasks/{task['videoId']}")).json()["status"] == "COMPLETED"

        replayed = await api.client.post(url, content=body, headers=sign(body))
        assert replayed.json() == {"outcome": "duplicate", "webhookId": "msg_1"}
        assert fake.status_calls == 1

        unknown = await api.client.post(
            "/api/video/webhooks/other", content=body, headers=sign(body)
        )
        assert unknown.status_code == 400


async def test_the_openapi_document_describes_the_routes() -> None:
    async with running() as api:
        document = (await api.client.get("/openapi.json")).json()
        assert {
            "/api/video/tasks",
            "/api/video/tasks/{videoId}",
            "/api/video/tasks/{videoId}/content",
            "/api/video/tasks/{videoId}/cancel",
            "/api/video/stats",
            "/api/video/webhooks/{provider}",
        } <= set(document["paths"])
        create = document["paths"]["/api/video/tasks"]["post"]
        schema = create["requestBody"]["content"]["application/json"]["schema"]
        assert "referenceImage" in schema["properties"]


def test_the_router_can_be_built_at_import_time_outside_an_event_loop() -> None:
    manager = TaskManager(providers={"fake": FakeProvider()}, webhook_secrets={"fake": SECRET})
    app = FastAPI()
    app.include_router(create_router(manager, current_user=user_from_header))
    assert "/api/video/tasks" in app.openapi()["paths"]
