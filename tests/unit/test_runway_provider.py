"""RunwayProvider against a mocked api.dev.runwayml.com: the model table, the create bodies,
task parsing, and the branches the simulator does not reach."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx

from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderResponseError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData, TaskStatus
from sora_tasks.providers import Backoff, RunwayProvider, RunwayRequestError, SubmitRequest
from sora_tasks.providers._runway_models import MAX_DATA_URI_CHARS, RUNWAY_MODELS
from sora_tasks.providers._runway_parse import parse_task, progress_of
from tests.images import make_image

pytestmark = pytest.mark.anyio

CANARY = "key_canary-runway-0b7e-DO-NOT-LEAK"
BASE = "https://runway.test/v1"
NO_WAIT = Backoff(initial=0.0, maximum=0.0)
OUT = "https://dnznrvs05pmza.cloudfront.net/output.mp4?_jwt=signed"


def request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_1",
        "idempotency_key": "sub_1",
        "prompt": "a red fox in snow",
        "model": "veo3.1",
        "size": "1280x720",
        "seconds": 8,
        **overrides,
    }
    return SubmitRequest(**fields)


def png() -> ImageData:
    return ImageData(make_image(64, 36), "image/png", 64, 36, "0" * 64)


@pytest.fixture
async def provider() -> AsyncIterator[RunwayProvider]:
    adapter = RunwayProvider(CANARY, base_url=BASE, backoff=NO_WAIT)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


def test_the_secret_falls_back_to_the_environment_and_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNWAYML_API_SECRET", raising=False)
    with pytest.raises(InvalidRequestError, match="RUNWAYML_API_SECRET") as caught:
        RunwayProvider()
    assert caught.value.field == "api_key"
    monkeypatch.setenv("RUNWAYML_API_SECRET", "key_env")
    assert RunwayProvider().capabilities.default_model == "gen4_turbo"


async def test_capabilities_come_from_the_model_table(provider: RunwayProvider) -> None:
    veo = provider.capabilities_for("veo3.1")
    assert veo is not None
    assert veo.sizes == frozenset({"1280x720", "720x1280", "1920x1080", "1080x1920"})
    assert veo.seconds == frozenset({4, 6, 8}) and veo.audio == frozenset({True, False})
    assert veo.last_frame and veo.negative_prompt and veo.seed
    assert veo.min_poll_interval == 5.0 and veo.can_cancel and veo.can_delete
    assert veo.max_image_bytes is not None
    assert 4 * veo.max_image_bytes // 3 + len("data:image/jpeg;base64,") <= MAX_DATA_URI_CHARS
    gen45 = provider.capabilities_for("gen4.5")
    assert gen45 is not None and "1584x672" in (gen45.sizes or set())
    assert gen45.seconds == frozenset(range(2, 11)) and not gen45.audio
    assert provider.capabilities_for("gen3a_turbo") is None
    assert provider.capabilities.models is None
    assert provider.capabilities.schedule.expected_seconds == (
        RUNWAY_MODELS["gen4_turbo"].expected_seconds
    )


async def test_the_secret_stays_out_of_the_repr(provider: RunwayProvider) -> None:
    assert CANARY not in repr(provider) and "gen4_turbo" in repr(provider)


async def test_text_alone_goes_to_text_to_video_with_the_version_header(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/text_to_video").respond(200, json={"id": "t-1"})
    job = await provider.submit(request(seed=3, audio=True))
    assert (job.external_id, job.status, job.raw_status) == ("t-1", TaskStatus.QUEUED, "PENDING")
    sent = route.calls.last.request
    assert sent.headers["x-runway-version"] == "2024-11-06"
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert sent_json(route) == {
        "model": "veo3.1",
        "promptText": "a red fox in snow",
        "ratio": "1280:720",
        "duration": 8,
        "seed": 3,
        "audio": True,
    }


async def test_a_first_frame_goes_to_image_to_video_as_a_uri(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/image_to_video").respond(200, json={"id": "t-2"})
    await provider.submit(
        request(model="gen4_turbo", seconds=10, size="1584x672", image_url="https://i.test/a.png")
    )
    assert sent_json(route) == {
        "model": "gen4_turbo",
        "promptText": "a red fox in snow",
        "promptImage": "https://i.test/a.png",
        "ratio": "1584:672",
        "duration": 10,
    }


async def test_an_unknown_model_gets_the_common_fields_and_the_options(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/text_to_video").respond(200, json={"id": "t-3"})
    await provider.submit(
        request(model="seedance2", seconds=12, provider_options={"ratio": "16:9"})
    )
    assert sent_json(route) == {
        "model": "seedance2",
        "promptText": "a red fox in snow",
        "ratio": "16:9",
        "duration": 12,
    }


async def test_an_image_too_large_to_inline_is_refused(provider: RunwayProvider) -> None:
    big = ImageData(b"\x89PNG" + bytes(4_000_000), "image/png", 64, 36, "0" * 64)
    with pytest.raises(RunwayRequestError, match="HTTPS URL") as caught:
        await provider.submit(request(image=big))
    assert (caught.value.field, caught.value.limit) == ("reference_image", MAX_DATA_URI_CHARS)


async def test_a_last_frame_only_model_refuses_one(provider: RunwayProvider) -> None:
    with pytest.raises(RunwayRequestError, match="no last frame") as caught:
        await provider.submit(request(model="gen4.5", seconds=5, image=png(), last_frame=png()))
    assert caught.value.field == "last_frame"


async def test_a_create_answer_without_an_id_is_uncertain(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/text_to_video").respond(200, json={"ok": True})
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(request())
    assert route.call_count == 1


async def test_a_refused_create_names_runways_error(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.post(f"{BASE}/text_to_video").respond(
        400, json={"error": "Validation of body failed", "issues": []}
    )
    with pytest.raises(ProviderError, match="Validation of body failed"):
        await provider.submit(request())


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("PENDING", TaskStatus.QUEUED),
        ("THROTTLED", TaskStatus.QUEUED),
        ("RUNNING", TaskStatus.PROCESSING),
        ("SUCCEEDED", TaskStatus.COMPLETED),
        ("FAILED", TaskStatus.FAILED),
        ("CANCELLED", TaskStatus.CANCELLED),
        ("CANCELED", TaskStatus.CANCELLED),
        ("ARCHIVED", None),
    ],
)
def test_every_status_word_maps(word: str, status: TaskStatus | None) -> None:
    job = parse_task({"id": "t", "status": word, "output": [OUT], "failure": "no"})
    assert (job.status, job.raw_status) == (status, word)


@pytest.mark.parametrize(
    ("value", "percent"),
    [(0, 0), (0.0, 0), (0.37, 37), (0.999, 100), (1, 100), (1.5, 100), (-1, 0), ("0.5", None)],
)
def test_progress_is_a_fraction(value: object, percent: int | None) -> None:
    assert progress_of(value) == percent


def test_a_success_carries_its_url_and_a_failure_its_code() -> None:
    done = parse_task(
        {"id": "t", "status": "SUCCEEDED", "output": [OUT], "createdAt": "2026-11-30T05:00:00Z"}
    )
    assert (done.result_url, done.progress) == (OUT, 100)
    assert done.created_at is not None and done.created_at.year == 2026
    failed = parse_task(
        {
            "id": "t",
            "status": "FAILED",
            "failure": "Bad output",
            "failureCode": "INTERNAL.BAD_OUTPUT",
        }
    )
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("INTERNAL.BAD_OUTPUT", "Bad output")
    bare = parse_task({"id": "t", "status": "FAILED"})
    assert bare.error is not None and bare.error.code == "task_failed"


@pytest.mark.parametrize("output", [[], None, ["not a url"]])
def test_a_success_without_a_video_is_failed_not_completed(output: object) -> None:
    job = parse_task({"id": "t", "status": "SUCCEEDED", "output": output})
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and job.error.code == "content_filtered"


async def test_status_refuses_an_answer_about_another_task(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/tasks/t-1").respond(200, json={"id": "t-2", "status": "RUNNING"})
    with pytest.raises(ProviderResponseError, match="t-2"):
        await provider.status("t-1")


async def test_a_task_id_is_quoted_into_the_path(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.delete(f"{BASE}/tasks/a%2Fb").respond(204)
    assert await provider.cancel("a/b") is None
    assert route.called


async def test_content_streams_the_output_without_the_secret(
    provider: RunwayProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/tasks/t-1").respond(
        200, json={"id": "t-1", "status": "SUCCEEDED", "output": [OUT]}
    )
    file = httpx2_mock.get(OUT).respond(200, content=b"mp4-bytes")
    async with provider.open_content("t-1") as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert body == b"mp4-bytes"
    assert "authorization" not in file.calls.last.request.headers


async def test_a_thumbnail_is_not_offered(provider: RunwayProvider) -> None:
    with pytest.raises(ProviderError, match="no thumbnail"):
        async with provider.open_content("t-1", "thumbnail"):
            pass
