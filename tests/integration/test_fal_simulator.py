"""FalProvider against the simulator's fal shape over a real socket, and through TaskManager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from sora_tasks import TaskManager, TaskStatus
from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderAuthError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import Backoff, FalProvider, SubmitRequest
from sora_tasks.providers.fal import DEFAULT_FAL_CAPABILITIES
from sora_tasks.testing import FalSimulatorHarness, Faults
from sora_tasks.testing._simulator_state import Pin
from tests.images import make_image

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.01, maximum=0.05)
QUICK = DEFAULT_FAL_CAPABILITIES.model_copy(
    update={
        "min_poll_interval": 0.05,
        "schedule": PollSchedule(first_interval=0.05, dense_window=0.1, dense_interval=0.05),
    }
)


@pytest.fixture
async def harness() -> AsyncIterator[FalSimulatorHarness]:
    rig = FalSimulatorHarness(
        queue_seconds=0.2,
        render_seconds=0.6,
        fail_prompts=["forbidden"],
        unique_content=True,
        adapter_options={"backoff": FAST, "capabilities": QUICK},
    )
    try:
        yield rig
    finally:
        await rig.aclose()


def png(width: int, height: int) -> ImageData:
    return ImageData(make_image(width, height), "image/png", width, height, "0" * 64)


def request(prompt: str = "a calico cat", **fields: object) -> SubmitRequest:
    values: dict[str, object] = {
        "task_id": "video_1",
        "idempotency_key": "sub_1",
        "prompt": prompt,
        "model": "fal-ai/veo3.1",
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **fields,
    }
    return SubmitRequest(**values)  # type: ignore[arg-type]


async def finish(provider: FalProvider, external_id: str) -> TaskStatus | None:
    with anyio.fail_after(10):
        while True:
            job = await provider.status(external_id)
            if job.status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
                return job.status
            await anyio.sleep(0.05)


async def test_a_job_is_queued_then_renders_with_log_progress_then_downloads(
    harness: FalSimulatorHarness,
) -> None:
    provider = harness.provider
    assert isinstance(provider, FalProvider)
    job = await provider.submit(request(audio=False, seed=7, negative_prompt="blur"))
    assert job.status is TaskStatus.QUEUED and job.queue_position == 0
    assert job.external_id.startswith("fal-ai/veo3.1/requests/")
    seen: list[int] = []
    with anyio.fail_after(10):
        while (current := await provider.status(job.external_id)).status is not (
            TaskStatus.COMPLETED
        ):
            if current.progress is not None:
                seen.append(current.progress)
            await anyio.sleep(0.05)
    assert seen and seen == sorted(seen)
    assert current.result_url is not None and "/fal/files/" in current.result_url
    async with provider.open_content(job.external_id) as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert body == harness.content(job.external_id)
    received = harness.received(job.external_id)
    assert (received.seconds, received.aspect_ratio, received.resolution) == (8, "16:9", "720p")
    assert (received.seed, received.audio, received.negative_prompt) == (7, False, "blur")
    assert received.options == {}


async def test_a_sub_path_model_is_polled_under_its_app(harness: FalSimulatorHarness) -> None:
    provider = harness.provider
    assert isinstance(provider, FalProvider)
    job = await provider.submit(request(model="fal-ai/veo3.1/fast"))
    assert job.external_id.startswith("fal-ai/veo3.1/requests/")
    assert await finish(provider, job.external_id) is TaskStatus.COMPLETED


async def test_a_failed_run_answers_completed_with_an_error_and_is_failed(
    harness: FalSimulatorHarness,
) -> None:
    provider = harness.provider
    assert isinstance(provider, FalProvider)
    job = await provider.submit(request("something forbidden"))
    assert await finish(provider, job.external_id) is TaskStatus.FAILED
    current = await provider.status(job.external_id)
    assert current.raw_status == "COMPLETED"
    assert current.error is not None and current.error.code == "content_policy_violation"


async def test_done_but_empty_is_failed_content_filtered(harness: FalSimulatorHarness) -> None:
    provider = harness.provider
    job = await provider.submit(request())
    await harness.pin(job.external_id, Pin("completed", empty=True))
    current = await provider.status(job.external_id)
    assert current.status is TaskStatus.FAILED
    assert current.error is not None and current.error.code == "content_filtered"


async def test_an_expired_result_is_failed_expired(harness: FalSimulatorHarness) -> None:
    provider = harness.provider
    job = await provider.submit(request())
    await harness.pin(job.external_id, Pin("completed", expired=True))
    current = await provider.status(job.external_id)
    assert current.status is TaskStatus.FAILED and current.expired


async def test_cancel_drops_a_queued_job(harness: FalSimulatorHarness) -> None:
    provider = harness.provider
    job = await provider.submit(request())
    cancelled = await provider.cancel(job.external_id)
    assert cancelled is not None and cancelled.raw_status == "CANCELLATION_REQUESTED"
    assert (await provider.status(job.external_id)).status is TaskStatus.CANCELLED
    assert await provider.cancel(job.external_id) is None  # ALREADY_COMPLETED


async def test_a_server_error_on_submit_is_uncertain_and_sent_once(
    harness: FalSimulatorHarness,
) -> None:
    harness.inject("create", Faults(server_errors=1))
    with pytest.raises(SubmissionUncertainError):
        await harness.provider.submit(request())
    assert harness.sent("create") == 1


async def test_a_rate_limited_submit_is_resent_and_makes_one_job(
    harness: FalSimulatorHarness,
) -> None:
    harness.inject("create", Faults(rate_limits=1, retry_after=0.01))
    job = await harness.provider.submit(request())
    assert harness.sent("create") == 2 and len(harness.app.state.jobs) == 1
    assert job.status is TaskStatus.QUEUED


async def test_a_wrong_key_is_an_auth_error_that_names_no_key(
    harness: FalSimulatorHarness,
) -> None:
    wrong = FalProvider("fal-wrong-key-abcdef", base_url=harness.url, backoff=FAST)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await wrong.submit(request())
        assert "fal-wrong-key-abcdef" not in str(caught.value)
    finally:
        await wrong.aclose()


async def test_the_simulator_refuses_a_duration_the_model_does_not_take(
    harness: FalSimulatorHarness,
) -> None:
    from sora_tasks._exceptions import ProviderRejectedError

    with pytest.raises(ProviderRejectedError) as caught:
        await harness.provider.submit(request(seconds=5))
    assert caught.value.status_code == 422


async def test_task_manager_runs_a_fal_job_to_a_saved_video(
    harness: FalSimulatorHarness, tmp_path: Path
) -> None:
    provider = harness.provider
    async with TaskManager(providers={"fal": provider}, download_dir=tmp_path) as manager:
        task = await manager.create(
            prompt="a lighthouse at dusk", model="fal-ai/veo3.1", size="1280x720", seconds=6
        )
        done = await manager.wait(task.id, timeout=20)
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.external_id is not None and done.external_id.startswith("fal-ai/veo3.1/requests/")
    assert done.result is not None and done.result.local_path is not None
    saved = Path(done.result.local_path).read_bytes()
    assert saved == harness.content(done.external_id)
    assert harness.sent("create") == 1
    assert harness.received(done.external_id).seconds == 6


async def test_images_can_be_uploaded_to_fal_storage_and_sent_as_urls() -> None:
    rig = FalSimulatorHarness(adapter_options={"images": "upload", "backoff": FAST})
    try:
        first, last = png(64, 64), png(32, 32)
        model = "fal-ai/kling-video/v3/pro/image-to-video"
        job = await rig.provider.submit(
            request(model=model, seconds=5, image=first, last_frame=last)
        )
        again = await rig.provider.submit(request(model=model, seconds=5, image=first))
        sent = rig.app.state.jobs[job.external_id.rpartition("/")[2]].fields
        received = rig.received(job.external_id)
    finally:
        await rig.aclose()
    assert str(sent["start_image_url"]).startswith(rig.url + "/cdn/files/")
    assert received.image == first.data and received.last_frame == last.data
    assert again.status is TaskStatus.QUEUED
    assert rig.app.state.hits["fal_storage_token"] == 1  # one token serves every upload
    assert rig.app.state.hits["fal_cdn_upload"] == 3


async def test_task_manager_maps_every_field_and_passes_the_deadline_on(
    harness: FalSimulatorHarness,
) -> None:
    async with TaskManager(providers={"fal": harness.provider}, poll=False) as manager:
        task = await manager.create(
            "a paper boat",
            model="fal-ai/veo3.1/fast",
            aspect_ratio="9:16",
            resolution="1080p",
            seconds=4,
            negative_prompt="text",
            seed=12,
            audio=False,
            provider_options={"auto_fix": False},
            deadline=timedelta(minutes=30),
        )
    assert task.external_id is not None
    received = harness.received(task.external_id)
    assert (received.aspect_ratio, received.resolution, received.seconds) == ("9:16", "1080p", 4)
    assert (received.negative_prompt, received.seed, received.audio) == ("text", 12, False)
    assert received.options == {"auto_fix": False}
    submit = harness.app.state.records("fal_submit")[-1]
    assert 1700 < float(submit.headers["x-fal-request-timeout"]) <= 1800


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": "fal-ai/veo3.1", "seconds": 5}, "seconds"),
        ({"model": "fal-ai/veo3.1/fast", "resolution": "4k"}, "resolution"),
        ({"model": "fal-ai/kling-video/v3/pro/text-to-video", "seed": 1}, "seed"),
        ({"model": "someone/unknown-model"}, "model"),
    ],
)
async def test_task_manager_refuses_what_the_model_does_not_take_and_sends_nothing(
    harness: FalSimulatorHarness, fields: dict[str, Any], field: str
) -> None:
    async with TaskManager(providers={"fal": harness.provider}, poll=False) as manager:
        with pytest.raises(InvalidRequestError) as caught:
            await manager.create("a paper boat", **fields)
        assert (await manager.list()).items == []
    assert caught.value.field == field
    assert harness.sent("create") == 0


async def test_an_unknown_model_goes_with_its_provider_options(
    harness: FalSimulatorHarness,
) -> None:
    async with TaskManager(providers={"fal": harness.provider}, poll=False) as manager:
        task = await manager.create(
            "a paper boat",
            model="someone/new-video-model",
            provider_options={"num_frames": 81, "fps": 16},
        )
    assert task.external_id is not None
    assert task.external_id.startswith("someone/new-video-model/requests/")
    received = harness.received(task.external_id)
    assert received.prompt == "a paper boat"
    assert received.options == {"num_frames": 81, "fps": 16}
