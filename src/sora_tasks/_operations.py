"""What the engine does to one task: submit it in two phases, poll it, resolve an uncertain
submit, fetch its video. Every outcome is one conditional, shielded write.

The dispatch (which task, when, by which worker) is the engine's, in ``_poller``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar, Unpack

import anyio

from ._circuits import HealthBook
from ._deadlines import bounded
from ._download import SavedFile, check_target, save_stream
from ._download_pace import Pace
from ._events import EventHub
from ._exceptions import (
    ConflictError,
    DownloadError,
    DuplicateExternalIdError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTransportError,
    ProviderUnsupportedError,
    SubmissionUncertainError,
)
from ._filenames import default_filename
from ._lease import LeaseKeeper
from ._logging import log_task
from ._models import (
    ImageData,
    Limits,
    RouteStep,
    SkippedProvider,
    Task,
    TaskCost,
    TaskError,
    TaskQuery,
    TaskResult,
    TaskStatus,
)
from ._planner import Planner, kind_of
from ._policy import PollingPolicy
from ._prices import PriceTable, provider_kind
from ._routes import Refusal, refusal
from ._saved import SavedContent
from ._schedule import PollSchedule, Track
from ._secrets import scrub
from ._states import Phase, TaskChanges, phase_of
from ._submission import submit_request
from ._telemetry import provider_span, record_detection_delay, record_poll, store_timer
from .archive._base import (
    DEFAULT_KEY_TEMPLATE,
    Archive,
    ArchiveError,
    archive_key,
    thumbnail_key,
)
from .archive._upload import ArchivedObject, archive_stream
from .providers._base import ContentStream, ContentVariant, Provider, ProviderJob
from .storage._base import TaskStore

__all__ = ["TaskOperations"]

_T = TypeVar("_T")
# the engine's own backstop fires this long after the bound the HTTP layer enforces itself, so
# that a call which honours the bound fails with its own, better classified, error
_BACKSTOP_GRACE = 2.0
# after these, the create provably did not start a job (the adapters' contract)
_NOT_SENT = (ProviderTransportError, ProviderRateLimitError, ProviderServerError)


class TaskOperations:
    """The per-task use cases of the engine, shared by the manager and the dispatch loop.

    ``on_scheduled`` is told each ``next_poll_at`` written, so a dispatcher can wake early.
    ``health`` holds the providers' circuit breakers, fed by every create and poll made here;
    ``prices`` is the table task costs are estimated and accounted with.
    """

    def __init__(
        self,
        *,
        store: TaskStore,
        providers: Mapping[str, Provider],
        policy: PollingPolicy,
        events: EventHub,
        clock: Callable[[], datetime],
        limits: Limits,
        download_dir: Path | None = None,
        checksum_downloads: bool = True,
        archive: Archive | None = None,
        archive_key: str = DEFAULT_KEY_TEMPLATE,
        health: HealthBook | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self._store = store
        self._providers = providers
        self._policy = policy
        self._events = events
        self.clock = clock
        self._limits = limits
        self._download_dir = download_dir
        self._checksum = checksum_downloads
        self.planner = Planner()
        self._schedules: dict[tuple[str, str | None], PollSchedule] = {}
        self.archive = archive
        self._archive_key = archive_key
        self.on_scheduled: Callable[[datetime], None] = lambda _: None
        self.health = health or HealthBook(providers)
        self.prices = prices if prices is not None else PriceTable.shipped()

    async def learn_from_store(self, limit: int = 500) -> int:
        """Seed the schedule with the render times of the store's latest completed tasks."""
        page = await self._store.list(
            TaskQuery(status=TaskStatus.COMPLETED, limit=limit, order="desc")
        )
        schedules = {name: self.schedule_of(name) for name in self._providers}
        return self.planner.seed(reversed(page.items), schedules)

    def schedule_of(self, provider: str, model: str | None = None) -> PollSchedule:
        """The schedule polls of ``provider``'s jobs follow: the policy's, else the one the
        provider declares for ``model`` (models render at their own pace), else its own."""
        if self._policy.schedule is not None:
            return self._policy.schedule
        # asked on every poll, and adapters build a model's capabilities anew each time
        schedule = self._schedules.get((provider, model))
        if schedule is None:
            adapter = self._providers[provider]
            known = adapter.capabilities_for(model) if model is not None else None
            schedule = self._schedules[provider, model] = (known or adapter.capabilities).schedule
        return schedule

    async def submit(self, task: Task, images: Sequence[ImageData] = ()) -> Task:
        """Send the create for ``task`` in two phases and record the provider's answer.

        The submission id is stored before the request leaves; the external id right after.
        """
        if task.route is not None and not self.health.allow(task.provider):
            moved = await self._pass_open_circuits(task)
            if moved is None:
                closed = ProviderTransportError(
                    f"every provider of route {task.route!r} from {task.provider!r} on has an "
                    "open circuit",
                    provider=task.provider,
                )
                return await self._not_sent(task, closed)
            task = moved
            if task.submission_id is None:
                return task  # left WAITING for a provider with a cap
        provider = self._providers[task.provider]
        self._bound(task, create=True)  # no submission is recorded under a lease about to end
        if task.submission_id is None:
            task = await self._write(
                task, submission_id=f"sub_{uuid.uuid4().hex}", submitted_at=self.clock()
            )
        request = await submit_request(task, self._store, images)
        log_task(logging.INFO, "submitting", task, action="submit", attempt=task.submission_id)
        try:
            job = await self._call(task, "submit", lambda: provider.submit(request), create=True)
        except SubmissionUncertainError as exc:
            return await self._uncertain(task, exc)
        except ProviderError as exc:
            refused = refusal(exc) if task.route is not None else None
            moved = await self._fail_over(task, refused) if refused is not None else None
            if moved is not None:
                if moved.submission_id is None:
                    return moved  # left WAITING for a provider with a cap
                return await self.submit(moved, images)
            if isinstance(exc, _NOT_SENT):
                return await self._not_sent(task, exc)
            code = (
                exc.code if isinstance(exc, ProviderHTTPError) and exc.code else "submit_rejected"
            )
            rejected = TaskError(code=code, message=str(exc), request_id=exc.request_id)
            return await self._finish(task, TaskStatus.FAILED, error=rejected, spent=False)
        return await self._bind(task, job)

    async def poll(self, task: Task) -> Task:
        """Ask the provider about ``task`` once and store what it says."""
        now = self.clock()
        if task.deadline_at is not None and now >= task.deadline_at:
            return await self.timeout(task)
        provider = self._providers.get(task.provider)
        if provider is None:
            return await self._write(
                task,
                lease_owner=None,
                lease_expires_at=None,
                next_poll_at=now + timedelta(seconds=self._policy.lease_seconds),
            )
        external_id = task.external_id
        assert external_id is not None
        try:
            job = await self._call(task, "status", lambda: provider.status(external_id))
        except ProviderHTTPError as exc:
            record_poll(task.provider, "error")
            if exc.status_code in (404, 410):
                error = TaskError(
                    code="lost",
                    message=f"the provider no longer knows job {task.external_id}",
                    request_id=exc.request_id,
                )
                return await self._finish(task, TaskStatus.FAILED, error=error)
            return await self._poll_failed(task, exc)
        except ProviderError as exc:
            record_poll(task.provider, "error")
            return await self._poll_failed(task, exc)
        record_poll(task.provider, "ok")
        return await self._collect(await self._write(task, **self._changes(task, job, now)))

    async def record_saved(self, task_id: str, saved: SavedFile) -> Task:
        """Record in the task where a copy of its content was saved (by the caller's request)."""
        task = await self._store.get(task_id)
        updated = await self._store.update(task_id, result=_saved_result(task, saved))
        self._events.publish(task, updated)
        return updated

    @property
    def collects(self) -> bool:
        """Whether the engine saves content itself (into ``download_dir`` or the archive)."""
        return self._download_dir is not None or self.archive is not None

    async def collect(self, task: Task) -> Task:
        """Save a ``COLLECTING`` task's video into ``download_dir`` and the archive, ending its
        content phase.

        The lease is kept alive while the video streams. A failure leaves the task due again
        after a backoff, for any worker, until the provider's link is known to have expired:
        only then does the task end FAILED with ``error.code == "expired"``.
        """
        if not self.collects:
            return task
        keeper = LeaseKeeper(self._store, task, lease_seconds=self._policy.lease_seconds)
        try:
            result = await keeper.run(lambda: self._gather(keeper.task))
        except (DownloadError, ArchiveError, OSError) as exc:
            return await self._collect_failed(keeper.task, exc)
        return await self._write(keeper.task, result=result, content_pending=False)

    async def _gather(self, task: Task) -> TaskResult:
        """Save the video where the manager keeps videos; the task's result, updated."""
        result = task.result or TaskResult()
        saved = None
        if self._download_dir is not None:
            saved = await self._save(task, self._download_dir / default_filename(task))
            result = _saved_result(task, saved)
        if self.archive is None:
            return result
        key = archive_key(self._archive_key, task)
        if saved is not None:
            # the copy on disk is uploaded: the provider is asked for the video once
            local = SavedContent(saved.path, byte_size=saved.byte_size, media_type=task.media_type)
            archived = await self._archive(key, local)
        else:
            async with self._content(task, "video") as stream:
                archived = await self._archive(key, stream)
        log_task(logging.INFO, f"archived {archived.byte_size:,} bytes", task, action="archive")
        update: dict[str, object] = {
            "archive_uri": archived.uri,
            "archive_byte_size": archived.byte_size,
            "archive_sha256": archived.sha256,
        }
        thumbnail = await self._archive_thumbnail(task, key)
        if thumbnail is not None:
            update["thumbnail_uri"] = thumbnail.uri
        return result.model_copy(update=update)

    async def _archive(self, key: str, stream: ContentStream) -> ArchivedObject:
        assert self.archive is not None
        limits = self._limits
        pace = Pace(
            limits.download_min_bytes_per_second,
            limits.download_speed_window,
            limits.download_stall_timeout,
        )
        return await archive_stream(
            self.archive, key, stream, max_bytes=limits.max_download_bytes, pace=pace
        )

    @asynccontextmanager
    async def _content(self, task: Task, variant: ContentVariant) -> AsyncIterator[ContentStream]:
        """The provider's content of ``task``; its errors as :class:`DownloadError`."""
        assert task.external_id is not None
        provider = self._providers[task.provider]
        try:
            with provider_span("content", task):
                async with provider.open_content(task.external_id, variant, task=task) as stream:
                    yield stream
        except ProviderError as exc:
            raise DownloadError(f"could not download task {task.id}: {exc}") from exc

    async def _archive_thumbnail(self, task: Task, video_key: str) -> ArchivedObject | None:
        """Archive the provider's thumbnail beside the video, where it has one.

        A provider without thumbnails is skipped quietly, and so is an answer that is not an
        image (some adapters answer every variant with the video itself). A thumbnail that
        fails is logged and skipped: the video is what the content phase owes.
        """
        try:
            async with self._content(task, "thumbnail") as stream:
                if not (stream.content_type or "").startswith("image/"):
                    return None
                return await self._archive(thumbnail_key(video_key, stream.content_type), stream)
        except DownloadError as exc:
            cause = exc.__cause__
            unsupported = isinstance(cause, ProviderUnsupportedError) or (
                isinstance(cause, ProviderHTTPError) and cause.status_code in (400, 404, 422)
            )
            if not unsupported:
                log_task(logging.WARNING, f"no thumbnail archived: {exc}", task, action="archive")
        except ArchiveError as exc:
            log_task(logging.WARNING, f"no thumbnail archived: {exc}", task, action="archive")
        return None

    async def save(self, stream: ContentStream, path: str | os.PathLike[str]) -> SavedFile:
        """Save ``stream`` to ``path`` under the manager's size and pace limits."""
        limits = self._limits
        return await save_stream(
            stream,
            path,
            max_bytes=limits.max_download_bytes,
            checksum=self._checksum,
            min_bytes_per_second=limits.download_min_bytes_per_second,
            speed_window=limits.download_speed_window,
            stall_timeout=limits.download_stall_timeout,
        )

    async def _save(self, task: Task, path: str | os.PathLike[str]) -> SavedFile:
        assert task.external_id is not None
        provider = self._providers[task.provider]
        await check_target(path)  # a bad target fails before the content is asked for
        try:
            with provider_span("content", task):
                async with provider.open_content(task.external_id, task=task) as stream:
                    return await self.save(stream, path)
        except ProviderError as exc:
            raise DownloadError(f"could not download task {task.id}: {exc}") from exc

    async def _collect_failed(self, task: Task, exc: Exception) -> Task:
        now = self.clock()
        expires = _link_expires(task, self._policy.link_lifetime)
        cause = exc.__cause__
        gone = isinstance(cause, ProviderHTTPError) and cause.status_code in (404, 410)
        if gone or now >= expires:
            error = TaskError(
                code="expired",
                message=f"the video could not be saved before the provider's link expired: {exc}",
                request_id=_request_id(exc),
            )
            return await self._finish(task, TaskStatus.FAILED, error=error)
        failures = task.poll_failures + 1
        delay = min(self._policy.backoff(failures), max(1.0, (expires - now).total_seconds()))
        log_task(
            logging.WARNING,
            f"saving the video failed ({exc}); trying again in {delay:.1f}s",
            task,
            action="download",
            request_id=_request_id(exc),
        )
        return await self._write(
            task,
            poll_failures=failures,
            lease_owner=None,
            lease_expires_at=None,
            next_poll_at=now + timedelta(seconds=delay),
        )

    async def cancel(self, task: Task) -> Task:
        """Mark ``task`` CANCELLED if it is unchanged, then ask the provider to stop its job.

        Raises :class:`ConflictError` when the task moved on since it was read. A provider that
        fails to cancel leaves the job to finish on its own (logged); one that cannot cancel at
        all leaves it too, and the task's error (``not_stopped``) says so.
        """
        provider = self._providers.get(task.provider)
        sent = task.external_id or task.submission_id
        if provider is not None and sent and not provider.capabilities.can_cancel:
            # the job goes on at the provider: the task says so instead of looking stopped
            job = f"job {task.external_id!r}" if task.external_id else "the job it may have started"
            note = TaskError(
                code="not_stopped",
                message=f"cancelled here only: provider {task.provider!r} cannot stop {job}, "
                "which may still run and be billed; its video will not be fetched",
            )
            return await self._write(task, status=TaskStatus.CANCELLED, error=note)
        if not sent:
            # never sent: nothing is owed
            cancelled = await self._write(task, status=TaskStatus.CANCELLED, cost=None)
        else:
            cancelled = await self._write(task, status=TaskStatus.CANCELLED)
        external_id = cancelled.external_id
        if provider is not None and external_id and provider.capabilities.can_cancel:
            await _best_effort(lambda: provider.cancel(external_id), cancelled, "cancel")
        return cancelled

    async def _collect(self, task: Task) -> Task:
        # the worker that saw the job finish keeps its lease and saves the video at once; a task
        # written without a lease (an out-of-schedule refresh) is left to whichever worker claims it
        if phase_of(task) is not Phase.COLLECTING or task.lease_owner is None:
            return task
        return await self.collect(task)

    async def _pin(self, task: Task) -> Task:
        """Keep a routed task at its provider for good: a create sent there may have started
        a job, so the providers after it on its route are dropped."""
        later = _steps_after(task)
        if not later:
            return task
        return await self._write(task, route_steps=task.route_steps[: -len(later)])

    async def resolve_uncertain(self, task: Task) -> Task:
        """Apply the submit-uncertain policy to a task whose create may have been sent."""
        task = await self._pin(task)  # a create was sent (we may have died waiting for it)
        policy = self._policy.submit_uncertain
        if policy == "fail":
            return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error(policy))
        provider = self._providers[task.provider]
        request = await submit_request(task, self._store)
        try:
            job = await self._call(task, "find", lambda: provider.find(request))
        except ProviderError as exc:
            return await self._poll_failed(task, exc)
        if job is not None:
            log_task(logging.INFO, "reconciled an uncertain submit", task, action="reconcile")
            try:
                return await self._bind(task, job)
            except DuplicateExternalIdError:
                # the match belongs to another task: ours was not found after all
                log_task(
                    logging.WARNING, "the matching job is another task's", task, action="reconcile"
                )
                task = await self._store.get(task.id)
        now = self.clock()
        sent = task.submitted_at or now
        if now < sent + timedelta(seconds=self._policy.reconcile_window):
            # a create the client gave up on may still be running at the provider: its job can
            # appear later, and resubmitting or failing now would leave it paid for and unused
            again = now + timedelta(seconds=max(self._policy.reconcile_delay, 0.1))
            return await self._write(
                task, lease_owner=None, lease_expires_at=None, next_poll_at=again
            )
        if policy == "resubmit":
            log_task(
                logging.WARNING, "resubmitting after an uncertain submit", task, action="resubmit"
            )
            return await self.submit(task)
        return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error(policy))

    async def _bind(self, task: Task, job: ProviderJob) -> Task:
        now = self.clock()
        changes = self._changes(task, job, now)
        changes["external_id"] = job.external_id
        try:
            return await self._collect(await self._write(task, **changes))
        except ConflictError:
            current = await self._store.get(task.id)
            if not current.is_terminal:
                raise
            # cancelled while the create was in flight: keep the id so the job can be stopped
            bound = await self._write(current, external_id=job.external_id)
            provider = self._providers[task.provider]
            if provider.capabilities.can_cancel:
                await _best_effort(lambda: provider.cancel(job.external_id), bound, "cancel")
            return bound

    def _changes(self, task: Task, job: ProviderJob, now: datetime) -> TaskChanges:
        changes: TaskChanges = {
            "lease_owner": None,
            "lease_expires_at": None,
            "poll_failures": 0,
            "polled_at": now,
        }
        match job.status:
            case TaskStatus.COMPLETED:
                self._learn(task, job, now)
                if job.completed_at is not None:
                    delay = (now - job.completed_at).total_seconds()
                    record_detection_delay(task.provider, delay)
                changes.update(
                    {
                        "status": TaskStatus.COMPLETED,
                        "result": TaskResult(url=job.result_url, expires_at=job.expires_at),
                    }
                )
                rendered = self.prices.rendered(
                    self.price_names(task.provider), task, compute_seconds=job.render_seconds
                )
                if rendered is not None:
                    changes["cost"] = rendered
                if self.collects:
                    # completion and "video still to save" land in one write, so a crash
                    # after it leaves the task due for any worker, not forgotten
                    del changes["lease_owner"], changes["lease_expires_at"]
                    changes.update({"content_pending": True, "next_poll_at": now})
                return changes
            case TaskStatus.FAILED:
                error = job.error or TaskError(
                    code="provider_error", message="the provider reported a failure"
                )
                if job.expired:
                    error = TaskError(code="expired", message=error.message)
                changes.update({"status": TaskStatus.FAILED, "error": _scrubbed(error)})
                self.planner.forget(task.id)
                return changes
            case TaskStatus.CANCELLED:
                changes["status"] = TaskStatus.CANCELLED
                self.planner.forget(task.id)
                return changes
        # a provider that says "queued" again after rendering began does not move us back
        status = TaskStatus.PROCESSING if job.status is TaskStatus.PROCESSING else task.status
        before = _track(task)
        capabilities = self._providers[task.provider].capabilities
        track, delay = self.planner.plan(
            task.id,
            kind_of(task),
            before,
            None if job.status is None else status,
            job.progress or 0,
            now.timestamp(),
            schedule=self.schedule_of(task.provider, task.model),
            hint=job.poll_after,
            hint_is_floor=capabilities.poll_hint_is_floor,
            min_interval=capabilities.min_poll_interval,
        )
        # the floor counts from the answer, not from the request: what the provider sees is the
        # gap between two requests' arrivals, and the first may have travelled slower
        floor_at = self.clock() + timedelta(seconds=capabilities.min_poll_interval)
        next_poll_at = max(now + timedelta(seconds=delay), floor_at)
        changes.update(
            {
                "status": status,
                "progress": track.progress,
                "start_progress": track.anchor_progress,
                "next_poll_at": next_poll_at,
            }
        )
        if track.anchor_at is not None:
            changes["started_at"] = datetime.fromtimestamp(track.anchor_at, UTC)
        if track.moved_at is not None and track.moved_at != before.moved_at:
            changes["progress_at"] = now
        self.on_scheduled(next_poll_at)
        return changes

    async def _poll_failed(self, task: Task, exc: ProviderError) -> Task:
        failures = task.poll_failures + 1
        if failures >= self._policy.max_poll_failures:
            code = exc.code if isinstance(exc, ProviderHTTPError) and exc.code else "provider_error"
            message = f"{failures} polls in a row failed; last: {exc}"
            error = TaskError(code=code, message=message, request_id=exc.request_id)
            return await self._finish(task, TaskStatus.FAILED, error=error)
        delay = self._policy.backoff(failures)
        if isinstance(exc, ProviderHTTPError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log_task(
            logging.WARNING,
            f"poll failed ({exc}); retrying in {delay:.1f}s",
            task,
            action="poll",
            request_id=exc.request_id,
        )
        return await self._write(
            task,
            poll_failures=failures,
            lease_owner=None,
            lease_expires_at=None,
            next_poll_at=self.clock() + timedelta(seconds=delay),
        )

    async def _not_sent(self, task: Task, exc: ProviderError) -> Task:
        failures = task.poll_failures + 1
        if failures >= self._policy.max_poll_failures:
            error = TaskError(
                code="submit_failed",
                message=f"the create could not be sent: {exc}",
                request_id=exc.request_id,
            )
            return await self._finish(task, TaskStatus.FAILED, error=error, spent=False)
        delay = self._policy.backoff(failures)
        if isinstance(exc, ProviderHTTPError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log_task(
            logging.WARNING,
            f"create not sent ({exc}); trying again in {delay:.1f}s",
            task,
            action="submit",
            request_id=exc.request_id,
        )
        return await self._write(
            task,
            submission_id=None,
            poll_failures=failures,
            lease_owner=None,
            lease_expires_at=None,
            next_poll_at=self.clock() + timedelta(seconds=delay),
        )

    async def _fail_over(self, task: Task, refused: Refusal) -> Task | None:
        """Move a routed task whose create certainly started nothing to the next provider of
        its route, recording why each provider was passed over; ``None`` at the route's end.

        A provider with a cap gets the task WAITING, for the engine to submit within the cap.
        """
        passed, current = [*task.skipped], task.provider
        for step in _steps_after(task):
            passed.append(_skip(current, refused, self.clock()))
            current = step.provider
            if not self.health.allow(current):
                state = self.health.state(current).value
                refused = Refusal("circuit_open", f"its circuit is {state}: recent calls failed")
                continue
            log_task(
                logging.WARNING,
                f"passing over {task.provider} ({passed[-1].reason}); trying {current}",
                task,
                action="route",
            )
            changes: TaskChanges = {
                "provider": current,
                "model": step.model,
                "size": step.size,
                "seconds": step.seconds,
                "aspect_ratio": step.aspect_ratio,
                "resolution": step.resolution,
                "skipped": passed,
                "submitted_at": self.clock(),
                "submission_id": f"sub_{uuid.uuid4().hex}",
            }
            changes["cost"] = self.estimate(task.model_copy(update=dict(changes)))
            if self._capped(current):
                changes.update(
                    {
                        "submission_id": None,
                        "lease_owner": None,
                        "lease_expires_at": None,
                        "next_poll_at": self.clock(),
                    }
                )
                moved = await self._write(task, **changes)
                self.on_scheduled(self.clock())
                return moved
            return await self._write(task, **changes)
        return None

    def estimate(self, task: Task) -> TaskCost | None:
        """What ``task`` should cost at its provider, by the price table (a price by compute
        time expects the time the schedule believes a job takes)."""
        expected = self.schedule_of(task.provider, task.model).expected_seconds
        return self.prices.estimate(
            self.price_names(task.provider), task, expected_compute=expected
        )

    def price_names(self, provider: str) -> list[str]:
        """The names ``provider``'s prices are listed under: its own, then its adapter kind."""
        return [provider, provider_kind(self._providers[provider])]

    def _capped(self, provider: str) -> bool:
        """Whether ``provider``'s jobs wait for room under a cap (as ``Engine.max_in_flight``)."""
        if provider in self._policy.max_in_flight:
            return True
        return self._providers[provider].capabilities.max_in_flight is not None

    async def _pass_open_circuits(self, task: Task) -> Task | None:
        """A routed task moved past the providers whose circuits are open; ``None`` if none
        of those left on its route may be tried now."""
        state = self.health.state(task.provider).value
        refused = Refusal("circuit_open", f"its circuit is {state}: recent calls failed")
        return await self._fail_over(task, refused)

    async def _uncertain(self, task: Task, exc: SubmissionUncertainError) -> Task:
        log_task(
            logging.WARNING,
            f"submission uncertain: {exc}",
            task,
            action="submit",
            request_id=exc.request_id,
        )
        task = await self._pin(task)
        if self._policy.submit_uncertain == "fail":
            error = _uncertain_error("fail", exc.request_id)
            return await self._finish(task, TaskStatus.FAILED, error=error)
        delay = timedelta(seconds=self._policy.reconcile_delay)
        return await self._write(
            task, lease_owner=None, lease_expires_at=None, next_poll_at=self.clock() + delay
        )

    async def timeout(self, task: Task) -> Task:
        error = TaskError(
            code="timeout",
            message=f"no result before the deadline {task.deadline_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        return await self._finish(task, TaskStatus.FAILED, error=error)

    async def _finish(
        self,
        task: Task,
        status: TaskStatus,
        *,
        error: TaskError | None = None,
        spent: bool = True,
    ) -> Task:
        """End ``task``; ``spent=False`` when it certainly started no job (nothing is owed)."""
        error = _scrubbed(error) if error is not None else None
        log_task(
            logging.INFO,
            f"task ended {status.value}",
            task,
            action="finish",
            code=error.code if error else None,
            request_id=error.request_id if error else None,
        )
        if not spent:
            return await self._write(task, status=status, error=error, cost=None)
        return await self._write(task, status=status, error=error)

    async def _call(
        self,
        task: Task,
        operation: str,
        call: Callable[[], Awaitable[_T]],
        *,
        create: bool = False,
    ) -> _T:
        """Run one provider call within the task's bound (see ``PollingPolicy.call_timeout``),
        in a span named after ``operation``.

        The HTTP layer enforces the bound itself (through :func:`bounded`); a cancel scope a
        little later, still inside the lease, is the backstop for providers that do not say
        they honour it (``Provider.honours_call_bounds``).
        """
        try:
            result = await self._bounded_call(task, operation, call, create=create)
        except ProviderError as exc:
            self.health.record(task.provider, exc)
            raise
        self.health.record(task.provider, None)
        return result

    async def _bounded_call(
        self, task: Task, operation: str, call: Callable[[], Awaitable[_T]], *, create: bool
    ) -> _T:
        seconds, backstop = self._bound(task, create=create)
        with provider_span(operation, task):
            if self._providers[task.provider].honours_call_bounds:
                with bounded(seconds):
                    return await call()
            with bounded(seconds), anyio.move_on_after(backstop):
                return await call()
            message = f"the {task.provider} call took longer than its bound of {seconds:.1f} s"
            if create:
                raise SubmissionUncertainError(
                    f"{message}; the job may have started", provider=task.provider
                )
            raise ProviderTransportError(message, provider=task.provider)

    def _bound(self, task: Task, *, create: bool = False) -> tuple[float, float]:
        """The call's bound and the backstop's, in seconds from now."""
        now = self.clock()
        seconds = self._policy.call_timeout
        backstop = seconds + _BACKSTOP_GRACE
        if task.lease_expires_at is not None:
            left = (task.lease_expires_at - now).total_seconds()
            margin = self._policy.lease_margin
            if left <= margin:
                # a peer may take the task over any moment: calling now could poll one job twice
                raise ConflictError(f"the lease on task {task.id} is about to run out")
            seconds = min(seconds, left - margin)
            backstop = min(backstop, left - margin / 2)
        # a create cut off by the deadline would leave a job that may exist: let it answer
        if task.deadline_at is not None and not task.is_terminal and not create:
            left = max(0.0, (task.deadline_at - now).total_seconds())
            seconds = min(seconds, left)
            backstop = min(backstop, left + _BACKSTOP_GRACE)
        return seconds, backstop

    async def _write(self, task: Task, **changes: Unpack[TaskChanges]) -> Task:
        # the final write of an operation must land even if our caller is being cancelled
        with anyio.CancelScope(shield=True), store_timer("update"):
            updated = await self._store.update(task.id, expected_version=task.version, **changes)
        self._events.publish(task, updated)
        return updated

    def _learn(self, task: Task, job: ProviderJob, now: datetime) -> None:
        if task.submitted_at is None:
            return
        finished = job.completed_at or now
        self.planner.completed(
            task.id,
            kind_of(task),
            submitted_at=task.submitted_at.timestamp(),
            started_at=task.started_at.timestamp() if task.started_at else None,
            completed_at=finished.timestamp(),
            schedule=self.schedule_of(task.provider, task.model),
        )


def _steps_after(task: Task) -> list[RouteStep]:
    """The steps of ``task``'s route after the provider it is at now."""
    providers = [step.provider for step in task.route_steps]
    if task.provider not in providers:
        return []
    return task.route_steps[providers.index(task.provider) + 1 :]


def _skip(provider: str, refused: Refusal, now: datetime) -> SkippedProvider:
    return SkippedProvider(
        provider=provider, code=refused.code, reason=scrub(refused.reason)[:500], at=now
    )


def _track(task: Task) -> Track:
    """What the schedule knows of ``task``, rebuilt from its stored fields."""
    submitted = task.submitted_at or task.created_at
    return Track(
        submitted_at=submitted.timestamp(),
        status=task.status,
        progress=task.progress,
        anchor_at=task.started_at.timestamp() if task.started_at else None,
        anchor_progress=task.start_progress,
        moved_at=(task.progress_at or submitted).timestamp(),
        seen_at=task.polled_at.timestamp() if task.polled_at else None,
    )


def _saved_result(task: Task, saved: SavedFile) -> TaskResult:
    return (task.result or TaskResult()).model_copy(
        update={
            "local_path": str(saved.path),
            "byte_size": saved.byte_size,
            "sha256": saved.sha256,
        }
    )


def _link_expires(task: Task, lifetime: timedelta) -> datetime:
    """When the provider's link to the finished video stops working, as well as we know."""
    if task.result is not None and task.result.expires_at is not None:
        return task.result.expires_at
    return (task.completed_at or task.updated_at) + lifetime


def _scrubbed(error: TaskError) -> TaskError:
    """``error`` without any secret the process knows: its text may come from a provider."""
    code, message = scrub(error.code), scrub(error.message)
    if code == error.code and message == error.message:
        return error
    return error.model_copy(update={"code": code, "message": message})


def _request_id(exc: BaseException) -> str | None:
    """The provider's request id behind ``exc`` (a provider error, or one it caused)."""
    cause = exc if isinstance(exc, ProviderError) else exc.__cause__
    return cause.request_id if isinstance(cause, ProviderError) else None


def _uncertain_error(policy: str, request_id: str | None = None) -> TaskError:
    return TaskError(
        code="submit_uncertain",
        message=(
            "the create may have reached the provider but its answer was lost; "
            f"not sent again under submit_uncertain={policy!r}"
        ),
        request_id=request_id,
    )


async def _best_effort(call: Callable[[], Awaitable[object]], task: Task, action: str) -> None:
    try:
        with provider_span(action, task):
            await call()
    except ProviderError as exc:
        log_task(
            logging.WARNING,
            f"provider {action} failed: {exc}",
            task,
            action=action,
            request_id=exc.request_id,
        )
