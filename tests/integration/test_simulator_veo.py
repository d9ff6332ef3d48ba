"""VeoProvider against the simulator's Veo shape over a real socket: the manager end to end, the
safety filter, cancel without a provider cancel, the rules between fields, faults and retention."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import pytest

from sora_tasks import TaskManager, TaskStatus, WebhookVerificationError
from sora_tasks._exceptions import (
    InvalidRequestError,
    ProviderAuthError,
    ProviderError,
    ProviderUnsupportedError,
    UnsupportedParameterError,
)
from sora_tasks._models import Limits, Task
from sora_tasks._policy import PollingPolicy
from sora_tasks._schedule import PollSchedule
from sora_tasks.providers import Backoff, Provider, SubmitRequest, VeoProvider
from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._conformance_support import make_image as image_data
from sora_tasks.testing._harness_veo import StaticCredentials
from sora_tasks.testing._simulator import Faults, SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp
from sora_tasks.testing._simulator_state import Pin
from tests.images import make_image
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
KEY = "AIzaSimulated-key-5c2e"
FAST = Backoff(initial=0.01, maximum=0.05)
QUICK = PollSchedule(first_interval=0.05, dense_interval=0.05, max_interval=0.2)
POLICY = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0, schedule=QUICK)


def submit_request(prompt: str = "a calico cat", **overrides: Any) -> SubmitRequest:
    fields: dict[str, Any] = {
        "task_id": "video_1",
        "idempotency_key": f"submit-{prompt}",
        "prompt": prompt,
        "model": "veo-3.1-generate-preview",
        "size": "1280x720",
        "seconds": 8,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        **overrides,
    }
    return SubmitRequest(**fields)


@dataclasses.dataclass
class Veo:
    app: SimulatorApp
    clock: ManualClock
    provider: VeoProvider
    url: str


@pytest.fixture
async def veo(serve: Serve) -> AsyncIterator[Veo]:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY, clock=clock, queue_seconds=0, render_seconds=10, fail_prompts=["forbidden"]
    )
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    try:
        yield Veo(app, clock, provider, url)
    finally:
        await provider.aclose()


async def read_all(provider: Provider, external_id: str) -> bytes:
    async with provider.open_content(external_id) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


async def test_the_manager_takes_an_operation_from_create_to_a_saved_video(
    serve: Serve, tmp_path: Path
) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=0.3)
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    manager = TaskManager(providers={"veo": provider}, policy=POLICY, download_dir=tmp_path)
    async with manager:
        task = await manager.create("a calico cat playing piano", seconds=8)
        assert task.model == "veo-3.1-generate-preview" and task.external_id is not None
        assert task.external_id.startswith("models/veo-3.1-generate-preview/operations/")
        done = await manager.wait(task.id, timeout=30)
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.result is not None and done.result.local_path is not None
    assert Path(done.result.local_path).read_bytes() == SAMPLE
    # kept two days after Veo said done: the download phase fetched it at once
    assert done.result.expires_at is not None and done.completed_at is not None
    assert (done.result.expires_at - done.completed_at).days in (1, 2)
    [create] = app.state.records("veo_create")
    assert create.path == "/veo/v1beta/models/veo-3.1-generate-preview:predictLongRunning"
    assert create.has_authorization and "x-goog-api-key" not in create.headers
    [download] = app.state.records("veo_files")
    assert download.has_authorization and download.query == {"alt": "media"}
    body = app.state.jobs[done.external_id.rsplit("/", 1)[-1]].fields["body"]  # type: ignore[union-attr]
    assert body == {
        "instances": [{"prompt": "a calico cat playing piano"}],
        "parameters": {
            "sampleCount": 1,
            "durationSeconds": 8,
            "aspectRatio": "16:9",
            "resolution": "720p",
        },
    }


async def test_a_blocked_prompt_ends_failed_within_one_poll_of_done(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY, clock=clock, queue_seconds=5, render_seconds=60, fail_prompts=["forbidden"]
    )
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    async with TaskManager(providers={"veo": provider}, policy=POLICY, poll=False) as manager:
        task = await manager.create("something forbidden", seconds=8)
        running = await manager.refresh(task.id)
        assert running.status is TaskStatus.PROCESSING  # no queued state on Veo
        clock.advance(5)  # the filter has spoken: the operation is done, without a sample
        polls = app.state.hits["veo_get"]
        failed = await manager.refresh(task.id)
    assert app.state.hits["veo_get"] == polls + 1
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and failed.error.code == "content_filtered"
    assert "You have not been charged" in failed.error.message
    assert app.state.hits["veo_files"] == 0


async def test_cancel_ends_the_task_here_and_says_veo_goes_on(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=3600)
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    async with TaskManager(providers={"veo": provider}, policy=POLICY, poll=False) as manager:
        task = await manager.create("a long render", seconds=8)
        cancelled = await manager.cancel(task.id)
        again = await manager.cancel(task.id)
    assert cancelled.status is TaskStatus.CANCELLED and again == cancelled
    assert cancelled.error is not None and cancelled.error.code == "not_stopped"
    assert "cannot stop" in cancelled.error.message and "not be fetched" in cancelled.error.message
    assert len(app.state.records()) == 1  # the create alone: nothing was asked to stop
    with pytest.raises(ProviderUnsupportedError):
        await provider.cancel(task.external_id or "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seconds": 6, "resolution": "1080p"}, "seconds"),
        ({"seconds": 4, "resolution": "4k"}, "seconds"),
        ({"seconds": 6, "reference_images": "three"}, "reference_images"),
        ({"seconds": 5}, "seconds"),
        ({"seconds": 8, "reference_images": "four"}, "reference_images"),
        ({"seconds": 8, "seed": 7}, "seed"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored_or_sent(
    serve: Serve, fields: dict[str, Any], field: str
) -> None:
    app = create_simulator_app(api_key=KEY)
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    count = {"three": 3, "four": 4}.get(fields.pop("reference_images", ""), 0)
    images = [make_image(64, 64) for _ in range(count)]
    async with TaskManager(providers={"veo": provider}, policy=POLICY, poll=False) as manager:
        with pytest.raises(InvalidRequestError) as refused:
            await manager.create("a refused render", reference_images=images, **fields)
        listed = await manager.list()
    assert refused.value.field == field, refused.value
    assert listed.items == [] and app.state.records() == []


async def test_the_adapter_checks_the_rules_itself_before_sending(veo: Veo) -> None:
    with pytest.raises(UnsupportedParameterError, match="1080p only at 8 seconds") as refused:
        await veo.provider.submit(submit_request(seconds=4, resolution="1080p", size="1920x1080"))
    assert refused.value.limit == 8
    with pytest.raises(UnsupportedParameterError, match="not a URL"):
        await veo.provider.submit(submit_request(image_url="https://images.example/a.png"))
    assert veo.app.state.records() == []


async def test_frames_and_images_go_where_veo_reads_them(veo: Veo) -> None:
    first, last = image_data("64x64", shade=10), image_data("64x64", shade=20)
    request = submit_request(
        image=first,
        last_frame=last,
        reference_images=(image_data("64x64", shade=30),),
        negative_prompt="text overlays",
        aspect_ratio="9:16",
        size="720x1280",
        provider_options={"personGeneration": "allow_adult"},
    )
    job = await veo.provider.submit(request)
    body = veo.app.state.jobs[job.external_id.rsplit("/", 1)[-1]].fields["body"]
    assert isinstance(body, dict)
    [instance] = body["instances"]
    assert instance["image"]["mimeType"] == "image/png"
    assert set(instance) == {"prompt", "image", "lastFrame", "referenceImages"}
    assert instance["referenceImages"][0]["referenceType"] == "asset"
    assert body["parameters"] == {
        "sampleCount": 1,
        "durationSeconds": 8,
        "aspectRatio": "9:16",
        "resolution": "720p",
        "negativePrompt": "text overlays",
        "personGeneration": "allow_adult",
    }


async def test_person_generation_is_a_default_requests_can_override(veo: Veo) -> None:
    provider = VeoProvider(
        KEY, base_url=f"{veo.url}/veo/v1beta", person_generation="dont_allow", backoff=FAST
    )
    try:
        plain = await provider.submit(submit_request("one"))
        chosen = await provider.submit(
            submit_request("two", provider_options={"personGeneration": "allow_all"})
        )
    finally:
        await provider.aclose()
    jobs = veo.app.state.jobs
    sent = [jobs[j.external_id.rsplit("/", 1)[-1]].fields["body"] for j in (plain, chosen)]
    assert [b["parameters"]["personGeneration"] for b in sent] == ["dont_allow", "allow_all"]  # type: ignore[index]


async def test_the_video_is_gone_after_two_days(veo: Veo) -> None:
    job = await veo.provider.submit(submit_request())
    veo.clock.advance(10)
    done = await veo.provider.status(job.external_id)
    assert done.status is TaskStatus.COMPLETED and done.expires_at is not None
    assert await read_all(veo.provider, job.external_id) == SAMPLE
    veo.app.state.pin(job.external_id.rsplit("/", 1)[-1], Pin("completed", expired=True))
    with pytest.raises(ProviderError, match="404"):
        await read_all(veo.provider, job.external_id)


async def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(veo: Veo) -> None:
    stranger = VeoProvider("AIza-wrong-key-123", base_url=f"{veo.url}/veo/v1beta")
    try:
        with pytest.raises(ProviderAuthError, match="401") as refused:
            await stranger.submit(submit_request())
    finally:
        await stranger.aclose()
    assert "AIza-wrong-key-123" not in str(refused.value)
    assert "AIza-wrong-key-123" not in repr(stranger)


async def test_the_key_comes_from_the_environment(
    veo: Veo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    provider = VeoProvider(base_url=f"{veo.url}/veo/v1beta")
    try:
        job = await provider.submit(submit_request())
    finally:
        await provider.aclose()
    assert job.status is TaskStatus.PROCESSING
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(InvalidRequestError, match="GEMINI_API_KEY"):
        VeoProvider()


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"simulated-gemini-webhook-key").decode()


def sign(body: bytes, *, webhook_id: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Sign as the Gemini API's project webhooks do (Standard Webhooks), computed here."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = int(time.time())
    mac = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


async def test_a_signed_video_generated_event_re_reads_the_operation(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(api_key=KEY, clock=clock, queue_seconds=0, render_seconds=5)
    url = serve(app)
    provider = VeoProvider(
        KEY, base_url=f"{url}/veo/v1beta", webhook_secret=WEBHOOK_SECRET, backoff=FAST
    )
    async with TaskManager(providers={"veo": provider}, poll=False) as manager:
        task = await manager.create("a calico cat", seconds=8)
        clock.advance(10)  # done at Google; only a read can tell the manager
        event = {
            "type": "video.generated",
            "version": "v1",
            "timestamp": "2026-11-30T12:00:00Z",
            "data": {"id": task.external_id, "file_name": "files/abc"},
        }
        body = json.dumps(event).encode()
        forged = sign(body, webhook_id="msg_forged", secret="whsec_" + "A" * 32)
        with pytest.raises(WebhookVerificationError):
            await manager.handle_webhook("veo", forged, body)
        polls = app.state.hits["veo_get"]
        result = await manager.handle_webhook("veo", sign(body, webhook_id="msg_1"), body)
        repeat = await manager.handle_webhook("veo", sign(body, webhook_id="msg_1"), body)
    assert result.outcome == "processed" and result.event_type == "video.generated"
    assert result.task is not None and result.task.status is TaskStatus.COMPLETED
    assert repeat.outcome == "duplicate"
    assert app.state.hits["veo_get"] == polls + 1


class ThreadNotingCredentials(StaticCredentials):
    """Credentials that note which thread refreshed them."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.threads: list[threading.Thread] = []

    def refresh(self, request: object) -> None:
        self.threads.append(threading.current_thread())
        super().refresh(request)


def vertex_provider(url: str, credentials: object, **options: Any) -> VeoProvider:
    return VeoProvider.vertex(
        "my-project",
        "us-central1",
        credentials,
        base_url=f"{url}/vertex/v1",
        storage_url=url,
        backoff=FAST,
        **options,
    )


async def test_vertex_inline_video_is_never_held_whole(serve: Serve, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024 + 7  # base64 of it is ~4 MiB, far over the JSON limit below
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=0.3, content_size=size)
    url = serve(app)
    credentials = ThreadNotingCredentials(KEY)
    provider = vertex_provider(url, credentials, max_response_bytes=16 * 1024)
    manager = TaskManager(providers={"veo": provider}, policy=POLICY, download_dir=tmp_path)
    async with manager:
        task = await manager.create("a calico cat", seconds=8, seed=7, audio=False)
        done = await manager.wait(task.id, timeout=30)
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.result is not None and done.result.local_path is not None
    saved = Path(done.result.local_path).read_bytes()
    assert saved == b"".join(app.state.config.content.chunks())
    [create] = app.state.records("vertex_create")
    assert create.path == (
        "/vertex/v1/projects/my-project/locations/us-central1/publishers/google/models/"
        "veo-3.1-generate-001:predictLongRunning"
    )
    assert create.has_authorization
    body = app.state.jobs[(done.external_id or "").rsplit("/", 1)[-1]].fields["body"]
    assert isinstance(body, dict)
    assert (body["parameters"]["seed"], body["parameters"]["generateAudio"]) == (7, False)
    # the token was fetched once, in a worker thread, never on the event loop's
    assert credentials.refreshes == 1
    assert credentials.threads and credentials.threads[0] is not threading.main_thread()


async def test_vertex_results_in_a_bucket_are_read_with_the_credentials(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY, queue_seconds=0, render_seconds=0.3)
    url = serve(app)
    provider = vertex_provider(url, StaticCredentials(KEY), storage_uri="gs://my-bucket/veo/")
    async with TaskManager(providers={"veo": provider}, policy=POLICY) as manager:
        task = await manager.create("a calico cat", seconds=8)
        done = await manager.wait(task.id, timeout=30)
        job = await provider.status(done.external_id or "")
        video = await read_all(provider, done.external_id or "")
    assert done.status is TaskStatus.COMPLETED, done.error
    assert job.result_url == f"gs://my-bucket/veo/{job.external_id.rsplit('/', 1)[-1]}/sample_0.mp4"
    assert video == SAMPLE
    reads = app.state.records("vertex_storage")
    assert reads and all(r.has_authorization and r.query == {"alt": "media"} for r in reads)
    assert reads[0].path.startswith("/storage/v1/b/my-bucket/o/veo/")


async def test_vertex_refuses_a_storage_uri_that_is_not_a_bucket() -> None:
    with pytest.raises(InvalidRequestError, match="gs://"):
        VeoProvider.vertex("p", "us-central1", StaticCredentials(KEY), storage_uri="s3://x/")
    with pytest.raises(InvalidRequestError, match="project"):
        VeoProvider.vertex("../other", "us-central1", StaticCredentials(KEY))


async def test_vertex_a_filtered_operation_fails_content_filtered(serve: Serve) -> None:
    clock = ManualClock()
    app = create_simulator_app(
        api_key=KEY, clock=clock, queue_seconds=1, render_seconds=5, fail_prompts=["forbidden"]
    )
    url = serve(app)
    provider = vertex_provider(url, StaticCredentials(KEY))
    try:
        job = await provider.submit(submit_request("forbidden", model="veo-3.1-generate-001"))
        clock.advance(2)
        failed = await provider.status(job.external_id)
    finally:
        await provider.aclose()
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None and failed.error.code == "content_filtered"


async def test_an_image_over_veos_20_mb_is_refused_before_anything_is_sent(serve: Serve) -> None:
    app = create_simulator_app(api_key=KEY)
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    big = make_image(64, 64) + b"\x00" * (20 * 1024 * 1024)  # a PNG with 20 MiB of trailing bytes
    limits = Limits(max_image_bytes=64 * 1024 * 1024)  # the library would take it; Veo would not
    async with TaskManager(
        providers={"veo": provider}, policy=POLICY, poll=False, limits=limits
    ) as manager:
        with pytest.raises(InvalidRequestError) as refused:
            await manager.create("a big first frame", reference_image=big, seconds=8)
        listed = await manager.list()
    assert refused.value.field == "reference_image"
    assert refused.value.limit == 20 * 1024 * 1024, refused.value
    assert listed.items == [] and app.state.records() == []


async def test_cancel_while_the_create_is_in_flight_says_the_job_may_run(serve: Serve) -> None:
    app = create_simulator_app(
        api_key=KEY,
        queue_seconds=0,
        render_seconds=3600,
        faults={"veo_create": Faults(slow_responses=1, delay=1.5)},
    )
    url = serve(app)
    provider = VeoProvider(KEY, base_url=f"{url}/veo/v1beta", backoff=FAST)
    created: list[Task] = []
    async with TaskManager(providers={"veo": provider}, policy=POLICY, poll=False) as manager:
        async with anyio.create_task_group() as group:

            async def create() -> None:
                created.append(await manager.create("a slow create", seconds=8))

            group.start_soon(create)
            with anyio.fail_after(10):
                # the count changes in the server's thread, which cannot set an anyio.Event here
                while app.state.hits["veo_create"] == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            [pending] = (await manager.list()).items
            assert pending.external_id is None and pending.submission_id is not None
            cancelled = await manager.cancel(pending.id)
        final = await manager.get(pending.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.error is not None and cancelled.error.code == "not_stopped"
    assert "the job it may have started" in cancelled.error.message
    # the create still answered: its id is kept, so the task says which job goes on
    assert final.status is TaskStatus.CANCELLED and final.external_id is not None
    assert app.state.hits["veo_get"] == 0
