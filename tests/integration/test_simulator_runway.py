"""RunwayProvider against the simulator's Runway shape over a real socket: the manager end to end
(never polling faster than Runway's five seconds), the task lifecycle, expiring output URLs,
cancel and delete, failures and the requests refused before sending."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from sora_tasks import TaskManager, TaskStatus
from sora_tasks._exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    UnsupportedParameterError,
)
from sora_tasks._models import ImageData, Task, TaskResult
from sora_tasks._policy import PollingPolicy
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import (
    Backoff,
    Provider,
    RunwayProvider,
    RunwayRequestError,
    SubmitRequest,
)
from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator import SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp
from sora_tasks.testing._simulator_state import Pin
from tests.images import make_image
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
KEY = "key_simulated-runway-secret-41c9"
FAST = Backoff(initial=0.01, maximum=0.05)
# a schedule that would poll every 50 ms if nothing held it back: Runway's floor must
QUICK = PollSchedule(first_interval=0.05, dense_interval=0.05, max_interval=0.2)
POLICY = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0, schedule=QUICK)


def submit_request(prompt: str = "a red fox in snow", **overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_1",
        "idempotency_key": f"submit-{prompt}",
        "prompt": prompt,
        "model": "veo3.1",
        "size": "1280x720",
        "seconds": 8,
        **overrides,
    }
    return SubmitRequest(**fields)


def png(width: int = 64, height: int = 36) -> ImageData:
    return ImageData(make_image(width, height), "image/png", width, height, "0" * 64)


@dataclasses.dataclass
class Runway:
    app: SimulatorApp
    clock: ManualClock
    provider: RunwayProvider


@pytest.fixture
async def runway(serve: Serve) -> AsyncIterator[Runway]:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY,
        clock=clock,
        queue_seconds=2,
        render_seconds=10,
        asset_ttl_seconds=600,
        fail_prompts=["forbidden"],
        files_host="localhost",  # another origin, as Runway's signed output URLs are
    )
    provider = RunwayProvider(KEY, base_url=f"{serve(app)}/runway/v1", backoff=FAST)
    try:
        yield Runway(app, clock, provider)
    finally:
        await provider.aclose()


async def read_all(provider: Provider, external_id: str, task: Task | None = None) -> bytes:
    async with provider.open_content(external_id, task=task) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


def stored(external_id: str, url: str) -> Task:
    now = datetime.now(UTC)
    return Task(
        provider="runway",
        external_id=external_id,
        status=TaskStatus.COMPLETED,
        prompt="a red fox in snow",
        model="veo3.1",
        size="1280x720",
        seconds=8,
        result=TaskResult(url=url),
        created_at=now,
        updated_at=now,
    )


async def test_the_manager_never_polls_a_task_faster_than_every_five_seconds(
    serve: Serve, tmp_path: Path
) -> None:
    app = create_simulator_app(
        api_key=KEY, queue_seconds=0.5, render_seconds=6, files_host="localhost"
    )
    provider = RunwayProvider(KEY, model="gen4.5", base_url=f"{serve(app)}/runway/v1", backoff=FAST)
    manager = TaskManager(providers={"runway": provider}, policy=POLICY, download_dir=tmp_path)
    async with manager:
        tasks = [
            await manager.create(f"a red fox in snow, take {n}", size="1280x720", seconds=5)
            for n in range(3)
        ]
        done = [await manager.wait(task.id, timeout=45) for task in tasks]
    for task in done:
        assert task.status is TaskStatus.COMPLETED, task.error
        assert task.result is not None and task.result.local_path is not None
        assert Path(task.result.local_path).read_bytes() == SAMPLE
    polls = app.state.records("runway_get")
    # every task was polled more than once (so the floor was tested), none too soon
    for task in done:
        assert sum(1 for r in polls if r.path.endswith(str(task.external_id))) >= 2
    assert sum(app.state.tally.fast_polls.values()) == 0, app.state.tally.fast_polls
    [create, *_] = app.state.records("runway_create")
    assert create.path == "/runway/v1/text_to_video"
    assert create.headers["x-runway-version"] == "2024-11-06" and create.has_authorization
    assert not any(r.has_authorization for r in app.state.records("runway_files"))


async def test_the_simulator_counts_polls_faster_than_five_seconds(runway: Runway) -> None:
    provider, clock = runway.provider, runway.clock
    job = await provider.submit(submit_request())
    await provider.status(job.external_id)
    clock.advance(4.9)
    await provider.status(job.external_id)
    clock.advance(5)
    await provider.status(job.external_id)
    assert runway.app.state.tally.fast_polls == {job.external_id: 1}


async def test_the_lifecycle_follows_the_clock(runway: Runway) -> None:
    provider, clock = runway.provider, runway.clock
    job = await provider.submit(submit_request())
    assert (job.status, job.raw_status) == (TaskStatus.QUEUED, "PENDING")
    queued = await provider.status(job.external_id)
    assert (queued.status, queued.raw_status) == (TaskStatus.QUEUED, "PENDING")
    assert queued.created_at is not None
    clock.advance(2 + 5)
    running = await provider.status(job.external_id)
    assert (running.status, running.raw_status, running.progress) == (
        TaskStatus.PROCESSING,
        "RUNNING",
        50,
    )
    clock.advance(10)
    done = await provider.status(job.external_id)
    assert (done.status, done.progress) == (TaskStatus.COMPLETED, 100)
    assert done.result_url is not None and "/runway/files/" in done.result_url
    assert await read_all(provider, job.external_id) == SAMPLE


async def test_a_throttled_task_is_queued_and_both_cancel_spellings_are_read(
    runway: Runway,
) -> None:
    provider = runway.provider
    job = await provider.submit(submit_request())
    runway.app.state.pin(job.external_id, Pin("queued", word="THROTTLED"))
    throttled = await provider.status(job.external_id)
    assert (throttled.status, throttled.raw_status) == (TaskStatus.QUEUED, "THROTTLED")
    for word in ("CANCELLED", "CANCELED"):
        runway.app.state.pin(job.external_id, Pin("cancelled", word=word))
        assert (await provider.status(job.external_id)).status is TaskStatus.CANCELLED


async def test_an_expired_output_url_is_signed_afresh_once(runway: Runway) -> None:
    provider, clock = runway.provider, runway.clock
    job = await provider.submit(submit_request())
    clock.advance(12)
    done = await provider.status(job.external_id)
    assert done.result_url is not None
    clock.advance(601)  # the URL the task holds is past its signature's lifetime
    task = stored(job.external_id, done.result_url)
    assert await read_all(provider, job.external_id, task) == SAMPLE
    files = runway.app.state.records("runway_files")
    assert [record.status for record in files] == [403, 200]
    assert files[0].query["exp"] != files[1].query["exp"]


async def test_a_url_still_valid_is_used_without_reading_the_task(runway: Runway) -> None:
    provider, clock = runway.provider, runway.clock
    job = await provider.submit(submit_request())
    clock.advance(12)
    done = await provider.status(job.external_id)
    reads = runway.app.state.hits["runway_get"]
    assert done.result_url is not None
    task = stored(job.external_id, done.result_url)
    assert await read_all(provider, job.external_id, task) == SAMPLE
    assert runway.app.state.hits["runway_get"] == reads


async def test_an_output_refused_even_when_fresh_is_an_error(runway: Runway) -> None:
    provider = runway.provider
    job = await provider.submit(submit_request())
    runway.app.state.pin(job.external_id, Pin("completed", expired=True))
    done = await provider.status(job.external_id)
    assert done.result_url is not None
    with pytest.raises(ProviderAuthError) as caught:
        await read_all(provider, job.external_id, stored(job.external_id, done.result_url))
    assert caught.value.status_code == 403
    assert [r.status for r in runway.app.state.records("runway_files")] == [403, 403]


async def test_a_moderated_prompt_fails_with_runways_code(runway: Runway) -> None:
    provider, clock = runway.provider, runway.clock
    job = await provider.submit(submit_request("a forbidden scene"))
    clock.advance(3)
    failed = await provider.status(job.external_id)
    assert failed.status is TaskStatus.FAILED and failed.error is not None
    assert failed.error.code == "SAFETY.INPUT.TEXT"
    assert "content moderation" in failed.error.message


async def test_cancel_stops_a_running_task_and_delete_removes_a_finished_one(
    runway: Runway,
) -> None:
    provider, clock = runway.provider, runway.clock
    running = await provider.submit(submit_request("a long render"))
    clock.advance(4)
    assert await provider.cancel(running.external_id) is None
    cancelled = await provider.status(running.external_id)
    assert (cancelled.status, cancelled.raw_status) == (TaskStatus.CANCELLED, "CANCELLED")
    finished = await provider.submit(submit_request("a short one"))
    clock.advance(13)
    await provider.delete(finished.external_id)
    with pytest.raises(ProviderHTTPError) as caught:
        await provider.status(finished.external_id)
    assert caught.value.status_code == 404
    assert [r.method for r in runway.app.state.records("runway_delete")] == ["DELETE", "DELETE"]


async def test_the_manager_cancels_at_runway(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=3600)
    provider = RunwayProvider(KEY, model="veo3.1", base_url=f"{serve(app)}/runway/v1")
    async with TaskManager(providers={"runway": provider}, policy=POLICY) as manager:
        task = await manager.create("a long render", seconds=8)
        cancelled = await manager.cancel(task.id)
        job = await provider.status(task.external_id or "")
    assert cancelled.status is TaskStatus.CANCELLED
    assert app.state.hits["runway_delete"] == 1
    assert job.status is TaskStatus.CANCELLED


async def test_first_and_last_frames_go_to_image_to_video(runway: Runway) -> None:
    first, last = png(), png(36, 64)
    job = await runway.provider.submit(
        submit_request(image=first, last_frame=last, seed=7, audio=False, negative_prompt="fog")
    )
    [record] = runway.app.state.records("runway_create")
    assert record.path == "/runway/v1/image_to_video"
    body = runway.app.state.jobs[job.external_id].fields["body"]
    assert isinstance(body, dict)
    assert [item["position"] for item in body["promptImage"]] == ["first", "last"]
    assert body["promptImage"][0]["uri"].startswith("data:image/png;base64,")
    assert (body["seed"], body["audio"], body["negativePrompt"]) == (7, False, "fog")
    assert (body["ratio"], body["duration"]) == ("1280:720", 8)


@pytest.mark.parametrize(
    ("overrides", "field", "limit"),
    [
        pytest.param({"model": "gen4_turbo", "seconds": 5}, "reference_image", None, id="t2v"),
        pytest.param(
            {"model": "gen4.5", "size": "1104x832", "seconds": 5},
            "size",
            ["1280x720", "720x1280"],
            id="t2v-ratio",
        ),
        pytest.param({"size": "960x960"}, "size", None, id="ratio"),
        pytest.param({"seconds": 5}, "seconds", [4, 6, 8], id="duration"),
        pytest.param({"last_frame": "https://images.example/l.png"}, "last_frame", None, id="l"),
        pytest.param({"image_url": "http://images.example/f.png"}, "reference_image", None),
        pytest.param(
            {"model": "gen4_turbo", "seconds": 5, "image": png(), "audio": True},
            "audio",
            None,
            id="audio",
        ),
    ],
)
async def test_what_the_model_cannot_take_is_refused_before_sending(
    runway: Runway, overrides: dict[str, Any], field: str, limit: object
) -> None:
    with pytest.raises(RunwayRequestError) as caught:
        await runway.provider.submit(submit_request(**overrides))
    assert caught.value.field == field
    if limit is not None:
        assert caught.value.limit == limit
    assert isinstance(caught.value, UnsupportedParameterError)
    assert isinstance(caught.value, ProviderError)
    assert runway.app.state.hits["runway_create"] == 0


async def test_provider_options_are_sent_as_they_are_over_the_table(runway: Runway) -> None:
    options = {"ratio": "1584:672", "contentModeration": {"publicFigureThreshold": "low"}}
    job = await runway.provider.submit(
        submit_request(model="gen4_turbo", image=png(), seconds=5, provider_options=options)
    )
    body = runway.app.state.jobs[job.external_id].fields["body"]
    assert isinstance(body, dict)
    assert body["ratio"] == "1584:672" and body["contentModeration"] == options["contentModeration"]


async def test_the_manager_refuses_an_unoffered_frame_before_storing(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY)
    provider = RunwayProvider(KEY, model="gen4_turbo", base_url=f"{serve(app)}/runway/v1")
    async with TaskManager(providers={"runway": provider}, policy=POLICY) as manager:
        with pytest.raises(UnsupportedParameterError) as caught:
            await manager.create("a red fox", aspect_ratio="1:1", reference_image=make_image(8, 8))
        assert caught.value.limit is not None and "960x960" in caught.value.limit  # type: ignore[operator]
        with pytest.raises(UnsupportedParameterError, match="seconds"):
            await manager.create("a red fox", seconds=12, reference_image=make_image(8, 8))
        # gen4_turbo needs a first frame: a rule between fields, refused by the adapter's check
        with pytest.raises(UnsupportedParameterError, match="first frame"):
            await manager.create("a red fox", seconds=5)
        assert (await manager.list()).items == []
    assert app.state.hits["runway_create"] == 0
