"""ReplicateProvider against the simulator's Replicate shape over a real socket: the manager end to
end, cancel, deadlines, retention, failures, faults, find and the conformance harness."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sora_tasks import PriceTable, TaskManager, TaskStatus
from sora_tasks._exceptions import (
    ProviderAuthError,
    ProviderRejectedError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData
from sora_tasks._policy import PollingPolicy
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import Backoff, Provider, ReplicateProvider, SubmitRequest
from sora_tasks.testing import ReplicateSimulatorHarness, create_simulator_app
from sora_tasks.testing._simulator import Faults, SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp
from sora_tasks.testing._simulator_state import Pin
from tests.images import make_image
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
KEY = "r8_simulated-token-7f3a"
FAST = Backoff(initial=0.01, maximum=0.05)
QUICK = PollSchedule(first_interval=0.05, dense_interval=0.05, max_interval=0.2)
POLICY = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0, schedule=QUICK)


def submit_request(prompt: str = "a calico cat", **overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_1",
        "idempotency_key": f"submit-{prompt}",
        "prompt": prompt,
        "model": "google/veo-3.1",
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return SubmitRequest(**fields)


@dataclasses.dataclass
class Replicate:
    app: SimulatorApp
    clock: ManualClock
    provider: ReplicateProvider
    url: str


@pytest.fixture
async def replicate(serve: Serve) -> AsyncIterator[Replicate]:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY,
        clock=clock,
        queue_seconds=2,
        render_seconds=10,
        fail_prompts=["forbidden"],
        files_host="localhost",  # another origin, as replicate.delivery is
    )
    url = serve(app)
    provider = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1", backoff=FAST)
    try:
        yield Replicate(app, clock, provider, url)
    finally:
        await provider.aclose()


async def read_all(provider: Provider, external_id: str) -> bytes:
    async with provider.open_content(external_id) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


async def test_the_manager_takes_a_prediction_from_create_to_a_saved_video(
    serve: Serve, tmp_path: Path
) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0.05, render_seconds=0.3)
    url = serve(app)
    provider = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1", backoff=FAST)
    manager = TaskManager(providers={"replicate": provider}, policy=POLICY, download_dir=tmp_path)
    async with manager:
        task = await manager.create("a calico cat playing piano", size="1280x720", seconds=8)
        assert task.model == "google/veo-3.1" and task.external_id is not None
        done = await manager.wait(task.id, timeout=30)
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.result is not None and done.result.local_path is not None
    assert Path(done.result.local_path).read_bytes() == SAMPLE
    [record] = app.state.records("replicate_create")
    assert record.path == "/replicate/v1/models/google/veo-3.1/predictions"
    # the task's deadline (the policy's 60 minutes) went along, so Replicate stops the job too
    assert 3500 <= int(record.headers["cancel-after"].removesuffix("s")) <= 3600
    body = app.state.jobs[done.external_id or ""].fields["body"]
    assert isinstance(body, dict) and set(body) == {"input"}
    sent = body["input"]
    assert (sent["prompt"], sent["duration"]) == ("a calico cat playing piano", 8)
    assert sent.get("aspect_ratio", "16:9") == "16:9" and sent.get("resolution", "720p") == "720p"


async def test_a_price_by_compute_time_is_accounted_from_the_reported_usage(
    serve: Serve,
) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0.05, render_seconds=0.3)
    provider = ReplicateProvider(KEY, base_url=f"{serve(app)}/replicate/v1", backoff=FAST)
    prices = PriceTable.from_csv(
        "provider,model,resolution,audio,per_second,per_job,per_compute_second,currency,"
        "effective,source\n"
        "replicate,google/veo-3.1,*,*,,,2.0,USD,2026-01-01,hardware by the second\n"
    )
    async with TaskManager(providers={"replicate": provider}, policy=POLICY, prices=prices) as m:
        task = await m.create("a calico cat playing piano", seconds=8)
        done = await m.wait(task.id, timeout=30)
    assert task.cost is not None and task.cost.estimated
    assert task.cost.amount == 2.0 * QUICK.expected_seconds  # what the schedule expects
    assert done.cost is not None and not done.cost.estimated
    assert "s of compute reported" in done.cost.source
    # metrics.predict_time: the 0.3 s the simulator renders for, and no longer than the wait
    assert 2.0 * 0.25 <= done.cost.amount <= 2.0 * 5.0


async def test_the_manager_cancels_at_replicate(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=3600)
    url = serve(app)
    provider = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1", backoff=FAST)
    async with TaskManager(providers={"replicate": provider}, policy=POLICY) as manager:
        task = await manager.create("a long render", seconds=8)
        cancelled = await manager.cancel(task.id)
        job = await provider.status(task.external_id or "")
    assert cancelled.status is TaskStatus.CANCELLED
    assert app.state.hits["replicate_cancel"] == 1
    assert (job.status, job.raw_status) == (TaskStatus.CANCELLED, "canceled")


async def test_the_lifecycle_follows_the_clock(replicate: Replicate) -> None:
    provider, clock = replicate.provider, replicate.clock
    job = await provider.submit(submit_request())
    assert (job.status, job.raw_status) == (TaskStatus.QUEUED, "starting")
    clock.advance(2 + 5)
    running = await provider.status(job.external_id)
    assert (running.status, running.progress) == (TaskStatus.PROCESSING, 50)
    clock.advance(10)
    done = await provider.status(job.external_id)
    assert done.status is TaskStatus.COMPLETED and done.render_seconds == 10
    assert done.result_url is not None and "/replicate/files/" in done.result_url
    assert done.completed_at is not None and done.expires_at == done.completed_at + timedelta(
        hours=1
    )
    assert await read_all(provider, job.external_id) == SAMPLE
    records = replicate.app.state.records("replicate_files")
    assert records and not records[-1].has_authorization  # the token stays with the API


async def test_outputs_are_gone_after_an_hour(replicate: Replicate) -> None:
    provider, clock = replicate.provider, replicate.clock
    job = await provider.submit(submit_request())
    clock.advance(12)
    url = (await provider.status(job.external_id)).result_url
    clock.advance(3600)
    expired = await provider.status(job.external_id)
    assert (expired.status, expired.expired) == (TaskStatus.FAILED, True)
    async with httpx2.AsyncClient() as client:
        gone = await client.get(url or "")
    assert gone.status_code == 404  # what the engine reads as expired


async def test_cancel_after_aborts_a_queued_prediction_and_cancels_a_running_one(
    replicate: Replicate,
) -> None:
    provider, clock = replicate.provider, replicate.clock
    now = datetime.now(UTC)
    queued = await provider.submit(submit_request("one", deadline_at=now + timedelta(seconds=1)))
    running = await provider.submit(submit_request("two", deadline_at=now + timedelta(seconds=5)))
    [header, _] = [r.headers["cancel-after"] for r in replicate.app.state.records()]
    assert header in ("1s", "2s")
    clock.advance(8)
    aborted = await provider.status(queued.external_id)
    assert (aborted.status, aborted.raw_status) == (TaskStatus.CANCELLED, "aborted")
    cancelled = await provider.status(running.external_id)
    assert (cancelled.status, cancelled.raw_status) == (TaskStatus.CANCELLED, "canceled")


async def test_a_flagged_prompt_fails_with_moderation_blocked(replicate: Replicate) -> None:
    job = await replicate.provider.submit(submit_request("something forbidden"))
    replicate.clock.advance(3)
    failed = await replicate.provider.status(job.external_id)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and failed.error.code == "moderation_blocked"


async def test_a_version_create_and_its_list_and_find(replicate: Replicate) -> None:
    version = "a" * 64
    request = submit_request(model=f"acme/video:{version}", provider_options={"frames": 81})
    job = await replicate.provider.submit(request)
    [record] = replicate.app.state.records("replicate_create")
    assert record.path == "/replicate/v1/predictions"
    found = await replicate.provider.find(request)
    assert found is not None and found.external_id == job.external_id
    other = dataclasses.replace(request, prompt="not sent")
    assert await replicate.provider.find(other) is None


async def test_a_wrong_token_is_an_auth_error(replicate: Replicate) -> None:
    stranger = ReplicateProvider("r8_wrong", base_url=f"{replicate.url}/replicate/v1")
    try:
        with pytest.raises(ProviderAuthError, match="401"):
            await stranger.submit(submit_request())
    finally:
        await stranger.aclose()
    assert not replicate.app.state.jobs


async def test_a_rate_limited_create_is_retried_and_a_failed_one_is_uncertain(
    replicate: Replicate,
) -> None:
    state = replicate.app.state
    state.faults.set("replicate_create", Faults(rate_limits=1, retry_after=0.01))
    job = await replicate.provider.submit(submit_request("limited"))
    assert state.hits["replicate_create"] == 2 and job.external_id in state.jobs
    state.faults.set("replicate_create", Faults(dropped_responses=1))
    with pytest.raises(SubmissionUncertainError):
        await replicate.provider.submit(submit_request("dropped"))
    assert len(state.jobs) == 2  # the dropped answer's prediction exists, and was not resent


async def test_a_bad_input_is_refused_with_problem_details(replicate: Replicate) -> None:
    with pytest.raises(ProviderRejectedError, match="prompt is required") as caught:
        await replicate.provider.submit(submit_request(prompt=" "))
    assert caught.value.status_code == 422


# --- the conformance harness ------------------------------------------------------------


@pytest.fixture
def harness() -> Iterator[ReplicateSimulatorHarness]:
    with ReplicateSimulatorHarness.serve() as made:
        yield made


async def test_the_harness_reads_back_what_was_sent(harness: ReplicateSimulatorHarness) -> None:
    image = make_image(64, 36)
    first = ImageData(image, "image/png", 64, 36, "0" * 64)
    request = submit_request(
        image=first,
        last_frame="https://example.test/last.png",
        reference_images=("https://example.test/ref.png",),
        negative_prompt="blur",
        seed=5,
        audio=True,
        provider_options={"custom": "x"},
    )
    job = await harness.provider.submit(request)
    received = harness.received(job.external_id)
    assert received.prompt == "a calico cat" and received.seconds == 8
    assert (received.aspect_ratio, received.resolution) == ("16:9", "720p")
    assert received.image == image and received.last_frame == "https://example.test/last.png"
    assert received.reference_images == ("https://example.test/ref.png",)
    assert (received.negative_prompt, received.seed, received.audio) == ("blur", 5, True)
    assert received.options == {"custom": "x"}
    assert harness.sent("create") == 1
    await harness.aclose()


async def test_the_harness_pins_every_status_word(harness: ReplicateSimulatorHarness) -> None:
    provider = harness.provider
    job = await provider.submit(submit_request())
    for word, phase in harness.status_words.items():
        await harness.pin(job.external_id, Pin(phase, word=word, progress=40))
        seen = await provider.status(job.external_id)
        assert seen.raw_status == word
        expected = {
            "queued": TaskStatus.QUEUED,
            "in_progress": TaskStatus.PROCESSING,
            "completed": TaskStatus.COMPLETED,
            "failed": TaskStatus.FAILED,
            "cancelled": TaskStatus.CANCELLED,
        }[phase]
        assert seen.status is expected, word
    await harness.pin(job.external_id, Pin("in_progress", logs=("step 3/4",)))
    assert (await provider.status(job.external_id)).progress == 75
    await harness.pin(job.external_id, Pin("completed", empty=True))
    empty = await provider.status(job.external_id)
    assert empty.error is not None and empty.error.code == "content_filtered"
    await harness.pin(job.external_id, Pin("failed", error_code="E6716", error_message="boom"))
    failed = await provider.status(job.external_id)
    assert failed.error is not None and failed.error.code == "E6716"
    await harness.pin(job.external_id, Pin("completed"))
    assert await read_all(provider, job.external_id) == harness.content(job.external_id)
    await harness.pin(job.external_id, Pin("completed", expired=True))
    assert (await provider.status(job.external_id)).expired
    await harness.aclose()


async def test_the_harness_injects_faults_per_operation(
    harness: ReplicateSimulatorHarness,
) -> None:
    harness.inject("status", Faults(server_errors=1))
    job = await harness.provider.submit(submit_request())
    seen = await harness.provider.status(job.external_id)
    assert seen.status is TaskStatus.PROCESSING and harness.sent("status") == 2
    assert harness.secret not in repr(harness.provider)
    await harness.aclose()
