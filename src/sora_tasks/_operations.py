"""What the engine does to one task: submit it in two phases, poll it, resolve an uncertain
submit, fetch its video. Every outcome is one conditional, shielded write.

The dispatch (which task, when, by which worker) is the engine's, in ``_poller``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Unpack

import anyio

from ._download import save_stream
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
    SubmissionUncertainError,
)
from ._logging import log_task
from ._models import ImageData, Limits, Task, TaskError, TaskResult, TaskStatus
from ._policy import PollingPolicy
from ._schedule import Track, next_delay
from ._states import TaskChanges
from .providers._base import Provider, ProviderJob, SubmitRequest
from .storage._base import TaskStore

__all__ = ["TaskOperations"]

_DOWNLOAD_ATTEMPTS = 3
# after these, the create provably did not start a job (the adapters' contract)
_NOT_SENT = (ProviderTransportError, ProviderRateLimitError, ProviderServerError)


class TaskOperations:
    """The per-task use cases of the engine, shared by the manager and the dispatch loop.

    ``on_scheduled`` is told each ``next_poll_at`` written, so a dispatcher can wake early.
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
    ) -> None:
        self._store = store
        self._providers = providers
        self._policy = policy
        self._events = events
        self.clock = clock
        self._limits = limits
        self._download_dir = download_dir
        self._checksum = checksum_downloads
        self.on_scheduled: Callable[[datetime], None] = lambda _: None

    async def submit(self, task: Task, image: ImageData | None = None) -> Task:
        """Send the create for ``task`` in two phases and record the provider's answer.

        The submission id is stored before the request leaves; the external id right after.
        """
        provider = self._providers[task.provider]
        if task.submission_id is None:
            task = await self._write(
                task, submission_id=f"sub_{uuid.uuid4().hex}", submitted_at=self.clock()
            )
        if image is None and task.reference_image and task.reference_image.sha256:
            image = await self._store.get_image(task.reference_image.sha256)
        request = self._request(task, image)
        log_task(logging.INFO, "submitting", task, action="submit", attempt=task.submission_id)
        try:
            job = await provider.submit(request)
        except SubmissionUncertainError as exc:
            return await self._uncertain(task, exc)
        except _NOT_SENT as exc:
            return await self._not_sent(task, exc)
        except ProviderError as exc:
            code = (
                exc.code if isinstance(exc, ProviderHTTPError) and exc.code else "submit_rejected"
            )
            return await self._finish(
                task, TaskStatus.FAILED, error=TaskError(code=code, message=str(exc))
            )
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
        assert task.external_id is not None
        try:
            job = await provider.status(task.external_id)
        except ProviderHTTPError as exc:
            if exc.status_code in (404, 410):
                error = TaskError(
                    code="lost", message=f"the provider no longer knows job {task.external_id}"
                )
                return await self._finish(task, TaskStatus.FAILED, error=error)
            return await self._poll_failed(task, exc)
        except ProviderError as exc:
            return await self._poll_failed(task, exc)
        return await self._collect(await self._write(task, **self._changes(task, job, now)))

    async def fetch(self, task: Task, path: str | os.PathLike[str]) -> Task:
        """Stream a completed task's content to ``path`` and record where it went."""
        assert task.external_id is not None
        provider = self._providers[task.provider]
        try:
            async with provider.open_content(task.external_id) as stream:
                saved = await save_stream(
                    stream, path, max_bytes=self._limits.max_download_bytes, checksum=self._checksum
                )
        except ProviderError as exc:
            raise DownloadError(f"could not download task {task.id}: {exc}") from exc
        result = (task.result or TaskResult()).model_copy(
            update={
                "local_path": str(saved.path),
                "byte_size": saved.byte_size,
                "sha256": saved.sha256,
            }
        )
        updated = await self._store.update(task.id, result=result)
        self._events.publish(task, updated)
        return updated

    async def cancel(self, task: Task) -> Task:
        """Mark ``task`` CANCELLED if it is unchanged, then ask the provider to stop its job.

        Raises :class:`ConflictError` when the task moved on since it was read. A provider that
        cannot cancel, or fails to, leaves the job to finish on its own (logged).
        """
        cancelled = await self._write(task, status=TaskStatus.CANCELLED)
        provider = self._providers.get(cancelled.provider)
        if provider is not None and cancelled.external_id and provider.capabilities.can_cancel:
            await _best_effort(provider.cancel(cancelled.external_id), cancelled, "cancel")
        return cancelled

    async def _collect(self, task: Task) -> Task:
        if self._download_dir is None or task.status is not TaskStatus.COMPLETED:
            return task
        target = self._download_dir / f"{task.id}.mp4"
        for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
            try:
                return await self.fetch(task, target)
            except DownloadError as exc:
                log_task(
                    logging.WARNING,
                    f"download attempt {attempt} failed: {exc}",
                    task,
                    action="download",
                )
                await anyio.sleep(self._policy.retry_interval * attempt)
        return task

    async def resolve_uncertain(self, task: Task) -> Task:
        """Apply the submit-uncertain policy to a task whose create may have been sent."""
        policy = self._policy.submit_uncertain
        if policy == "fail":
            return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error(policy))
        provider = self._providers[task.provider]
        image = None
        if task.reference_image and task.reference_image.sha256:
            image = await self._store.get_image(task.reference_image.sha256)
        try:
            job = await provider.find(self._request(task, image))
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
        if policy == "resubmit":
            log_task(
                logging.WARNING, "resubmitting after an uncertain submit", task, action="resubmit"
            )
            return await self.submit(task, image)
        return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error(policy))

    def _request(self, task: Task, image: ImageData | None) -> SubmitRequest:
        assert task.submission_id is not None
        return SubmitRequest(
            task_id=task.id,
            idempotency_key=task.submission_id,
            attempted_at=task.submitted_at,
            prompt=task.prompt,
            model=task.model,
            size=task.size,
            seconds=task.seconds,
            media_type=task.media_type,
            image=image,
            image_url=task.reference_image.url if task.reference_image else None,
        )

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
                await _best_effort(provider.cancel(job.external_id), bound, "cancel")
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
                changes.update(
                    {
                        "status": TaskStatus.COMPLETED,
                        "result": TaskResult(url=job.result_url, expires_at=job.expires_at),
                    }
                )
                return changes
            case TaskStatus.FAILED:
                error = job.error or TaskError(
                    code="provider_error", message="the provider reported a failure"
                )
                if job.expired:
                    error = TaskError(code="expired", message=error.message)
                changes.update({"status": TaskStatus.FAILED, "error": error})
                return changes
            case TaskStatus.CANCELLED:
                changes["status"] = TaskStatus.CANCELLED
                return changes
        # a provider that says "queued" again after rendering began does not move us back
        status = TaskStatus.PROCESSING if job.status is TaskStatus.PROCESSING else task.status
        before = _track(task)
        track = before.advance(
            None if job.status is None else status, job.progress or 0, now.timestamp()
        )
        capabilities = self._providers[task.provider].capabilities
        delay = next_delay(
            track,
            now.timestamp(),
            hint=job.poll_after,
            min_interval=capabilities.min_poll_interval,
            schedule=self._policy.schedule or capabilities.schedule,
        )
        next_poll_at = now + timedelta(seconds=delay)
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
            return await self._finish(
                task, TaskStatus.FAILED, error=TaskError(code=code, message=message)
            )
        delay = self._policy.backoff(failures)
        if isinstance(exc, ProviderHTTPError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log_task(
            logging.WARNING, f"poll failed ({exc}); retrying in {delay:.1f}s", task, action="poll"
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
            error = TaskError(code="submit_failed", message=f"the create could not be sent: {exc}")
            return await self._finish(task, TaskStatus.FAILED, error=error)
        delay = self._policy.backoff(failures)
        if isinstance(exc, ProviderHTTPError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log_task(
            logging.WARNING,
            f"create not sent ({exc}); trying again in {delay:.1f}s",
            task,
            action="submit",
        )
        return await self._write(
            task,
            submission_id=None,
            poll_failures=failures,
            lease_owner=None,
            lease_expires_at=None,
            next_poll_at=self.clock() + timedelta(seconds=delay),
        )

    async def _uncertain(self, task: Task, exc: SubmissionUncertainError) -> Task:
        log_task(logging.WARNING, f"submission uncertain: {exc}", task, action="submit")
        if self._policy.submit_uncertain == "fail":
            return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error("fail"))
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
        self, task: Task, status: TaskStatus, *, error: TaskError | None = None
    ) -> Task:
        log_task(
            logging.INFO,
            f"task ended {status.value}",
            task,
            action="finish",
            code=error.code if error else None,
        )
        return await self._write(task, status=status, error=error)

    async def _write(self, task: Task, **changes: Unpack[TaskChanges]) -> Task:
        # the final write of an operation must land even if our caller is being cancelled
        with anyio.CancelScope(shield=True):
            updated = await self._store.update(task.id, expected_version=task.version, **changes)
        self._events.publish(task, updated)
        return updated


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


def _uncertain_error(policy: str) -> TaskError:
    return TaskError(
        code="submit_uncertain",
        message=(
            "the create may have reached the provider but its answer was lost; "
            f"not sent again under submit_uncertain={policy!r}"
        ),
    )


async def _best_effort(call: Awaitable[object], task: Task, action: str) -> None:
    try:
        await call
    except ProviderError as exc:
        log_task(logging.WARNING, f"provider {action} failed: {exc}", task, action=action)
