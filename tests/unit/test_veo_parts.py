"""Veo's parts without a server: reading operations, the inline video scanner, the model rules and
the per-model schedule."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sora_tasks import TaskManager, TaskStatus
from sora_tasks.providers import SubmitRequest, VeoProvider
from sora_tasks.providers._veo_inline import INLINE_MARKER, InlineVideo
from sora_tasks.providers._veo_models import VEO_MODELS, check_request
from sora_tasks.providers._veo_parse import parse_operation

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
NAME = "models/veo-3.1-generate-preview/operations/abc123"


def read(data: dict[str, object]) -> tuple[TaskStatus | None, str, str | None, str | None]:
    job = parse_operation(data, seen_at=NOW)
    code = job.error.code if job.error else None
    message = job.error.message if job.error else None
    return job.status, job.raw_status, code, message


def test_a_running_operation_says_nothing_but_its_name() -> None:
    assert read({"name": NAME}) == (TaskStatus.PROCESSING, "running", None, None)
    assert read({"name": NAME, "done": False})[:2] == (TaskStatus.PROCESSING, "running")


def test_a_done_that_is_not_a_boolean_is_kept_as_an_unknown_word() -> None:
    assert read({"name": NAME, "done": "maybe"})[:2] == (None, "maybe")


def test_a_finished_video_expires_two_days_after_it_was_seen() -> None:
    uri = "https://generativelanguage.googleapis.com/v1beta/files/f1:download?alt=media"
    data = {
        "name": NAME,
        "done": True,
        "response": {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}},
    }
    job = parse_operation(data, seen_at=NOW)
    assert (job.status, job.result_url, job.progress) == (TaskStatus.COMPLETED, uri, 100)
    assert job.expires_at == NOW + timedelta(days=2)


def test_the_safety_filter_is_failed_content_filtered_with_its_reasons() -> None:
    reasons = ["The prompt could not be submitted.", "Support codes: 123"]
    data = {
        "name": NAME,
        "done": True,
        "response": {
            "generateVideoResponse": {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": reasons,
            }
        },
    }
    status, word, code, message = read(data)
    assert (status, word, code) == (TaskStatus.FAILED, "filtered", "content_filtered")
    assert message is not None and all(reason in message for reason in reasons)
    bare = read({"name": NAME, "done": True})
    assert bare[2] == "content_filtered" and bare[3] is not None and "no reason" in bare[3]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": 3, "message": "bad"}, "INVALID_ARGUMENT"),
        ({"code": 99, "message": "odd"}, "rpc_99"),
        ({"message": "no code"}, "operation_failed"),
        (
            {
                "code": 13,
                "message": "x",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"}],
            },
            "R",
        ),
    ],
)
def test_an_error_keeps_the_most_precise_code(error: dict[str, object], code: str) -> None:
    status, word, got, message = read({"name": NAME, "done": True, "error": error})
    assert (status, word, got) == (TaskStatus.FAILED, "error", code)
    assert message


def test_an_operation_without_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no name"):
        parse_operation({"done": True}, seen_at=NOW)


def operation_with(video: bytes, *, escaped: bool = False) -> bytes:
    encoded = base64.b64encode(video).decode()
    body = json.dumps(
        {
            "name": NAME,
            "done": True,
            "response": {"videos": [{"bytesBase64Encoded": "SLOT", "mimeType": "video/mp4"}]},
        }
    )
    if escaped:
        encoded = encoded.replace("/", "\\/")
    return body.replace("SLOT", encoded).encode()


@settings(max_examples=60, deadline=None)
@given(
    video=st.binary(min_size=0, max_size=600),
    cuts=st.lists(st.integers(min_value=1, max_value=97), max_size=40),
    escaped=st.booleans(),
)
def test_the_scanner_decodes_the_video_however_the_answer_is_cut(
    video: bytes, cuts: list[int], escaped: bool
) -> None:
    body = operation_with(video, escaped=escaped)
    scan = InlineVideo(max_json_bytes=1024)
    decoded = b""
    start = 0
    for size in [*cuts, len(body)]:
        decoded += scan.feed(body[start : start + size])
        start += size
    decoded += scan.feed(body[start:])
    scan.finish()
    assert decoded == video
    kept = json.loads(bytes(scan.json))
    assert kept["response"]["videos"][0]["bytesBase64Encoded"] == INLINE_MARKER
    assert scan.found


def test_the_scanner_bounds_what_it_keeps_and_refuses_a_cut_off_video() -> None:
    scan = InlineVideo(max_json_bytes=16)
    with pytest.raises(ValueError, match="16-byte limit"):
        scan.feed(b'{"name": "' + b"x" * 200 + b'"}')
    body = operation_with(b"\x00" * 300)
    cut = InlineVideo(max_json_bytes=1024)
    cut.feed(body[: len(body) // 2])
    with pytest.raises(ValueError, match="inside its inline video"):
        cut.finish()


def request(**fields: object) -> SubmitRequest:
    base: dict[str, object] = {
        "task_id": "",
        "idempotency_key": "",
        "prompt": "p",
        "model": "veo-3.0-generate-001",
        "size": "1280x720",
        "seconds": 6,
        "resolution": "720p",
    }
    return SubmitRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_only_the_models_full_length_resolutions_need_8_seconds() -> None:
    spec = VEO_MODELS["veo-3.0-generate-001"]
    check_request(spec, request())
    with pytest.raises(ValueError, match="1080p only at 8 seconds"):
        check_request(spec, request(resolution="1080p"))
    check_request(spec, request(resolution="1080p", seconds=8))
    check_request(None, request(resolution="1080p"))  # a model the table lacks: the API decides


@pytest.mark.anyio
async def test_each_model_starts_the_schedule_from_its_own_render_time() -> None:
    provider = VeoProvider("AIza-unit", base_url="http://127.0.0.1:9/v1beta")
    async with TaskManager(providers={"veo": provider}, poll=False) as manager:
        ops = manager._ops
        standard = ops.schedule_of("veo", "veo-3.1-generate-preview").expected_seconds
        fast = ops.schedule_of("veo", "veo-3.1-fast-generate-preview").expected_seconds
        unknown = ops.schedule_of("veo", "veo-9-unknown").expected_seconds
    assert (standard, fast) == (90.0, 50.0)
    assert unknown == provider.capabilities.schedule.expected_seconds == 90.0


@pytest.mark.anyio
async def test_a_file_is_downloaded_through_our_base_url_with_the_key() -> None:
    """Behind a proxy the operation still names Google's host: the download goes to the proxy,
    which has the key, and never to a host the calls do not go to."""
    seen: list[httpx2.Request] = []
    google = "https://generativelanguage.googleapis.com/v1beta/files/f1:download?alt=media"

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.endswith(":download"):
            return httpx2.Response(200, content=b"video bytes")
        done = {"generateVideoResponse": {"generatedSamples": [{"video": {"uri": google}}]}}
        return httpx2.Response(200, json={"name": NAME, "done": True, "response": done})

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(answer))
    provider = VeoProvider(
        "AIza-proxy-key", base_url="https://proxy.example/gemini/v1beta", client=client
    )
    async with provider.open_content(NAME) as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    await client.aclose()
    assert body == b"video bytes"
    download = seen[-1]
    assert str(download.url) == "https://proxy.example/gemini/v1beta/files/f1:download?alt=media"
    assert download.headers["x-goog-api-key"] == "AIza-proxy-key"
