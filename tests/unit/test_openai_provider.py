"""OpenAIVideosProvider against a mocked /v1/videos: bodies, parsing, retries, content, find."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore2
import httpx
import httpx2
import pytest
import respx
from pydantic import SecretStr

from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderServerError,
    ProviderTransportError,
    ProviderUnsupportedError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData, TaskStatus
from sora_tasks.providers import Backoff, OpenAIVideosProvider, ProviderCapabilities
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES, parse_video
from tests.factories import submit_request
from tests.factories import video_object as video
from tests.forms import parse_form
from tests.images import make_image

pytestmark = pytest.mark.anyio

CANARY = "sk-canary-openai-91c4-DO-NOT-LEAK"
BASE = "https://sora.test/v1"
VIDEOS = f"{BASE}/videos"
NO_WAIT = Backoff(initial=0.0, maximum=0.0)


def png(width: int = 720, height: int = 1280) -> ImageData:
    data = make_image(width, height)
    return ImageData(data, "image/png", width, height, "0" * 64)


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIVideosProvider]:
    adapter = OpenAIVideosProvider(api_key=CANARY, base_url=BASE, backoff=NO_WAIT)
    try:
        yield adapter
    finally:
        await adapter.aclose()


# --- construction ------------------------------------------------------------------------


async def test_key_and_base_url_fall_back_to_the_environment(
    httpx2_mock: respx.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://env.test/api/v1/")
    route = httpx2_mock.get("https://env.test/api/v1/videos/v1").respond(200, json=video(id="v1"))
    adapter = OpenAIVideosProvider()
    try:
        await adapter.status("v1")
    finally:
        await adapter.aclose()
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-from-env"


async def test_explicit_arguments_beat_the_environment(
    httpx2_mock: respx.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://env.test/v1")
    route = httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=video(id="v1"))
    adapter = OpenAIVideosProvider(SecretStr("sk-explicit"), base_url=BASE)
    try:
        await adapter.status("v1")
    finally:
        await adapter.aclose()
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-explicit"


@pytest.mark.parametrize("key", [None, "", SecretStr("")])
def test_a_missing_key_is_refused_early(
    monkeypatch: pytest.MonkeyPatch, key: str | SecretStr | None
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="OPENAI_API_KEY") as caught:
        OpenAIVideosProvider(key)
    assert caught.value.field == "api_key"


async def test_organization_and_project_headers(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=video(id="v1"))
    adapter = OpenAIVideosProvider(CANARY, base_url=BASE, organization="org-1", project="proj-2")
    try:
        await adapter.status("v1")
    finally:
        await adapter.aclose()
    headers = route.calls.last.request.headers
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-2")


async def test_default_capabilities_follow_the_documented_values(
    provider: OpenAIVideosProvider,
) -> None:
    caps = provider.capabilities
    assert caps.models == frozenset({"sora-2", "sora-2-pro"})
    assert caps.sizes == frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"})
    assert caps.seconds == frozenset({4, 8, 12})
    assert (caps.default_model, caps.default_size, caps.default_seconds) == (
        "sora-2",
        "720x1280",
        4,
    )
    assert caps.image_upload and caps.image_url and caps.can_delete and caps.can_list
    assert not caps.can_cancel
    assert caps.min_poll_interval == 1.0


async def test_capabilities_can_be_overridden() -> None:
    wider = DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"seconds": frozenset({4, 8, 12, 16})})
    adapter = OpenAIVideosProvider(CANARY, capabilities=wider)
    try:
        assert adapter.capabilities.seconds == frozenset({4, 8, 12, 16})
        assert isinstance(adapter.capabilities, ProviderCapabilities)
    finally:
        await adapter.aclose()


# --- create ------------------------------------------------------------------------------


async def test_submit_without_image_sends_json_with_seconds_as_a_string(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json=video())
    job = await provider.submit(submit_request(seconds=8, size="1280x720", model="sora-2-pro"))
    sent = route.calls.last.request
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["idempotency-key"] == "sub_abc123"
    assert json.loads(sent.content) == {
        "prompt": "a calico cat playing piano",
        "model": "sora-2-pro",
        "size": "1280x720",
        "seconds": "8",
    }
    assert job.external_id == "video_123"
    assert job.status is TaskStatus.QUEUED


async def test_submit_with_an_image_url_sends_input_reference_object(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json=video())
    await provider.submit(submit_request(image_url="https://img.test/cat.png"))
    body = json.loads(route.calls.last.request.content)
    assert body["input_reference"] == {"image_url": "https://img.test/cat.png"}


async def test_submit_with_image_bytes_sends_a_multipart_file_part(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json=video())
    image = png()
    await provider.submit(submit_request(image=image, image_url="https://ignored.test/x.png"))
    sent = route.calls.last.request
    assert sent.headers["idempotency-key"] == "sub_abc123"
    form = parse_form(sent.headers["content-type"], sent.content)
    assert set(form) == {"prompt", "model", "size", "seconds", "input_reference"}
    assert form["seconds"].text == "4"
    assert form["prompt"].filename is None
    part = form["input_reference"]
    assert (part.filename, part.content_type, part.value) == (
        "reference.png",
        "image/png",
        image.data,
    )


@pytest.mark.parametrize(
    ("mime", "filename"), [("image/jpeg", "reference.jpg"), ("image/webp", "reference.webp")]
)
async def test_file_part_carries_the_real_type_and_extension(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, mime: str, filename: str
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json=video())
    await provider.submit(submit_request(image=ImageData(b"\xff\xd8\xff", mime, 720, 1280, "")))
    sent = route.calls.last.request
    part = parse_form(sent.headers["content-type"], sent.content)["input_reference"]
    assert (part.filename, part.content_type) == (filename, mime)


async def test_provider_options_are_sent_with_the_create(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json=video())
    await provider.submit(submit_request(provider_options={"quality": "high"}))
    assert json.loads(route.calls.last.request.content)["quality"] == "high"


async def test_submit_with_an_unreadable_success_body_is_uncertain(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, content=b"<html>ok</html>")
    with pytest.raises(SubmissionUncertainError, match="may have started"):
        await provider.submit(submit_request())
    assert route.call_count == 1


async def test_submit_answer_without_an_id_is_uncertain(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(200, json={"object": "video", "status": "queued"})
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(submit_request())


async def test_create_read_timeout_is_uncertain_after_exactly_one_request(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.ReadTimeout("no answer"))
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(submit_request())
    assert route.call_count == 1


async def test_create_500_is_uncertain_after_exactly_one_request(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(500, json={"error": {"message": "boom"}})
    with pytest.raises(SubmissionUncertainError, match="boom"):
        await provider.submit(submit_request())
    assert route.call_count == 1


async def test_create_connect_error_is_retried_with_the_same_idempotency_key(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(
        side_effect=[httpcore2.ConnectError("refused"), httpx.Response(200, json=video())]
    )
    job = await provider.submit(submit_request(image=png()))
    assert job.external_id == "video_123"
    assert route.call_count == 2
    keys = {call.request.headers["idempotency-key"] for call in route.calls}
    assert keys == {"sub_abc123"}


async def test_create_that_never_connects_is_a_transport_error(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.ConnectTimeout("slow dns"))
    with pytest.raises(ProviderTransportError) as caught:
        await provider.submit(submit_request())
    assert not isinstance(caught.value, SubmissionUncertainError)
    assert route.call_count == 3


async def test_create_400_is_rejected_once(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    body = {"error": {"code": "invalid_value", "message": "seconds must be one of 4, 8, 12"}}
    route = httpx2_mock.post(VIDEOS).respond(400, json=body)
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.submit(submit_request())
    assert route.call_count == 1
    assert caught.value.code == "invalid_value"


# --- status and parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", TaskStatus.QUEUED),
        ("in_progress", TaskStatus.PROCESSING),
        ("completed", TaskStatus.COMPLETED),
        ("failed", TaskStatus.FAILED),
        ("cancelled", TaskStatus.CANCELLED),
        ("canceled", TaskStatus.CANCELLED),
        ("COMPLETED", TaskStatus.COMPLETED),
    ],
)
def test_each_status_word(word: str, status: TaskStatus) -> None:
    job = parse_video(video(status=word), {})
    assert job.status is status
    assert job.raw_status == word
    assert not job.expired


def test_expired_is_a_failure_marked_expired() -> None:
    job = parse_video(video(status="expired"), {})
    assert job.status is TaskStatus.FAILED
    assert job.expired
    assert job.error is not None and job.error.code == "expired"


@pytest.mark.parametrize("word", ["mystery", "", "in-review"])
def test_unknown_status_keeps_the_raw_word(word: str) -> None:
    job = parse_video(video(status=word), {})
    assert job.status is None
    assert job.raw_status == word


def test_missing_or_odd_status_is_unknown() -> None:
    assert parse_video({"id": "v"}, {}).status is None
    assert parse_video(video(status=7), {}).status is None


def test_parse_tolerates_extra_fields_and_reads_everything() -> None:
    data = video(
        status="failed",
        progress=37,
        completed_at=1_712_697_700,
        expires_at=1_712_701_300,
        error={"code": "moderation_blocked", "message": "the prompt was blocked"},
        quality="standard",
        usage={"seconds": 4},
        brand_new_field=[1, 2, 3],
    )
    job = parse_video(data, {"openai-poll-after-ms": "2500"})
    assert job.status is TaskStatus.FAILED
    assert job.progress == 37
    assert job.created_at == datetime(2024, 4, 9, 21, 20, tzinfo=UTC)
    assert job.completed_at == job.created_at + timedelta(seconds=100)
    assert job.expires_at == job.created_at + timedelta(seconds=3700)
    assert job.error is not None
    assert (job.error.code, job.error.message) == ("moderation_blocked", "the prompt was blocked")
    assert job.poll_after == 2.5


@pytest.mark.parametrize(
    ("progress", "expected"),
    [(None, None), (-5, 0), (250, 100), (0.5, 50), ("40", 40), ("x", None)],
)
def test_progress_is_clamped_and_tolerant(progress: object, expected: int | None) -> None:
    assert parse_video(video(progress=progress), {}).progress == expected


@pytest.mark.parametrize(
    ("header", "expected"), [("1000", 1.0), ("0", 0.0), ("-1", None), ("soon", None), ("nan", None)]
)
def test_poll_after_header(header: str, expected: float | None) -> None:
    assert parse_video(video(), {"openai-poll-after-ms": header}).poll_after == expected


async def test_status_reads_poll_after_on_every_response(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/video_123").mock(
        side_effect=[
            httpx.Response(
                200, json=video(status="in_progress"), headers={"openai-poll-after-ms": "3000"}
            ),
            httpx.Response(
                200, json=video(status="in_progress"), headers={"openai-poll-after-ms": "7000"}
            ),
            httpx.Response(200, json=video(status="in_progress")),
        ]
    )
    hints = [(await provider.status("video_123")).poll_after for _ in range(3)]
    assert hints == [3.0, 7.0, None]


async def test_submit_reads_poll_after_too(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.post(VIDEOS).respond(200, json=video(), headers={"openai-poll-after-ms": "1500"})
    assert (await provider.submit(submit_request())).poll_after == 1.5


async def test_status_quotes_the_external_id(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.get(url__regex=r".*").respond(200, json=video(id="a/b?c"))
    await provider.status("a/b?c")
    assert route.calls.last.request.url.raw_path == b"/v1/videos/a%2Fb%3Fc"


async def test_status_with_a_malformed_body_is_a_provider_error_not_a_crash(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/v1").respond(200, content=b"[1, 2]")
    with pytest.raises(ProviderError, match="unreadable"):
        await provider.status("v1")


async def test_status_429_then_success(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/v1").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after-ms": "1"}),
            httpx.Response(200, json=video(id="v1", status="in_progress")),
        ]
    )
    assert (await provider.status("v1")).status is TaskStatus.PROCESSING
    assert route.call_count == 2


async def test_status_500_retried_within_budget_then_raised(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/v1").respond(500)
    with pytest.raises(ProviderServerError):
        await provider.status("v1")
    assert route.call_count == 3


async def test_status_400_is_not_retried(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/v1").respond(400)
    with pytest.raises(ProviderRejectedError):
        await provider.status("v1")
    assert route.call_count == 1


async def test_long_retry_after_is_handed_to_the_manager(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/v1").respond(429, headers={"retry-after": "3600"})
    with pytest.raises(ProviderRateLimitError) as caught:
        await provider.status("v1")
    assert route.call_count == 1
    assert caught.value.retry_after == 3600.0


# --- content, delete, cancel -------------------------------------------------------------


@pytest.mark.parametrize("variant", ["video", "thumbnail", "spritesheet"])
async def test_open_content_streams_the_variant(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, variant: Any
) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/video_123/content").respond(
        200, content=b"media-bytes", headers={"content-type": "video/mp4"}
    )
    async with provider.open_content("video_123", variant) as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
        assert (stream.content_length, stream.content_type) == (11, "video/mp4")
    assert body == b"media-bytes"
    sent = route.calls.last.request
    assert sent.url.params["variant"] == variant
    assert sent.headers["authorization"] == f"Bearer {CANARY}"


async def test_content_redirect_to_storage_drops_the_key(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/v1/content").respond(
        302, headers={"location": "https://storage.test/bucket/v1.mp4?X-Sig=abc"}
    )
    storage = httpx2_mock.get("https://storage.test/bucket/v1.mp4").respond(200, content=b"mp4")
    async with provider.open_content("v1") as stream:
        assert b"".join([chunk async for chunk in stream.aiter_bytes()]) == b"mp4"
    assert "authorization" not in storage.calls.last.request.headers


async def test_delete(httpx2_mock: respx.Router, provider: OpenAIVideosProvider) -> None:
    route = httpx2_mock.delete(f"{VIDEOS}/v1").respond(
        200, json={"id": "v1", "object": "video.deleted", "deleted": True}
    )
    await provider.delete("v1")
    assert route.call_count == 1


async def test_deleting_a_video_that_is_gone_succeeds(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.delete(f"{VIDEOS}/v1").respond(404)
    await provider.delete("v1")


async def test_delete_refused_is_raised(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.delete(f"{VIDEOS}/v1").respond(409, json={"error": {"message": "still running"}})
    with pytest.raises(ProviderRejectedError, match="still running"):
        await provider.delete("v1")


async def test_cancel_is_not_offered_by_the_api(provider: OpenAIVideosProvider) -> None:
    with pytest.raises(ProviderUnsupportedError):
        await provider.cancel("v1")


# --- find (reconciling an uncertain create) ----------------------------------------------


def page(items: list[dict[str, object]], *, has_more: bool) -> dict[str, object]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def recent(minutes_ago: float = 1) -> int:
    return int((datetime.now(UTC) - timedelta(minutes=minutes_ago)).timestamp())


async def test_find_matches_on_prompt_model_size_and_seconds(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    items = [
        video(id="other-prompt", prompt="a dog", created_at=recent()),
        video(id="other-size", size="1280x720", created_at=recent()),
        video(id="other-seconds", seconds="8", created_at=recent()),
        video(id="other-model", model="sora-2-pro", created_at=recent()),
        video(id="no-prompt", prompt=None, created_at=recent()),
        video(id="match", model="sora-2-2025-10-06", status="in_progress", created_at=recent(2)),
    ]
    route = httpx2_mock.get(VIDEOS).respond(200, json=page(items, has_more=False))
    job = await provider.find(submit_request())
    assert job is not None
    assert (job.external_id, job.status) == ("match", TaskStatus.PROCESSING)
    params = route.calls.last.request.url.params
    assert (params["order"], params["limit"]) == ("desc", "100")
    assert "after" not in params


async def test_find_follows_pages_with_the_cursor(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    first = page([video(id="a", prompt="x", created_at=recent())], has_more=True)
    second = page([video(id="b", created_at=recent())], has_more=False)
    route = httpx2_mock.get(VIDEOS).mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
    )
    job = await provider.find(submit_request())
    assert job is not None and job.external_id == "b"
    assert route.calls.last.request.url.params["after"] == "a"


async def test_find_reads_a_bounded_number_of_pages(httpx2_mock: respx.Router) -> None:
    endless = page([video(id="a", prompt="x", created_at=recent())], has_more=True)
    route = httpx2_mock.get(VIDEOS).respond(200, json=endless)
    adapter = OpenAIVideosProvider(CANARY, base_url=BASE, find_pages=2)
    try:
        assert await adapter.find(submit_request()) is None
    finally:
        await adapter.aclose()
    assert route.call_count == 2


async def test_find_stops_at_videos_older_than_the_window(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    old_match = video(id="old", created_at=recent(60 * 5))
    route = httpx2_mock.get(VIDEOS).respond(200, json=page([old_match], has_more=True))
    assert await provider.find(submit_request()) is None
    assert route.call_count == 1


async def test_find_skips_unreadable_items(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    items = [{"object": "video"}, "junk", video(id="ok", created_at=recent())]
    httpx2_mock.get(VIDEOS).respond(200, json={"object": "list", "data": items, "has_more": False})
    job = await provider.find(submit_request())
    assert job is not None and job.external_id == "ok"


async def test_find_on_an_empty_list(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    httpx2_mock.get(VIDEOS).respond(200, json=page([], has_more=False))
    assert await provider.find(submit_request()) is None


# --- ownership and secrets ---------------------------------------------------------------


async def test_an_injected_client_survives_aclose(httpx2_mock: respx.Router) -> None:
    httpx2_mock.get(f"{VIDEOS}/v1").respond(200, json=video(id="v1"))
    async with httpx2.AsyncClient() as shared:
        adapter = OpenAIVideosProvider(CANARY, base_url=BASE, client=shared)
        await adapter.status("v1")
        await adapter.aclose()
        assert not shared.is_closed


async def test_canary_key_never_leaks(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"code": "invalid_api_key", "message": f"Incorrect API key: {CANARY}"}}
    httpx2_mock.get(f"{VIDEOS}/v1").respond(401, json=echo)
    httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.RemoteProtocolError("dropped"))
    texts = [repr(provider), str(provider), repr(provider.capabilities)]
    errors: list[BaseException] = []
    for call in (provider.status("v1"), provider.submit(submit_request())):
        with pytest.raises(ProviderError) as caught:
            await call
        errors.append(caught.value)
    for error in errors:
        texts += [str(error), repr(error), repr(error.__cause__), str(error.__cause__)]
    texts += [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert caplog.records
    for text in texts:
        assert CANARY not in text


async def test_find_ignores_twins_created_before_the_attempt(
    httpx2_mock: respx.Router, provider: OpenAIVideosProvider
) -> None:
    attempt = datetime.now(UTC) - timedelta(minutes=3)
    older_twin = video(id="twin", created_at=recent(30))
    httpx2_mock.get(VIDEOS).respond(200, json=page([older_twin], has_more=False))
    assert await provider.find(submit_request()) is not None
    assert await provider.find(submit_request(attempted_at=attempt)) is None


def test_repr_survives_a_refused_construction() -> None:
    half_built = OpenAIVideosProvider.__new__(OpenAIVideosProvider)
    assert repr(half_built) == "OpenAIVideosProvider(base_url=None)"
