"""ReplicateProvider against a mocked api.replicate.com: routes, input mapping, parsing, find."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from pydantic import SecretStr

from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderRejectedError,
    ProviderResponseError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData, TaskStatus
from sora_tasks.providers import Backoff, ReplicateProvider, SubmitRequest
from sora_tasks.providers._replicate_parse import error_code, parse_prediction, progress_from_logs
from sora_tasks.providers.replicate import cancel_after
from tests.images import make_image

pytestmark = pytest.mark.anyio

CANARY = "r8_canary-replicate-5d1e-DO-NOT-LEAK"
BASE = "https://replicate.test/v1"
NO_WAIT = Backoff(initial=0.0, maximum=0.0)
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
OUT = "https://replicate.delivery/xezq/abc/output.mp4"


def prediction(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": "gm3qorzdhgbfurvjtvhg6dckhu",
        "model": "google/veo-3.1",
        "version": "hidden",
        "input": {"prompt": "a calico cat"},
        "logs": "",
        "output": None,
        "error": None,
        "status": "starting",
        "created_at": "2026-11-30T05:00:00.000Z",
        "data_removed": False,
        "urls": {},
        **overrides,
    }
    return fields


def request(**overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_1",
        "idempotency_key": "sub_1",
        "prompt": "a calico cat",
        "model": "google/veo-3.1",
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return SubmitRequest(**fields)


def png() -> ImageData:
    data = make_image(64, 36)
    return ImageData(data, "image/png", 64, 36, "0" * 64)


@pytest.fixture
async def provider() -> AsyncIterator[ReplicateProvider]:
    adapter = ReplicateProvider(CANARY, base_url=BASE, backoff=NO_WAIT)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


# --- construction and capabilities ---------------------------------------------------------


def test_the_token_falls_back_to_the_environment_and_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    with pytest.raises(InvalidRequestError, match="REPLICATE_API_TOKEN") as caught:
        ReplicateProvider()
    assert caught.value.field == "api_key"
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env")
    assert ReplicateProvider().capabilities.default_model == "google/veo-3.1"


@pytest.mark.parametrize("model", ["veo", "a/b/c", "a/b:123", "/b"])
def test_an_unusable_model_reference_is_refused(model: str) -> None:
    with pytest.raises(InvalidRequestError, match="owner/name") as caught:
        ReplicateProvider(CANARY, model=model)
    assert caught.value.field == "model"


async def test_capabilities_come_from_the_model_table(provider: ReplicateProvider) -> None:
    veo = provider.capabilities_for("google/veo-3.1")
    assert veo is not None
    assert veo.seconds == frozenset({4, 6, 8})
    assert veo.aspect_ratios == frozenset({"16:9", "9:16"})
    assert (veo.last_frame, veo.max_reference_images, veo.seed, veo.negative_prompt) == (
        True,
        3,
        True,
        True,
    )
    assert veo.audio == frozenset({True, False}) and veo.can_cancel
    hailuo = provider.capabilities_for(f"minimax/hailuo-02:{'a' * 64}")
    assert hailuo is not None and hailuo.resolutions == frozenset({"512p", "768p", "1080p"})
    assert provider.capabilities_for("someone/unknown-model") is None
    assert provider.capabilities.models is None  # unknown models go through provider_options


async def test_the_token_stays_out_of_the_repr(provider: ReplicateProvider) -> None:
    assert CANARY not in repr(provider) and "replicate.test" in repr(provider)


# --- create ----------------------------------------------------------------------------------


async def test_an_official_model_runs_on_its_model_route(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/models/google/veo-3.1/predictions").respond(
        201, json=prediction()
    )
    image = png()
    job = await provider.submit(
        request(
            image=image,
            last_frame="https://example.test/last.png",
            reference_images=(image, "https://example.test/ref.png"),
            negative_prompt="blur",
            seed=7,
            audio=False,
            provider_options={"resolution": "1080p", "extra": [1, 2]},
        )
    )
    assert (job.external_id, job.status, job.raw_status) == (
        "gm3qorzdhgbfurvjtvhg6dckhu",
        TaskStatus.QUEUED,
        "starting",
    )
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {CANARY}"
    assert "prefer" not in sent.headers and "cancel-after" not in sent.headers
    data_uri = "data:image/png;base64," + base64.b64encode(image.data).decode()
    assert sent_json(route) == {
        "input": {
            "prompt": "a calico cat",
            "duration": 8,
            "aspect_ratio": "16:9",
            "resolution": "1080p",  # provider_options win over the mapped fields
            "image": data_uri,
            "last_frame": "https://example.test/last.png",
            "reference_images": [data_uri, "https://example.test/ref.png"],
            "negative_prompt": "blur",
            "seed": 7,
            "generate_audio": False,
            "extra": [1, 2],
        }
    }


@pytest.mark.parametrize(
    ("model", "path", "version"),
    [
        (f"acme/video-model:{VERSION}", "predictions", VERSION),
        (VERSION, "predictions", VERSION),
    ],
)
async def test_a_version_runs_on_the_predictions_route(
    provider: ReplicateProvider,
    httpx2_mock: respx.Router,
    model: str,
    path: str,
    version: str,
) -> None:
    route = httpx2_mock.post(f"{BASE}/{path}").respond(201, json=prediction())
    await provider.submit(request(model=model, provider_options={"frames": 81}))
    assert sent_json(route) == {
        "version": version,
        "input": {"prompt": "a calico cat", "frames": 81},
    }


async def test_a_known_model_pinned_to_a_version_keeps_its_mapping(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/predictions").respond(201, json=prediction())
    await provider.submit(
        request(model=f"minimax/hailuo-02:{VERSION}", seconds=6, resolution="768p", image=png())
    )
    body = sent_json(route)
    assert body["version"] == VERSION
    assert set(body["input"]) == {"prompt", "duration", "resolution", "first_frame_image"}
    assert body["input"]["resolution"] == "768p"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "kwaivgi/kling-v2.5-turbo-pro",
            {"prompt": "a calico cat", "duration": 8, "aspect_ratio": "16:9"},
        ),
        ("wan-video/wan-2.5-t2v", {"prompt": "a calico cat", "duration": 8, "size": "1280*720"}),
    ],
)
async def test_each_model_gets_its_own_frame_fields(
    provider: ReplicateProvider, httpx2_mock: respx.Router, model: str, expected: dict[str, Any]
) -> None:
    route = httpx2_mock.post(f"{BASE}/models/{model}/predictions").respond(201, json=prediction())
    await provider.submit(request(model=model))
    assert sent_json(route)["input"] == expected


async def test_an_unknown_model_gets_the_prompt_and_the_options_only(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/models/acme/new-model/predictions").respond(
        201, json=prediction()
    )
    await provider.submit(request(model="acme/new-model", provider_options={"num_frames": 81}))
    assert sent_json(route) == {"input": {"prompt": "a calico cat", "num_frames": 81}}


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("reference_image", {"image_url": "https://example.test/a.png"}),
        ("seed", {"seed": 3}),
        ("last_frame", {"last_frame": "https://example.test/b.png"}),
    ],
)
async def test_what_cannot_be_mapped_is_refused_before_sending(
    provider: ReplicateProvider,
    httpx2_mock: respx.Router,
    field: str,
    overrides: dict[str, Any],
) -> None:
    model = "acme/new-model" if field != "last_frame" else "wan-video/wan-2.5-t2v"
    with pytest.raises(InvalidRequestError) as caught:
        await provider.submit(request(model=model, **overrides))
    assert caught.value.field == field  # and no request: respx refuses any that is not mocked


async def test_the_deadline_becomes_cancel_after(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/models/google/veo-3.1/predictions").respond(
        201, json=prediction()
    )
    deadline = datetime.now(UTC) + timedelta(minutes=30)
    await provider.submit(request(deadline_at=deadline))
    header = route.calls.last.request.headers["cancel-after"]
    assert header.endswith("s") and 1795 <= int(header[:-1]) <= 1800


def test_cancel_after_is_whole_seconds_and_never_zero() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert cancel_after(now + timedelta(seconds=90.2), now=now) == "91s"
    assert cancel_after(now - timedelta(seconds=5), now=now) == "1s"


async def test_a_webhook_url_asks_for_the_configured_events(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.post(f"{BASE}/models/google/veo-3.1/predictions").respond(
        201, json=prediction()
    )
    adapter = ReplicateProvider(
        CANARY,
        base_url=BASE,
        webhook_url="https://hooks.example.test/replicate",
        webhook_events=("start", "completed"),
    )
    try:
        await adapter.submit(request())
    finally:
        await adapter.aclose()
    body = sent_json(route)
    assert body["webhook"] == "https://hooks.example.test/replicate"
    assert body["webhook_events_filter"] == ["start", "completed"]


async def test_a_create_that_may_have_started_is_uncertain_and_sent_once(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/models/google/veo-3.1/predictions").respond(
        500, json={"title": "Internal server error", "detail": "boom", "status": 500}
    )
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(request())
    assert route.call_count == 1


async def test_a_refused_create_names_replicates_detail(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.post(f"{BASE}/models/google/veo-3.1/predictions").respond(
        422,
        json={
            "title": "Input validation failed",
            "detail": "input.duration: must be one of 4, 6, 8",
            "status": 422,
        },
    )
    with pytest.raises(ProviderRejectedError, match="must be one of 4, 6, 8") as caught:
        await provider.submit(request())
    assert caught.value.status_code == 422 and CANARY not in str(caught.value)


# --- status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("starting", TaskStatus.QUEUED),
        ("processing", TaskStatus.PROCESSING),
        ("failed", TaskStatus.FAILED),
        ("canceled", TaskStatus.CANCELLED),
        ("aborted", TaskStatus.CANCELLED),
        ("booting", None),
    ],
)
def test_every_status_word_maps(word: str, status: TaskStatus | None) -> None:
    job = parse_prediction(prediction(status=word))
    assert (job.status, job.raw_status) == (status, word)


def test_a_success_carries_its_url_expiry_and_predict_time() -> None:
    job = parse_prediction(
        prediction(
            status="succeeded",
            output=[OUT, "https://replicate.delivery/other.mp4"],
            completed_at="2026-11-30T05:02:00Z",
            metrics={"predict_time": 97.5, "total_time": 120.1},
        )
    )
    assert (job.status, job.result_url, job.progress) == (TaskStatus.COMPLETED, OUT, 100)
    assert job.expires_at == datetime(2026, 11, 30, 6, 2, tzinfo=UTC)
    assert job.render_seconds == 97.5


@pytest.mark.parametrize("output", [OUT, {"video": OUT}])
def test_an_output_may_be_a_url_or_name_one(output: object) -> None:
    assert parse_prediction(prediction(status="succeeded", output=output)).result_url == OUT


@pytest.mark.parametrize("output", [None, [], "not a url", {"text": "x"}])
def test_a_success_without_a_video_is_failed_not_completed(output: object) -> None:
    job = parse_prediction(prediction(status="succeeded", output=output))
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and job.error.code == "content_filtered"


def test_a_success_whose_data_was_removed_has_expired() -> None:
    job = parse_prediction(prediction(status="succeeded", output=None, data_removed=True))
    assert (job.status, job.expired, job.result_url) == (TaskStatus.FAILED, True, None)
    assert job.error is not None and job.error.code == "expired"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("The input or output was flagged as sensitive. (E005)", "moderation_blocked"),
        ("Director: unexpected error handling prediction (E6716)", "E6716"),
        ("Prediction interrupted; please retry (code: PA)", "PA"),
        ("CUDA out of memory", "prediction_failed"),
    ],
)
def test_a_failure_gets_a_stable_code(message: str, code: str) -> None:
    assert error_code(message) == code
    job = parse_prediction(prediction(status="failed", error=message))
    assert job.error is not None and (job.error.code, job.error.message) == (code, message)


@pytest.mark.parametrize(
    ("logs", "progress"),
    [
        ("", None),
        ("Using seed: 42\nloading weights", None),
        (" 45%|████▌     | 9/20 [00:10<00:12,  1.1s/it]", 45),
        ("  0%|          | 0/50\n 10%|█         | 5/50\n 62%|██████▏   | 31/50", 62),
        ("step 12/48 done", 25),
        ("2026/11/30 started\nframe 3/4", 75),
        ("version 1.2/3 loaded", None),
        ("100%|██████████| 50/50 [01:00<00:00]\nsaving video", 100),
        ("12/0 weird", None),
    ],
)
def test_progress_is_read_from_the_newest_progress_line(logs: str, progress: int | None) -> None:
    assert progress_from_logs(logs) == progress


async def test_status_asks_about_one_prediction_and_refuses_another(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/predictions/p1").respond(
        200, json=prediction(id="p1", status="processing", logs=" 30%|███ | 3/10")
    )
    job = await provider.status("p1")
    assert (job.status, job.progress) == (TaskStatus.PROCESSING, 30)
    httpx2_mock.get(f"{BASE}/predictions/p2").respond(200, json=prediction(id="p3"))
    with pytest.raises(ProviderResponseError, match="p3"):
        await provider.status("p2")


async def test_cancel_posts_to_the_cancel_route(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    route = httpx2_mock.post(f"{BASE}/predictions/p1/cancel").respond(
        200, json=prediction(id="p1", status="canceled")
    )
    job = await provider.cancel("p1")
    assert job is not None and job.status is TaskStatus.CANCELLED and route.called


async def test_content_streams_the_output_without_the_token(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/predictions/p1").respond(
        200, json=prediction(id="p1", status="succeeded", output=OUT)
    )
    file = httpx2_mock.get(OUT).respond(200, content=b"mp4-bytes")
    async with provider.open_content("p1") as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert body == b"mp4-bytes"
    assert "authorization" not in file.calls.last.request.headers


async def test_content_of_a_removed_prediction_is_refused(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/predictions/p1").respond(
        200, json=prediction(id="p1", status="succeeded", data_removed=True)
    )
    with pytest.raises(ProviderError, match="has expired"):
        async with provider.open_content("p1"):
            pass


# --- find --------------------------------------------------------------------------------


async def test_find_matches_model_and_prompt_across_pages(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    now = datetime.now(UTC)
    recent = (now - timedelta(minutes=1)).isoformat()
    first = httpx2_mock.get(f"{BASE}/predictions", params={"cursor": "abc"}).respond(
        200,
        json={
            "next": None,
            "results": [prediction(id="hit", created_at=recent, status="processing")],
        },
    )
    page = httpx2_mock.get(f"{BASE}/predictions").respond(
        200,
        json={
            "next": f"{BASE}/predictions?cursor=abc",
            "results": [
                prediction(id="other-prompt", created_at=recent, input={"prompt": "a dog"}),
                prediction(id="other-model", created_at=recent, model="acme/else"),
                prediction(id="removed", created_at=recent, input={}),
            ],
        },
    )
    job = await provider.find(request(attempted_at=now - timedelta(minutes=2)))
    assert job is not None and job.external_id == "hit"
    assert "created_after" in str(page.calls[0].request.url) and first.called


async def test_find_stops_at_predictions_older_than_the_window(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    httpx2_mock.get(f"{BASE}/predictions").respond(
        200,
        json={"next": f"{BASE}/predictions?cursor=x", "results": [prediction(created_at=old)]},
    )
    assert await provider.find(request()) is None


async def test_find_never_follows_a_page_link_to_another_host(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/predictions").respond(
        200, json={"next": "https://elsewhere.test/predictions?cursor=x", "results": []}
    )
    # respx refuses any request not mocked, so following the link would fail the test
    assert await provider.find(request()) is None


# --- webhook secret ----------------------------------------------------------------------


async def test_the_webhook_secret_is_fetched_once_and_kept_secret(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    secret = "whsec_" + base64.b64encode(b"replicate signing key").decode()
    route = httpx2_mock.get(f"{BASE}/webhooks/default/secret").respond(200, json={"key": secret})
    first = await provider.webhook_secret()
    again = await provider.webhook_secret()
    assert first is not None and first.get_secret_value() == secret and again is first
    assert route.call_count == 1
    assert secret not in repr(first)


async def test_a_configured_webhook_secret_is_used_without_asking(
    httpx2_mock: respx.Router,
) -> None:
    adapter = ReplicateProvider(CANARY, base_url=BASE, webhook_secret=SecretStr("whsec_AAAA"))
    try:
        secret = await adapter.webhook_secret()
    finally:
        await adapter.aclose()
    assert secret is not None and secret.get_secret_value() == "whsec_AAAA"  # nothing was asked


async def test_an_unreadable_secret_answer_is_an_error(
    provider: ReplicateProvider, httpx2_mock: respx.Router
) -> None:
    httpx2_mock.get(f"{BASE}/webhooks/default/secret").respond(200, json={"nope": 1})
    with pytest.raises(ProviderResponseError, match="no key"):
        await provider.webhook_secret()
