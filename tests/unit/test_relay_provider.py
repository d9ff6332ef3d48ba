"""MultipartRelayProvider and its dialect: the pure readers and writers, then the wire."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore2
import pytest
import respx

from sora_tasks._exceptions import ProviderError, SubmissionUncertainError
from sora_tasks._models import ImageData, TaskResult, TaskStatus
from sora_tasks.providers import Backoff, MultipartRelayProvider, RelayConfig, SubmitRequest
from sora_tasks.providers._parsing import (
    DEFAULT_STATUS_WORDS,
    MalformedResponseError,
    lookup,
    parse_progress,
    parse_timestamp,
)
from sora_tasks.providers._relay_config import form_parts, parse_relay_job
from tests.factories import make_task
from tests.forms import parse_form

pytestmark = pytest.mark.anyio

CANARY = "sk-canary-relay-3f9a-DO-NOT-LEAK"
ORIGIN = "https://relay.test"
VIDEOS = f"{ORIGIN}/v1/videos"


def submit_request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_00000000-0000-0000-0000-000000000002",
        "idempotency_key": "sub_relay1",
        "prompt": "a paper boat in the rain",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": 8,
        **overrides,
    }
    return SubmitRequest(**fields)


IMAGE = ImageData(b"\x89PNG\r\n\x1a\nfake", "image/png", 1280, 720, "")


# --- progress, timestamps, paths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (36, 36),
        (0, 0),
        (100, 100),
        (140, 100),
        (-3, 0),
        (0.36, 36),
        (1.0, 100),
        (0.0, 0),
        (1, 1),
        (36.9, 36),
        ("36%", 36),
        (" 36 % ", 36),
        ("36.5%", 36),
        ("0.5%", 0),
        ("0.36", 36),
        ("36", 36),
        ("nan", None),
        ("inf%", None),
        ("half", None),
        ("", None),
        (None, None),
        (True, None),
        ([36], None),
        (float("nan"), None),
    ],
)
def test_parse_progress(value: object, expected: int | None) -> None:
    assert parse_progress(value) == expected


T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (int(T.timestamp()), T),
        (T.timestamp(), T),
        (int(T.timestamp()) * 1000, T),
        (str(int(T.timestamp())), T),
        (str(int(T.timestamp()) * 1000), T),
        ("2026-01-02T03:04:05Z", T),
        ("2026-01-02T04:04:05+01:00", T),
        ("2026-01-02T03:04:05", T),
        ("2026-01-02 03:04:05", T),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
        (float("inf"), None),
        (1e300, None),
        ({"s": 1}, None),
    ],
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("video_url", "https://a"),
        ("metadata.url", "https://b"),
        ("result_urls.0", "https://c"),
        ("result_urls.1", "https://d"),
        ("result_urls.2", None),
        ("result_urls.x", None),
        ("metadata.missing", None),
        ("video_url.deeper", None),
        ("nothing", None),
    ],
)
def test_lookup(path: str, expected: object) -> None:
    data = {
        "video_url": "https://a",
        "metadata": {"url": "https://b"},
        "result_urls": ["https://c", "https://d"],
    }
    assert lookup(data, path) == expected


# --- statuses, errors, ids, envelopes ----------------------------------------------------


@pytest.mark.parametrize(
    ("words", "status"),
    [
        ("queued pending submitted not_start notstarted preparing created starting", "QUEUED"),
        ("processing in_progress running generating", "PROCESSING"),
        ("completed complete success succeeded finished", "COMPLETED"),
        ("failed failure fail error", "FAILED"),
        ("cancelled canceled", "CANCELLED"),
    ],
)
def test_default_status_synonyms_in_any_case(words: str, status: str) -> None:
    for word in words.split():
        for spelling in (word, word.upper(), word.title(), f" {word} "):
            job = parse_relay_job({"id": "t", "status": spelling}, RelayConfig(), {})
            assert job.status is TaskStatus(status), spelling
            assert job.raw_status == spelling.strip()


def test_expired_relay_job() -> None:
    job = parse_relay_job({"id": "t", "status": "EXPIRED"}, RelayConfig(), {})
    assert (job.status, job.expired) == (TaskStatus.FAILED, True)
    assert job.error is not None and job.error.code == "expired"


def test_unknown_relay_status_is_kept_raw() -> None:
    job = parse_relay_job({"id": "t", "status": "moderating"}, RelayConfig(), {})
    assert (job.status, job.raw_status) == (None, "moderating")


def test_custom_status_words_are_case_insensitive() -> None:
    config = RelayConfig(status_words={**DEFAULT_STATUS_WORDS, "Done": "COMPLETED"})
    job = parse_relay_job({"id": "t", "status": "DONE"}, config, {})
    assert job.status is TaskStatus.COMPLETED


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ({"error": {"code": "nsfw", "message": "blocked"}}, "nsfw", "blocked"),
        ({"error": {"message": "no code"}}, "provider_error", "no code"),
        ({"error": "quota exhausted"}, "provider_error", "quota exhausted"),
        ({"error_code": "E1001"}, "E1001", "E1001"),
        ({"error_code": 1001, "error_message": "bad size"}, "1001", "bad size"),
        ({"fail_reason": "content policy"}, "provider_error", "content policy"),
        ({"error": None, "error_code": "E2"}, "E2", "E2"),
    ],
)
def test_error_shapes(payload: dict[str, object], code: str, message: str) -> None:
    job = parse_relay_job({"id": "t", "status": "failed", **payload}, RelayConfig(), {})
    assert job.error is not None
    assert (job.error.code, job.error.message) == (code, message)


def test_no_error_fields_means_no_error() -> None:
    job = parse_relay_job({"id": "t", "status": "failed", "error": ""}, RelayConfig(), {})
    assert job.error is None


def test_task_id_state_and_envelope() -> None:
    data = {
        "code": 0,
        "message": "success",
        "data": {
            "task_id": "tk_9",
            "state": "running",
            "progress": "45%",
            "created": 1_767_323_045,
        },
    }
    job = parse_relay_job(data, RelayConfig(), {"openai-poll-after-ms": "5000"})
    assert (job.external_id, job.status, job.progress) == ("tk_9", TaskStatus.PROCESSING, 45)
    assert job.created_at == T
    assert job.poll_after == 5.0
    assert job.error is None


def test_envelope_is_not_unwrapped_when_the_top_level_has_the_id() -> None:
    data = {"id": "outer", "status": "queued", "data": {"id": "inner", "status": "failed"}}
    assert parse_relay_job(data, RelayConfig(), {}).external_id == "outer"


def test_numeric_ids_are_read_as_text() -> None:
    assert parse_relay_job({"task_id": 12345}, RelayConfig(), {}).external_id == "12345"


def test_a_job_without_an_id_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="id, task_id"):
        parse_relay_job({"status": "queued"}, RelayConfig(), {})


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"video_url": "https://a/1.mp4", "url": "https://b"}, "https://a/1.mp4"),
        ({"url": "https://b/2.mp4", "download_url": "https://c"}, "https://b/2.mp4"),
        ({"download_url": "https://c/3.mp4"}, "https://c/3.mp4"),
        ({"metadata": {"url": "https://d/4.mp4"}}, "https://d/4.mp4"),
        ({"result_urls": ["https://e/5.mp4", "https://e/6.mp4"]}, "https://e/5.mp4"),
        ({"video_url": "", "result_urls": []}, None),
        ({}, None),
    ],
)
def test_result_locator_chain(fields: dict[str, object], url: str | None) -> None:
    job = parse_relay_job({"id": "t", "status": "completed", **fields}, RelayConfig(), {})
    assert job.result_url == url


def test_done_without_a_video_is_content_filtered_unless_a_content_path_remains() -> None:
    data = {"id": "t", "status": "success", "video_url": None}
    nowhere = parse_relay_job(data, RelayConfig(content_path=None), {})
    assert nowhere.status is TaskStatus.FAILED
    assert nowhere.error is not None and nowhere.error.code == "content_filtered"
    fallback = parse_relay_job(data, RelayConfig(), {})
    assert (fallback.status, fallback.error) == (TaskStatus.COMPLETED, None)


def test_timestamps_in_each_form() -> None:
    data = {
        "id": "t",
        "created_at": 1_767_323_045_000,
        "finished_at": "2026-01-02T03:04:05Z",
        "expire_at": "1767323045",
    }
    job = parse_relay_job(data, RelayConfig(), {})
    assert job.created_at == job.completed_at == job.expires_at == T


def test_config_normalises_the_path_prefix() -> None:
    assert RelayConfig(path_prefix="sora/v1/videos/").path_prefix == "/sora/v1/videos"


def test_config_rejects_unknown_knobs() -> None:
    with pytest.raises(ValueError, match="extra"):
        RelayConfig(mystery=True)  # type: ignore[call-arg]


# --- the multipart form ------------------------------------------------------------------


def texts(parts: dict[str, tuple[str | None, bytes | str, str | None]]) -> dict[str, object]:
    return {name: value for name, (filename, value, _) in parts.items() if filename is None}


def test_default_form_fields() -> None:
    assert texts(form_parts(submit_request(), RelayConfig())) == {
        "prompt": "a paper boat in the rain",
        "model": "sora-2",
        "seconds": "8",
        "size": "1280x720",
    }


@pytest.mark.parametrize(
    ("size_format", "size", "expected"),
    [
        ("aspect_ratio", "1280x720", "16:9"),
        ("aspect_ratio", "720x1280", "9:16"),
        ("aspect_ratio", "1792x1024", "16:9"),
        ("aspect_ratio", "1024x1024", "1:1"),
        ("orientation", "1280x720", "landscape"),
        ("orientation", "1024x1792", "portrait"),
        ("orientation", "512x512", "square"),
        ("size", "1024x1792", "1024x1792"),
    ],
)
def test_size_formats(size_format: Any, size: str, expected: str) -> None:
    config = RelayConfig(size_field="aspect_ratio", size_format=size_format)
    assert texts(form_parts(submit_request(size=size), config))["aspect_ratio"] == expected


def test_renamed_fields_explicit_size_values_and_flags() -> None:
    config = RelayConfig(
        seconds_field="duration",
        size_field="orientation",
        size_format="orientation",
        size_values={"1792x1024": "landscape-hd"},
        extra_fields={"hd": True, "watermark": False, "private": 1},
    )
    request = submit_request(
        size="1792x1024", seconds=12, provider_options={"style": "anime", "skip": [1]}
    )
    assert texts(form_parts(request, config)) == {
        "prompt": "a paper boat in the rain",
        "model": "sora-2",
        "duration": "12",
        "orientation": "landscape-hd",
        "hd": "true",
        "watermark": "false",
        "private": "1",
        "style": "anime",
        "skip": "[1]",
    }


def test_image_as_a_file_part() -> None:
    parts = form_parts(submit_request(image=IMAGE), RelayConfig())
    assert parts["input_reference"] == ("reference.png", IMAGE.data, "image/png")


def test_image_as_a_data_url_in_url_mode() -> None:
    parts = form_parts(
        submit_request(image=IMAGE), RelayConfig(image_mode="url", image_field="image")
    )
    encoded = base64.b64encode(IMAGE.data).decode()
    assert parts["image"] == (None, f"data:image/png;base64,{encoded}", None)


def test_image_url_passes_through_as_a_string() -> None:
    parts = form_parts(submit_request(image_url="https://img.test/a.png"), RelayConfig())
    assert parts["input_reference"] == (None, "https://img.test/a.png", None)


# --- the wire ----------------------------------------------------------------------------


@pytest.fixture
async def relay() -> AsyncIterator[MultipartRelayProvider]:
    provider = MultipartRelayProvider(
        CANARY, base_url=ORIGIN, backoff=Backoff(initial=0.0, maximum=0.0)
    )
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_create_is_always_multipart(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json={"task_id": "tk_1", "status": "pending"})
    job = await relay.submit(submit_request())
    sent = route.calls.last.request
    form = parse_form(sent.headers["content-type"], sent.content)
    assert {name: part.text for name, part in form.items()} == {
        "prompt": "a paper boat in the rain",
        "model": "sora-2",
        "seconds": "8",
        "size": "1280x720",
    }
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert sent.headers["idempotency-key"] == "sub_relay1"
    assert (job.external_id, job.status) == ("tk_1", TaskStatus.QUEUED)


async def test_create_with_a_file_part(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json={"id": "tk_2"})
    await relay.submit(submit_request(image=IMAGE))
    sent = route.calls.last.request
    part = parse_form(sent.headers["content-type"], sent.content)["input_reference"]
    assert (part.filename, part.content_type, part.value) == (
        "reference.png",
        "image/png",
        IMAGE.data,
    )


async def test_raw_key_custom_header_and_prefix(httpx2_mock: respx.Router) -> None:
    config = RelayConfig(auth_scheme="raw", auth_header="X-Api-Key", path_prefix="/sora/v1/videos")
    route = httpx2_mock.post(f"{ORIGIN}/api/sora/v1/videos").respond(200, json={"id": "tk_3"})
    provider = MultipartRelayProvider(CANARY, base_url=f"{ORIGIN}/api", config=config)
    try:
        await provider.submit(submit_request())
    finally:
        await provider.aclose()
    headers = route.calls.last.request.headers
    assert headers["x-api-key"] == CANARY
    assert "authorization" not in headers


async def test_raw_key_in_authorization(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.get(f"{VIDEOS}/tk").respond(200, json={"id": "tk", "status": "running"})
    provider = MultipartRelayProvider(
        CANARY, base_url=ORIGIN, config=RelayConfig(auth_scheme="raw")
    )
    try:
        await provider.status("tk")
    finally:
        await provider.aclose()
    assert route.calls.last.request.headers["authorization"] == CANARY


async def test_create_answer_without_a_job_is_uncertain(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).respond(200, json={"code": 500, "message": "busy"})
    with pytest.raises(SubmissionUncertainError, match="busy"):
        await relay.submit(submit_request())
    assert route.call_count == 1


async def test_create_dropped_after_sending_is_uncertain_once(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    route = httpx2_mock.post(VIDEOS).mock(side_effect=httpcore2.ReadError("reset"))
    with pytest.raises(SubmissionUncertainError):
        await relay.submit(submit_request())
    assert route.call_count == 1


async def test_status(httpx2_mock: respx.Router, relay: MultipartRelayProvider) -> None:
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(
        200, json={"data": {"task_id": "tk_1", "status": "SUCCESS", "progress": 1.0}}
    )
    job = await relay.status("tk_1")
    assert (job.status, job.progress) == (TaskStatus.COMPLETED, 100)


async def test_unreadable_status_is_a_provider_error(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json={"status": "queued"})
    with pytest.raises(ProviderError, match="unreadable"):
        await relay.status("tk_1")


async def read(relay: MultipartRelayProvider, external_id: str = "tk_1") -> bytes:
    async with relay.open_content(external_id) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


async def test_content_from_a_foreign_result_url_goes_without_the_key(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    done = {"id": "tk_1", "status": "completed", "video_url": "https://cdn.test/tk_1.mp4"}
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json=done)
    cdn = httpx2_mock.get("https://cdn.test/tk_1.mp4").respond(200, content=b"mp4")
    assert await read(relay) == b"mp4"
    assert "authorization" not in cdn.calls.last.request.headers


async def test_content_uses_the_result_url_stored_in_the_task_without_asking_again(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    cdn = httpx2_mock.get("https://cdn.test/tk_1.mp4").respond(200, content=b"mp4")
    now = datetime.now(UTC)
    task = make_task(
        now,
        external_id="tk_1",
        result=TaskResult(url="https://cdn.test/tk_1.mp4", expires_at=now + timedelta(hours=1)),
    )
    async with relay.open_content("tk_1", task=task) as stream:
        assert b"".join([chunk async for chunk in stream.aiter_bytes()]) == b"mp4"
    # the mock router fails the test on any request it was not told of, a status call included
    assert cdn.call_count == 1


async def test_an_expired_stored_result_url_is_asked_for_again(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    done = {"id": "tk_1", "status": "completed", "video_url": "https://cdn.test/fresh.mp4"}
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json=done)
    httpx2_mock.get("https://cdn.test/fresh.mp4").respond(200, content=b"fresh")
    now = datetime.now(UTC)
    stale = TaskResult(url="https://cdn.test/old.mp4", expires_at=now - timedelta(seconds=1))
    task = make_task(now, external_id="tk_1", result=stale)
    async with relay.open_content("tk_1", task=task) as stream:
        assert b"".join([chunk async for chunk in stream.aiter_bytes()]) == b"fresh"


async def test_content_from_a_relative_result_url_keeps_the_key(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    done = {"id": "tk_1", "status": "completed", "url": "/files/tk_1.mp4"}
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json=done)
    own = httpx2_mock.get(f"{ORIGIN}/files/tk_1.mp4").respond(200, content=b"mp4")
    assert await read(relay) == b"mp4"
    assert own.calls.last.request.headers["authorization"] == f"Bearer {CANARY}"


async def test_content_falls_back_to_the_content_path(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider
) -> None:
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json={"id": "tk_1", "status": "completed"})
    endpoint = httpx2_mock.get(f"{VIDEOS}/tk_1/content").respond(200, content=b"mp4")
    assert await read(relay) == b"mp4"
    assert endpoint.call_count == 1


async def test_content_without_url_or_endpoint_is_an_error(httpx2_mock: respx.Router) -> None:
    httpx2_mock.get(f"{VIDEOS}/tk_1").respond(200, json={"id": "tk_1", "status": "completed"})
    provider = MultipartRelayProvider(
        CANARY, base_url=ORIGIN, config=RelayConfig(content_path=None)
    )
    try:
        with pytest.raises(ProviderError, match="no result URL"):
            await read(provider)
    finally:
        await provider.aclose()


async def test_default_capabilities(relay: MultipartRelayProvider) -> None:
    caps = relay.capabilities
    assert caps.models is None and caps.sizes is None and caps.seconds is None
    assert caps.image_upload and not caps.image_url
    assert not (caps.can_cancel or caps.can_delete or caps.can_list)
    url_mode = MultipartRelayProvider(CANARY, base_url=ORIGIN, config=RelayConfig(image_mode="url"))
    try:
        assert url_mode.capabilities.image_url
    finally:
        await url_mode.aclose()


async def test_canary_key_never_leaks(
    httpx2_mock: respx.Router, relay: MultipartRelayProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpx2_mock.post(VIDEOS).respond(200, json={"error": f"bad key {CANARY}"})
    httpx2_mock.get(f"{VIDEOS}/tk").respond(403, json={"message": f"key {CANARY} refused"})
    texts_seen = [repr(relay), str(relay), repr(relay.config)]
    for call in (relay.submit(submit_request()), relay.status("tk")):
        with pytest.raises(ProviderError) as caught:
            await call
        texts_seen += [str(caught.value), repr(caught.value)]
    texts_seen += [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert caplog.records
    for text in texts_seen:
        assert CANARY not in text
