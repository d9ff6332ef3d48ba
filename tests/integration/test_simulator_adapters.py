"""The real HTTP adapters driven against the simulator over a real socket, faults included."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

import anyio
import pytest

from sora_tasks import TaskStatus
from sora_tasks._download import save_stream
from sora_tasks._exceptions import (
    DownloadError,
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
)
from sora_tasks._models import ImageData, new_task_id
from sora_tasks._validation import decode_image
from sora_tasks.providers import (
    Backoff,
    MultipartRelayProvider,
    OpenAIVideosProvider,
    Provider,
    RelayConfig,
    SubmitRequest,
)
from sora_tasks.testing import create_simulator_app
from sora_tasks.testing._simulator import Faults, SimulatorApp
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.images import make_image
from tests.integration.simulation import ManualClock

pytestmark = pytest.mark.anyio

Serve = Callable[[ASGIApp], str]
SAMPLE = resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()
KEY = "sk-simulated-key"
FAST = Backoff(initial=0.01, maximum=0.05)
RELAY_CONFIG = RelayConfig(path_prefix="/relay/v1/videos")


def submit_request(
    prompt: str = "a calico cat", *, image: ImageData | None = None
) -> SubmitRequest:
    return SubmitRequest(
        task_id=new_task_id(),
        idempotency_key=f"submit-{prompt}",
        prompt=prompt,
        model="sora-2",
        size="1280x720",
        seconds=4,
        image=image,
    )


def png_reference() -> ImageData:
    image = decode_image(make_image(1280, 720, "PNG"), max_bytes=5 * 1024 * 1024)
    assert isinstance(image, ImageData)
    return image


async def read_all(provider: Provider, external_id: str) -> bytes:
    async with provider.open_content(external_id) as stream:
        return b"".join([chunk async for chunk in stream.aiter_bytes()])


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        # the condition changes in the server's thread, which cannot set an anyio.Event here
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@pytest.fixture
async def openai_for(serve: Serve) -> AsyncIterator[Callable[..., OpenAIVideosProvider]]:
    """Build OpenAI adapters pointed at a freshly served simulator; all closed at the end."""
    made: list[OpenAIVideosProvider] = []

    def build(app: SimulatorApp, **kwargs: object) -> OpenAIVideosProvider:
        options: dict[str, object] = {"backoff": FAST, **kwargs}
        provider = OpenAIVideosProvider(api_key=KEY, base_url=f"{serve(app)}/v1", **options)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


@pytest.fixture
async def relay_for(serve: Serve) -> AsyncIterator[Callable[..., MultipartRelayProvider]]:
    """Build relay adapters pointed at a freshly served simulator; all closed at the end."""
    made: list[MultipartRelayProvider] = []

    def build(app: SimulatorApp, **kwargs: object) -> MultipartRelayProvider:
        options: dict[str, object] = {"backoff": FAST, "config": RELAY_CONFIG, **kwargs}
        provider = MultipartRelayProvider(KEY, base_url=serve(app), **options)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


OpenAIFor = Callable[..., OpenAIVideosProvider]
RelayFor = Callable[..., MultipartRelayProvider]


async def test_openai_json_job_polls_to_completion_and_streams_to_a_file(
    openai_for: OpenAIFor, tmp_path: Path
) -> None:
    clock = ManualClock()
    app = create_simulator_app(queue_seconds=1, render_seconds=4, clock=clock, api_key=KEY)
    provider = openai_for(app)
    submitted = await provider.submit(submit_request())
    assert (submitted.status, submitted.poll_after) == (TaskStatus.QUEUED, 1.0)
    clock.advance(3)
    running = await provider.status(submitted.external_id)
    assert (running.status, running.progress) == (TaskStatus.PROCESSING, 50)
    clock.advance(2)
    done = await provider.status(submitted.external_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.expires_at is not None and done.completed_at is not None
    assert (done.expires_at - done.completed_at).total_seconds() == 3600
    async with provider.open_content(done.external_id) as stream:
        saved = await save_stream(stream, tmp_path / "cat.mp4", max_bytes=1 << 20)
    assert (tmp_path / "cat.mp4").read_bytes() == SAMPLE
    assert saved.byte_size == len(SAMPLE)
    (job,) = app.state.jobs.values()
    assert dict(job.fields) == {
        "prompt": "a calico cat",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": "4",
    }
    create = app.state.records("create")[0]
    assert create.has_authorization
    assert create.headers["idempotency-key"] == "submit-a calico cat"


async def test_openai_multipart_upload_passes_the_real_api_checks(openai_for: OpenAIFor) -> None:
    app = create_simulator_app()
    reference = png_reference()
    job = await openai_for(app).submit(submit_request(image=reference))
    assert job.status is TaskStatus.QUEUED
    uploaded = app.state.jobs[job.external_id].reference
    assert uploaded is not None
    assert (uploaded.filename, uploaded.content_type) == ("reference.png", "image/png")
    assert uploaded.data == reference.data


async def test_openai_image_url_goes_as_a_json_reference(openai_for: OpenAIFor) -> None:
    app = create_simulator_app()
    request = dataclasses.replace(submit_request(), image_url="https://img.example/a.png")
    job = await openai_for(app).submit(request)
    fields = app.state.jobs[job.external_id].fields
    assert fields["input_reference"] == {"image_url": "https://img.example/a.png"}


async def test_openai_moderation_failure_is_failed_with_its_code(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(queue_seconds=0, fail_prompts=["forbidden"])
    provider = openai_for(app)
    job = await provider.status(
        (await provider.submit(submit_request("forbidden act"))).external_id
    )
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and job.error.code == "moderation_blocked"


async def test_openai_rate_limit_retry_after_is_slept_then_retried(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"retrieve": Faults(rate_limits=1, retry_after=1)})
    provider = openai_for(app)
    submitted = await provider.submit(submit_request())
    started = time.monotonic()
    job = await provider.status(submitted.external_id)
    assert time.monotonic() - started >= 1.0
    assert job.external_id == submitted.external_id
    assert app.state.hits["retrieve"] == 2


async def test_a_rate_limit_longer_than_max_sleep_is_handed_back(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"retrieve": Faults(rate_limits=1, retry_after=120)})
    provider = openai_for(app, backoff=Backoff(initial=0.01, maximum=0.05, max_sleep=1))
    submitted = await provider.submit(submit_request())
    with pytest.raises(ProviderRateLimitError) as raised:
        await provider.status(submitted.external_id)
    assert raised.value.retry_after == 120
    assert app.state.hits["retrieve"] == 1


async def test_a_rate_limited_create_is_resent_and_makes_one_job(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"create": Faults(rate_limits=1, retry_after=0.1)})
    job = await openai_for(app).submit(submit_request())
    assert (app.state.hits["create"], app.state.creates) == (2, 1)
    assert list(app.state.jobs) == [job.external_id]


async def test_server_errors_on_reads_are_retried_within_the_budget(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"retrieve": Faults(server_errors=2)})
    provider = openai_for(app, max_retries=2)
    submitted = await provider.submit(submit_request())
    assert (await provider.status(submitted.external_id)).external_id == submitted.external_id
    app.state.faults.set("retrieve", Faults(server_errors=3))
    with pytest.raises(ProviderServerError):
        await provider.status(submitted.external_id)
    assert app.state.hits["retrieve"] == 3 + 3


async def test_a_server_error_on_create_is_uncertain_and_not_resent(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"create": Faults(server_errors=1)})
    with pytest.raises(SubmissionUncertainError):
        await openai_for(app).submit(submit_request())
    assert app.state.hits["create"] == 1


async def test_a_slow_read_times_out_and_is_retried(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(faults={"retrieve": Faults(slow_responses=1, delay=1.0)})
    provider = openai_for(app, timeout=0.25)
    submitted = await provider.submit(submit_request())
    assert (await provider.status(submitted.external_id)).external_id == submitted.external_id
    assert app.state.hits["retrieve"] == 2
    app.state.faults.set("retrieve", Faults(slow_responses=3, delay=0.5))
    with pytest.raises(ProviderTransportError):
        await provider.status(submitted.external_id)


async def test_a_slow_create_past_the_timeout_is_uncertain_and_sent_once(
    openai_for: OpenAIFor,
) -> None:
    app = create_simulator_app(faults={"create": Faults(slow_responses=1, delay=0.5)})
    with pytest.raises(SubmissionUncertainError):
        await openai_for(app, timeout=0.1).submit(submit_request())
    await wait_until(lambda: app.state.creates == 1)
    assert app.state.hits["create"] == 1


async def test_a_download_cut_half_way_is_fetched_again_whole(
    openai_for: OpenAIFor, tmp_path: Path
) -> None:
    app = create_simulator_app(
        queue_seconds=0, render_seconds=0, faults={"content": Faults(truncated_bodies=1)}
    )
    provider = openai_for(app)
    external_id = (await provider.submit(submit_request())).external_id
    target = tmp_path / "cut.mp4"
    async with provider.open_content(external_id) as stream:
        saved = await save_stream(stream, target, max_bytes=1 << 20)
    assert target.read_bytes() == SAMPLE
    assert saved.byte_size == len(SAMPLE)
    assert app.state.hits["content"] == 2


async def test_a_download_cut_more_often_than_its_retries_is_an_error_and_leaves_no_file(
    openai_for: OpenAIFor, tmp_path: Path
) -> None:
    app = create_simulator_app(
        queue_seconds=0, render_seconds=0, faults={"content": Faults(truncated_bodies=4)}
    )
    provider = openai_for(app)
    external_id = (await provider.submit(submit_request())).external_id
    target = tmp_path / "cut.mp4"
    with pytest.raises(DownloadError):
        async with provider.open_content(external_id) as stream:
            await save_stream(stream, target, max_bytes=1 << 20)
    assert list(tmp_path.iterdir()) == []
    assert await read_all(provider, external_id) == SAMPLE


async def test_a_dropped_create_is_uncertain_sent_once_and_found_again(
    openai_for: OpenAIFor,
) -> None:
    app = create_simulator_app(faults={"create": Faults(dropped_responses=1)})
    provider = openai_for(app)
    request = submit_request("the answer was lost")
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(request)
    assert (app.state.hits["create"], app.state.creates) == (1, 1)
    found = await provider.find(request)
    assert found is not None
    assert list(app.state.jobs) == [found.external_id]


async def test_a_wrong_key_is_an_auth_error(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(api_key="sk-the-right-one")
    with pytest.raises(ProviderAuthError) as raised:
        await openai_for(app).submit(submit_request())
    assert KEY not in str(raised.value)
    assert app.state.creates == 0


async def test_openai_delete_removes_the_video(openai_for: OpenAIFor) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=0)
    provider = openai_for(app)
    external_id = (await provider.submit(submit_request())).external_id
    await provider.delete(external_id)
    await provider.delete(external_id)
    assert app.state.deleted == {external_id}


async def test_relay_job_runs_to_completion_and_downloads_through_the_redirect(
    relay_for: RelayFor,
) -> None:
    clock = ManualClock()
    app = create_simulator_app(queue_seconds=1, render_seconds=4, clock=clock, api_key=KEY)
    provider = relay_for(app)
    submitted = await provider.submit(submit_request(image=png_reference()))
    assert submitted.status is TaskStatus.QUEUED
    clock.advance(2)
    running = await provider.status(submitted.external_id)
    assert (running.status, running.progress) == (TaskStatus.PROCESSING, 25)
    clock.advance(3)
    done = await provider.status(submitted.external_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.result_url is not None and done.result_url.endswith("/download")
    assert await read_all(provider, submitted.external_id) == SAMPLE
    job = app.state.jobs[submitted.external_id]
    assert (job.prompt, job.seconds, job.size) == ("a calico cat", "4", "1280x720")
    assert job.reference is not None and job.reference.content_type == "image/png"
    assert [r.route for r in app.state.records()][-2:] == ["relay_download", "files"]


async def test_relay_raw_key_auth_is_accepted(relay_for: RelayFor) -> None:
    app = create_simulator_app(api_key=KEY)
    provider = relay_for(app, config=RELAY_CONFIG.model_copy(update={"auth_scheme": "raw"}))
    await provider.submit(submit_request())
    assert app.state.creates == 1


async def test_relay_credentials_stay_off_a_foreign_download_host(relay_for: RelayFor) -> None:
    app = create_simulator_app(queue_seconds=0, render_seconds=0, files_host="localhost")
    provider = relay_for(app)
    external_id = (await provider.submit(submit_request())).external_id
    assert await read_all(provider, external_id) == SAMPLE
    download, file = app.state.records()[-2:]
    assert (download.route, download.has_authorization) == ("relay_download", True)
    assert (file.route, file.has_authorization) == ("files", False)


async def test_relay_moderation_failure_is_failed(relay_for: RelayFor) -> None:
    app = create_simulator_app(queue_seconds=0, fail_prompts=["forbidden"])
    provider = relay_for(app)
    job = await provider.status((await provider.submit(submit_request("forbidden"))).external_id)
    assert job.status is TaskStatus.FAILED
    assert job.error is not None and "moderation_blocked" in job.error.message


async def test_relay_faults_rate_limit_drop_and_cut(relay_for: RelayFor) -> None:
    app = create_simulator_app(
        queue_seconds=0,
        render_seconds=0,
        faults={
            "relay_create": Faults(rate_limits=1, retry_after=0.1, dropped_responses=1),
            "files": Faults(truncated_bodies=1),
        },
    )
    provider = relay_for(app)
    with pytest.raises(SubmissionUncertainError):
        await provider.submit(submit_request("first"))
    assert (app.state.hits["relay_create"], app.state.creates) == (2, 1)
    (external_id,) = app.state.jobs
    with pytest.raises(DownloadError):
        await read_all(provider, external_id)
    assert await read_all(provider, external_id) == SAMPLE
