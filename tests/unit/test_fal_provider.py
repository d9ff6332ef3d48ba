"""FalProvider's mapping branches against a mocked queue: inputs per model, answers per word."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx

from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderRejectedError,
    ProviderResponseError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData, TaskStatus
from sora_tasks.providers import Backoff, FalProvider
from sora_tasks.providers._fal_models import FAL_MODELS, fal_input
from sora_tasks.providers.fal import app_of
from tests.factories import submit_request

pytestmark = pytest.mark.anyio

CANARY = "fal-canary-5f1e-DO-NOT-LEAK"
BASE = "https://queue.fal.test"
APP = "fal-ai/veo3.1"
RID = "0c6c9a3e-6a1d-4f43-9d0b-1f5e2a7b8c90"
JOB = f"{APP}/requests/{RID}"
NO_WAIT = Backoff(initial=0.0, maximum=0.0)


def png() -> ImageData:
    return ImageData(b"\x89PNG\r\n\x1a\nfake", "image/png", 64, 64, "0" * 64)


def veo(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model": APP,
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return submit_request(**fields)


def queued(request_id: str = RID, app: str = APP) -> dict[str, object]:
    base = f"{BASE}/{app}/requests/{request_id}"
    return {
        "status": "IN_QUEUE",
        "request_id": request_id,
        "queue_position": 4,
        "response_url": base,
        "status_url": base + "/status",
        "cancel_url": base + "/cancel",
    }


@pytest.fixture
async def provider() -> AsyncIterator[FalProvider]:
    adapter = FalProvider(CANARY, base_url=BASE, backoff=NO_WAIT)
    try:
        yield adapter
    finally:
        await adapter.aclose()


# --- construction and capabilities ---------------------------------------------------------


def test_the_key_falls_back_to_fal_key_and_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="FAL_KEY"):
        FalProvider()
    monkeypatch.setenv("FAL_KEY", CANARY)
    assert CANARY not in repr(FalProvider())


def test_a_model_id_without_an_app_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="owner/app") as caught:
        FalProvider(CANARY, model="veo3.1")
    assert caught.value.field == "model"


@pytest.mark.parametrize(
    ("model", "app"),
    [
        ("fal-ai/veo3.1", "fal-ai/veo3.1"),
        ("fal-ai/veo3.1/fast/image-to-video", "fal-ai/veo3.1"),
        ("wan/v2.6/text-to-video", "wan/v2.6"),
        ("workflows/someone/flow/sub", "workflows/someone/flow"),
    ],
)
def test_the_app_of_a_model_drops_its_sub_path(model: str, app: str) -> None:
    assert app_of(model) == app


def test_capabilities_are_per_model_and_unknown_models_have_none() -> None:
    provider = FalProvider(CANARY)
    veo = provider.capabilities_for("fal-ai/veo3.1")
    assert veo is not None and veo.seconds == frozenset({4, 6, 8})
    assert veo.resolutions == frozenset({"720p", "1080p", "4k"}) and veo.audio == {True, False}
    kling = provider.capabilities_for("fal-ai/kling-video/v3/pro/image-to-video")
    assert kling is not None and kling.last_frame and kling.image_upload
    assert kling.resolutions is None and kling.can_cancel
    assert provider.capabilities_for("someone/else") is None
    assert provider.capabilities.models is None  # any model may be asked for
    assert provider.capabilities.default_model == "fal-ai/veo3.1"


def test_every_table_model_names_its_source_and_a_default_it_accepts() -> None:
    for model in FAL_MODELS.values():
        assert model.source.startswith("https://"), model.id
        assert model.default_seconds in model.seconds, model.id
        app_of(model.id)


# --- inputs ------------------------------------------------------------------------------


def test_veo_input_uses_its_own_names_and_formats() -> None:
    body = fal_input(
        veo(seconds=6, negative_prompt="blur", seed=3, audio=False), FAL_MODELS["fal-ai/veo3.1"]
    )
    assert body == {
        "prompt": "a calico cat playing piano",
        "duration": "6s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "negative_prompt": "blur",
        "seed": 3,
        "generate_audio": False,
    }


def test_fields_a_model_does_not_take_are_not_sent() -> None:
    body = fal_input(
        veo(model="fal-ai/minimax/hailuo-02/standard/image-to-video", seconds=6, seed=9,
            resolution="768p", image_url="https://img.test/a.png"),
        FAL_MODELS["fal-ai/minimax/hailuo-02/standard/image-to-video"],
    )  # fmt: skip
    assert body == {
        "prompt": "a calico cat playing piano",
        "duration": "6",
        "resolution": "768P",
        "image_url": "https://img.test/a.png",
    }


def test_first_and_last_frames_go_as_data_uris_or_urls() -> None:
    model = FAL_MODELS["fal-ai/kling-video/v3/pro/image-to-video"]
    body = fal_input(veo(seconds=5, image=png(), last_frame="https://img.test/end.png"), model)
    encoded = base64.b64encode(png().data).decode()
    assert body["start_image_url"] == f"data:image/png;base64,{encoded}"
    assert body["end_image_url"] == "https://img.test/end.png"


def test_url_only_refuses_inline_bytes_before_sending() -> None:
    model = FAL_MODELS["fal-ai/kling-video/v3/pro/image-to-video"]
    with pytest.raises(InvalidRequestError, match="url_only") as caught:
        fal_input(veo(seconds=5, image=png()), model, images="url_only")
    assert caught.value.field == "reference_image"


def test_an_image_model_without_a_first_frame_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="reference_image"):
        fal_input(veo(), FAL_MODELS["fal-ai/veo3.1/image-to-video"])


def test_reference_images_go_as_a_list() -> None:
    model = FAL_MODELS["fal-ai/veo3.1/reference-to-video"]
    body = fal_input(veo(reference_images=(png(), "https://img.test/2.png")), model)
    assert isinstance(body["image_urls"], list) and len(body["image_urls"]) == 2
    assert body["image_urls"][1] == "https://img.test/2.png"


def test_provider_options_go_over_the_mapped_input() -> None:
    body = fal_input(
        veo(provider_options={"duration": "4s", "auto_fix": False}), FAL_MODELS["fal-ai/veo3.1"]
    )
    assert body["duration"] == "4s" and body["auto_fix"] is False


def test_an_unknown_model_gets_prompt_first_frame_and_options_only() -> None:
    body = fal_input(
        veo(model="someone/model", image_url="https://img.test/a.png", seed=4,
            provider_options={"num_frames": 81}),
        None,
    )  # fmt: skip
    assert body == {
        "prompt": "a calico cat playing piano",
        "image_url": "https://img.test/a.png",
        "num_frames": 81,
    }


# --- submit --------------------------------------------------------------------------------


async def test_submit_posts_the_input_with_key_deadline_webhook_and_lifetime(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.post(f"{BASE}/fal-ai/veo3.1/fast").respond(200, json=queued())
    adapter = FalProvider(
        CANARY,
        base_url=BASE,
        webhook_url="https://hooks.test/fal",
        object_lifetime=3600,
        priority="low",
    )
    try:
        deadline = datetime.now(UTC) + timedelta(minutes=10)
        job = await adapter.submit(veo(model="fal-ai/veo3.1/fast", deadline_at=deadline))
    finally:
        await adapter.aclose()
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Key {CANARY}"
    assert 590 < float(sent.headers["x-fal-request-timeout"]) <= 600
    assert sent.headers["x-fal-queue-priority"] == "low"
    lifecycle = json.loads(sent.headers["x-fal-object-lifecycle-preference"])
    assert lifecycle == {"expiration_duration_seconds": 3600}
    assert sent.url.params["fal_webhook"] == "https://hooks.test/fal"
    assert json.loads(sent.content)["duration"] == "8s"
    assert job.external_id == JOB and job.status is TaskStatus.QUEUED
    assert job.queue_position == 4


async def test_a_past_deadline_sends_no_start_timeout(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    route = httpx2_mock.post(f"{BASE}/{APP}").respond(200, json=queued())
    await provider.submit(veo(deadline_at=datetime.now(UTC) - timedelta(seconds=5)))
    assert "x-fal-request-timeout" not in route.calls.last.request.headers


async def test_the_job_path_is_computed_when_fal_names_no_usable_url(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.post(f"{BASE}/{APP}/fast").respond(
        200, json={"request_id": RID, "response_url": "https://elsewhere.test/x"}
    )
    job = await provider.submit(veo(model=f"{APP}/fast"))
    assert job.external_id == JOB


@pytest.mark.parametrize("body", [b"not json", b'{"status": "IN_QUEUE"}', b"[]"])
async def test_an_unreadable_create_answer_is_uncertain(
    httpx2_mock: respx.Router, provider: FalProvider, body: bytes
) -> None:
    route = httpx2_mock.post(f"{BASE}/{APP}").respond(200, content=body)
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(veo())
    assert route.call_count == 1


async def test_a_5xx_create_is_uncertain_and_sent_once(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    route = httpx2_mock.post(f"{BASE}/{APP}").respond(503, json={"detail": "busy"})
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(veo())
    assert route.call_count == 1


# --- status ------------------------------------------------------------------------------


async def test_in_progress_reads_the_last_percentage_the_model_logged(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    logs = [
        {"message": "loading weights", "level": "INFO"},
        {"message": "step 3/10 (30%)", "level": "INFO"},
        {"message": "step 7/10 - 70.5 %", "level": "INFO"},
        {"message": "still working", "level": "INFO"},
    ]
    route = httpx2_mock.get(f"{BASE}/{JOB}/status").respond(
        200, json={"status": "IN_PROGRESS", "logs": logs}
    )
    job = await provider.status(JOB)
    assert route.calls.last.request.url.params["logs"] == "1"
    assert job.status is TaskStatus.PROCESSING and job.progress == 70


async def test_logs_without_percentages_give_no_progress(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(
        200, json={"status": "IN_PROGRESS", "logs": [{"message": "frame 12"}, "junk"]}
    )
    assert (await provider.status(JOB)).progress is None


async def test_completed_reads_the_result_for_the_video(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED", "logs": None})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(
        200, json={"video": {"url": "https://v3.fal.media/files/x/out.mp4"}}
    )
    job = await provider.status(JOB)
    assert job.status is TaskStatus.COMPLETED and job.progress == 100
    assert job.result_url == "https://v3.fal.media/files/x/out.mp4"
    assert job.expires_at is None  # fal's default retention is not published


async def test_completed_with_an_error_is_failed_without_reading_the_result(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(
        200,
        json={
            "status": "COMPLETED",
            "error": "Runner crashed",
            "error_type": "runner_disconnected",
        },
    )
    job = await provider.status(JOB)
    assert job.status is TaskStatus.FAILED and job.raw_status == "COMPLETED"
    assert job.error is not None
    assert (job.error.code, job.error.message) == ("runner_disconnected", "Runner crashed")
    assert httpx2_mock.calls.call_count == 1  # the result was not read


async def test_a_result_refused_with_422_is_failed_with_its_detail(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED"})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(422, json={"detail": "prompt was flagged"})
    job = await provider.status(JOB)
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and "prompt was flagged" in job.error.message


async def test_a_result_gone_is_failed_expired(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED"})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(404, json={"detail": "Request not found"})
    job = await provider.status(JOB)
    assert job.status is TaskStatus.FAILED and job.expired
    assert job.error is not None and job.error.code == "expired"


async def test_a_result_with_no_video_is_failed_content_filtered(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED"})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(200, json={"video": None, "has_nsfw_concepts": [True]})
    job = await provider.status(JOB)
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and job.error.code == "content_filtered"


async def test_object_lifetime_dates_the_output(httpx2_mock: respx.Router) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED"})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(200, json={"video": {"url": "https://cdn.test/v"}})
    adapter = FalProvider(CANARY, base_url=BASE, object_lifetime=7200)
    try:
        job = await adapter.status(JOB)
    finally:
        await adapter.aclose()
    assert job.expires_at is not None
    assert timedelta(minutes=119) < job.expires_at - datetime.now(UTC) <= timedelta(hours=2)


async def test_an_unknown_word_is_kept_raw(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "WARMING_UP"})
    job = await provider.status(JOB)
    assert job.status is None and job.raw_status == "WARMING_UP"


async def test_an_answer_about_another_request_is_refused(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(
        200, json={"status": "IN_QUEUE", "request_id": "someone-else"}
    )
    with pytest.raises(ProviderResponseError, match="someone-else"):
        await provider.status(JOB)


async def test_a_bare_request_id_is_one_of_the_default_models(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    route = httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "IN_QUEUE"})
    assert (await provider.status(RID)).status is TaskStatus.QUEUED
    assert route.call_count == 1


async def test_a_malformed_job_id_is_refused_before_sending(provider: FalProvider) -> None:
    with pytest.raises(InvalidRequestError, match="not a fal job id"):
        await provider.status("fal-ai/veo3.1/requests/")


# --- cancel and content ------------------------------------------------------------------


async def test_cancel_puts_and_reads_cancellation_requested(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    route = httpx2_mock.put(f"{BASE}/{JOB}/cancel").respond(
        202, json={"status": "CANCELLATION_REQUESTED"}
    )
    job = await provider.cancel(JOB)
    assert route.call_count == 1
    assert job is not None and job.status is TaskStatus.CANCELLED
    assert job.raw_status == "CANCELLATION_REQUESTED"


async def test_cancelling_a_finished_job_is_no_change(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.put(f"{BASE}/{JOB}/cancel").respond(400, json={"status": "ALREADY_COMPLETED"})
    assert await provider.cancel(JOB) is None


async def test_content_comes_from_the_cdn_without_the_key(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"status": "COMPLETED"})
    httpx2_mock.get(f"{BASE}/{JOB}").respond(
        200, json={"video": {"url": "https://v3.fal.media/files/x/out.mp4"}}
    )
    cdn = httpx2_mock.get("https://v3.fal.media/files/x/out.mp4").respond(200, content=b"mp4!")
    async with provider.open_content(JOB) as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert body == b"mp4!"
    assert "authorization" not in cdn.calls.last.request.headers


async def test_secrets_stay_out_of_errors(httpx2_mock: respx.Router, provider: FalProvider) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(400, json={"detail": f"bad key Key {CANARY}"})
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.status(JOB)
    assert CANARY not in str(caught.value)


# --- storage uploads -----------------------------------------------------------------------

REST = "https://rest.fal.test"
CDN = "https://cdn.fal.test"


def token(expires_in: timedelta) -> dict[str, object]:
    expires = (datetime.now(UTC) + expires_in).isoformat()
    return {"token": "tok-9f8e", "token_type": "Bearer", "base_url": CDN, "expires_at": expires}


async def test_an_upload_sends_the_image_with_the_token_and_never_the_key(
    httpx2_mock: respx.Router,
) -> None:
    tokens = httpx2_mock.post(f"{REST}/storage/auth/token").respond(
        200, json=token(timedelta(seconds=30))
    )
    uploads = httpx2_mock.post(f"{CDN}/files/upload").respond(
        200, json={"access_url": f"{CDN}/files/a.png"}
    )
    submits = httpx2_mock.post(f"{BASE}/{APP}/image-to-video").respond(200, json=queued())
    adapter = FalProvider(CANARY, base_url=BASE, storage_url=REST, images="upload")
    try:
        await adapter.submit(veo(model=f"{APP}/image-to-video", image=png()))
        # the token expires within a minute now: a second upload fetches a new one
        await adapter.submit(veo(model=f"{APP}/image-to-video", image=png()))
    finally:
        await adapter.aclose()
    assert tokens.calls.last.request.headers["authorization"] == f"Key {CANARY}"
    assert tokens.calls.last.request.url.params["storage_type"] == "fal-cdn-v3"
    sent = uploads.calls.last.request
    assert sent.headers["authorization"] == "Bearer tok-9f8e"
    assert sent.content == png().data and sent.headers["content-type"] == "image/png"
    assert json.loads(submits.calls.last.request.content)["image_url"] == f"{CDN}/files/a.png"
    assert tokens.call_count == 2 and uploads.call_count == 2


async def test_an_unreadable_token_answer_is_an_error_and_nothing_is_submitted(
    httpx2_mock: respx.Router,
) -> None:
    httpx2_mock.post(f"{REST}/storage/auth/token").respond(200, json={"token": "t"})
    adapter = FalProvider(CANARY, base_url=BASE, storage_url=REST, images="upload")
    try:
        with pytest.raises(ProviderResponseError, match="base_url"):
            await adapter.submit(veo(model=f"{APP}/image-to-video", image=png()))
    finally:
        await adapter.aclose()
    assert httpx2_mock.calls.call_count == 1


async def test_a_status_answer_without_a_word_is_unknown_not_queued(
    httpx2_mock: respx.Router, provider: FalProvider
) -> None:
    httpx2_mock.get(f"{BASE}/{JOB}/status").respond(200, json={"queue_position": 1})
    job = await provider.status(JOB)
    assert job.status is None and job.raw_status == ""
