"""An in-process provider with a scriptable lifecycle, for tests, demos and notebooks."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from pydantic import SecretStr

from .._exceptions import ProviderRejectedError
from .._models import MediaType, Task, TaskError, TaskStatus
from .._schedule import PollSchedule
from ..providers._base import (
    ContentStream,
    ContentVariant,
    Provider,
    ProviderCapabilities,
    ProviderJob,
    SubmitRequest,
)

__all__ = ["FakeBehaviour", "FakeProvider", "sample_video"]

Outcome = Literal["completed", "failed", "cancelled", "expired", "unknown"]


def sample_video() -> bytes:
    """The small valid MP4 (2 s, 256x144, H.264) that fakes and the simulator serve as content."""
    return resources.files("sora_tasks.testing").joinpath("sample.mp4").read_bytes()


@dataclass(frozen=True)
class FakeBehaviour:
    """How one fake job unfolds.

    The job waits ``queued_for`` seconds, renders for ``render_for`` seconds with progress rising
    in steps of ``progress_step``, then ends as ``outcome`` (``"unknown"`` keeps answering a status
    word nobody knows). ``submit_error`` is raised by ``submit``; ``poll_errors`` are raised by the
    first status calls, one each, before normal answers resume. ``poll_after`` is the hint
    each answer carries, like OpenAI's ``openai-poll-after-ms``. ``unknown_word`` is the word an
    ``"unknown"`` outcome answers with.
    """

    queued_for: float = 0.0
    render_for: float = 1.0
    progress_step: int = 10
    outcome: Outcome = "completed"
    error: TaskError = field(
        default_factory=lambda: TaskError(code="generation_failed", message="the render failed")
    )
    submit_error: BaseException | None = None
    poll_errors: Sequence[BaseException] = ()
    poll_after: float | None = None
    unknown_word: str = "mystery"


@dataclass
class _Job:
    external_id: str
    request: SubmitRequest
    behaviour: FakeBehaviour
    started: float
    cancelled: bool = False
    cancelled_at: float | None = None
    deleted: bool = False
    pending_errors: Iterator[BaseException] = field(default_factory=lambda: iter(()))


class FakeProvider(Provider):
    """A provider that renders nothing and answers like a real one.

    ``behaviour`` applies to every job; ``script`` (called with each request) overrides it per job,
    for example to fail prompts that mention a word. Everything it was asked is recorded:
    ``submissions``, ``status_calls``, ``cancelled``, the largest number of status calls that
    were in flight at once for one job (``max_concurrent_polls``) and the largest number of jobs
    that were running at once (``max_concurrent_jobs``).
    """

    def __init__(
        self,
        *,
        behaviour: FakeBehaviour | None = None,
        script: Callable[[SubmitRequest], FakeBehaviour | None] | None = None,
        capabilities: ProviderCapabilities | None = None,
        content: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        api_key: str | SecretStr | None = None,
    ) -> None:
        self._behaviour = behaviour or FakeBehaviour()
        self._script = script
        self._capabilities = capabilities or ProviderCapabilities(
            models=frozenset({"fake-video-1", "sora-2", "sora-2-pro"}),
            sizes=frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024", "256x144"}),
            seconds=frozenset({4, 8, 12}),
            media_types=frozenset({MediaType.VIDEO, MediaType.IMAGE}),
            default_model="fake-video-1",
            default_size="1280x720",
            default_seconds=4,
            image_upload=True,
            image_url=True,
            can_cancel=True,
            can_delete=True,
            can_list=True,
            min_poll_interval=0.0,
            # the fake renders in about a second: poll it at that pace
            schedule=PollSchedule(
                first_interval=0.2, dense_window=0.3, dense_interval=0.05, max_interval=2.0
            ),
        )
        self._content = content if content is not None else sample_video()
        self._clock = clock
        self.api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.jobs: dict[str, _Job] = {}
        self.submissions: list[SubmitRequest] = []
        self.status_calls = 0
        self.cancelled: list[str] = []
        self.max_concurrent_polls = 0
        self._in_flight: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FakeProvider(jobs={len(self.jobs)})"

    @property
    def capabilities(self) -> ProviderCapabilities:
        """Generous defaults: several models and sizes, cancel, delete and list."""
        return self._capabilities

    async def submit(self, request: SubmitRequest) -> ProviderJob:
        """Record the request and start a fake job (or raise the scripted error)."""
        self.submissions.append(request)
        behaviour = (self._script(request) if self._script else None) or self._behaviour
        if behaviour.submit_error is not None:
            raise behaviour.submit_error
        job = _Job(
            # unique across processes: a store outlives the fake that filled it
            external_id=f"fake_{uuid.uuid4().hex}",
            request=request,
            behaviour=behaviour,
            started=self._clock(),
            pending_errors=iter(behaviour.poll_errors),
        )
        self.jobs[job.external_id] = job
        return self._view(job)

    async def status(self, external_id: str) -> ProviderJob:
        """The job's state at this moment of the clock."""
        self.status_calls += 1
        job = self._job(external_id)
        in_flight = self._in_flight.get(external_id, 0) + 1
        self._in_flight[external_id] = in_flight
        self.max_concurrent_polls = max(self.max_concurrent_polls, in_flight)
        try:
            error = next(job.pending_errors, None)
            if error is not None:
                raise error
            return self._view(job)
        finally:
            self._in_flight[external_id] -= 1

    @asynccontextmanager
    async def _open(self, external_id: str) -> AsyncIterator[ContentStream]:
        job = self._job(external_id)
        view = self._view(job)
        if view.expired:
            raise ProviderRejectedError(
                f"the content of job {external_id} has expired",
                status_code=404,
                code="expired",
                provider="fake",
            )
        if view.status is not TaskStatus.COMPLETED:
            raise ProviderRejectedError(
                f"job {external_id} has no content yet", status_code=404, provider="fake"
            )
        yield _BytesStream(self._content)

    def open_content(
        self, external_id: str, variant: ContentVariant = "video", *, task: Task | None = None
    ) -> AbstractAsyncContextManager[ContentStream]:
        """Stream the sample video of a completed job."""
        return self._open(external_id)

    @property
    def max_concurrent_jobs(self) -> int:
        """The largest number of jobs that were running at one moment (by this provider's clock)."""
        edges: list[tuple[float, int]] = []
        for job in self.jobs.values():
            behaviour = job.behaviour
            end = job.started + behaviour.queued_for + behaviour.render_for
            if behaviour.outcome == "unknown":
                end = float("inf")
            if job.cancelled_at is not None:
                end = min(end, job.cancelled_at)
            edges += [(job.started, 1), (end, -1)]
        running = most = 0
        for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
            running += step
            most = max(most, running)
        return most

    def rescript(self, external_id: str, behaviour: FakeBehaviour, *, elapsed: float = 0.0) -> None:
        """Make a running job follow ``behaviour`` from now on, as if ``elapsed`` seconds in.

        Scripts a job after it started, the way a test pins a simulated job: ``elapsed`` places
        it inside its queue or render time (half-way through a render of 100 s at 50 s).
        """
        job = self._job(external_id)
        job.behaviour = behaviour
        job.started = self._clock() - elapsed
        job.cancelled = False
        job.cancelled_at = None

    async def cancel(self, external_id: str) -> ProviderJob | None:
        """Stop the job; it answers ``cancelled`` from now on."""
        job = self._job(external_id)
        job.cancelled = True
        job.cancelled_at = self._clock()
        self.cancelled.append(external_id)
        return self._view(job)

    async def delete(self, external_id: str) -> None:
        """Forget the job: further calls answer 404."""
        self._job(external_id).deleted = True

    async def find(self, request: SubmitRequest) -> ProviderJob | None:
        """Find the job started by this request's idempotency key, as a listing API would."""
        for job in self.jobs.values():
            if job.request.idempotency_key == request.idempotency_key and not job.deleted:
                return self._view(job)
        return None

    def _job(self, external_id: str) -> _Job:
        job = self.jobs.get(external_id)
        if job is None or job.deleted:
            raise ProviderRejectedError(
                f"no job {external_id}", status_code=404, code="not_found", provider="fake"
            )
        return job

    def _view(self, job: _Job) -> ProviderJob:
        behaviour = job.behaviour
        elapsed = self._clock() - job.started
        base = {"external_id": job.external_id, "poll_after": behaviour.poll_after}
        if job.cancelled:
            return ProviderJob(**base, status=TaskStatus.CANCELLED, raw_status="cancelled")
        if elapsed < behaviour.queued_for:
            return ProviderJob(**base, status=TaskStatus.QUEUED, raw_status="queued", progress=0)
        rendering = elapsed - behaviour.queued_for
        if rendering < behaviour.render_for:
            fraction = rendering / behaviour.render_for if behaviour.render_for else 1.0
            step = max(1, behaviour.progress_step)
            progress = min(99, int(fraction * 100) // step * step)
            return ProviderJob(
                **base, status=TaskStatus.PROCESSING, raw_status="in_progress", progress=progress
            )
        match behaviour.outcome:
            case "completed":
                return ProviderJob(
                    **base,
                    status=TaskStatus.COMPLETED,
                    raw_status="completed",
                    progress=100,
                    result_url=f"fake://{job.external_id}/content",
                )
            case "failed":
                return ProviderJob(
                    **base, status=TaskStatus.FAILED, raw_status="failed", error=behaviour.error
                )
            case "cancelled":
                return ProviderJob(**base, status=TaskStatus.CANCELLED, raw_status="cancelled")
            case "expired":
                return ProviderJob(
                    **base,
                    status=TaskStatus.FAILED,
                    raw_status="expired",
                    expired=True,
                    error=TaskError(code="expired", message="the job's assets expired"),
                )
            case "unknown":
                return ProviderJob(**base, status=None, raw_status=behaviour.unknown_word)


class _BytesStream(ContentStream):
    def __init__(self, content: bytes, chunk_size: int = 4096) -> None:
        self._content = content
        self._chunk_size = chunk_size
        self.content_length = len(content)
        self.content_type = "video/mp4"

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._content), self._chunk_size):
            yield self._content[start : start + self._chunk_size]
