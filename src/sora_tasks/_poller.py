"""The engine: submits tasks in two phases and polls them under leases until they finish.

No coroutine sleeps per task. The loop claims due tasks (``next_poll_at <= now``) from the store in
batches, polls each once, writes the outcome and the next ``next_poll_at``, and releases the
lease in the same conditional write. A task whose owner died is claimed again once its lease runs
out, so nothing is lost; a create that may have been sent is never sent again unless the policy
says so.
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
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

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
    TaskNotFoundError,
)
from ._logging import log_task, logger
from ._models import ImageData, Limits, Task, TaskError, TaskResult, TaskStatus
from ._policy import PollingPolicy
from ._schedule import Track, next_delay
from ._states import TaskChanges
from .providers._base import Provider, ProviderJob, SubmitRequest
from .storage._base import TaskStore

__all__ = ["Engine"]

_DOWNLOAD_ATTEMPTS = 3
_NOT_SENT = (ProviderTransportError, ProviderRateLimitError, ProviderServerError)


class Engine:
    """Submission and polling for one manager (or one worker process)."""

    def __init__(
        self,
        *,
        store: TaskStore,
        providers: Mapping[str, Provider],
        policy: PollingPolicy,
        events: EventHub,
        clock: Callable[[], datetime],
        owner: str,
        limits: Limits,
        download_dir: Path | None = None,
        checksum_downloads: bool = True,
    ) -> None:
        self._store = store
        self._providers = providers
        self._policy = policy
        self._events = events
        self._clock = clock
        self.owner = owner
        self._limits = limits
        self._download_dir = download_dir
        self._checksum = checksum_downloads
        # anyio primitives need a running event loop, and a manager may be built before one
        # (at import time, in a FastAPI app module): they are made when the engine runs
        self._wake: anyio.Event | None = None
        self._earliest: datetime | None = None
        self._starved = False
        self._idle_workers = 0
        self._queued: dict[str, Task] = {}
        self._idle_until: datetime | None = None
        self._claiming: anyio.CancelScope | None = None
        self._stopped = False
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    def max_in_flight(self, provider: str) -> int | None:
        """How many jobs ``provider`` may run at once (``None``: no cap)."""
        if provider in self._policy.max_in_flight:
            return self._policy.max_in_flight[provider]
        return self._providers[provider].capabilities.max_in_flight

    def wake(self) -> None:
        """Make the loop look for due tasks now rather than after its idle wait."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Claim and process due tasks until :meth:`stop` (or cancellation).

        On stop it claims nothing more, lets in-flight calls finish for up to
        ``shutdown_grace`` seconds, then cancels the rest; a cancelled call hands its task back
        at once (lease released, due now) so that a peer resumes it without waiting.
        """
        self._limiters = {
            name: anyio.CapacityLimiter(self._policy.max_concurrent_polls)
            for name in self._providers
        }
        self._wake = anyio.Event()
        self._claiming = anyio.CancelScope()
        if self._stopped:
            self._claiming.cancel()
        # long-lived workers take claimed tasks from a queue: a task per poll would cost more
        # than the poll's own bookkeeping once thousands of tasks are in flight
        workers = self._policy.batch_size
        send, receive = anyio.create_memory_object_stream[Task](workers)
        self._idle_workers = workers
        try:
            async with anyio.create_task_group() as group:
                async with receive:
                    for _ in range(workers):
                        group.start_soon(self._work, receive.clone())
                async with send:
                    with self._claiming:
                        await self._claim_loop(send)
                group.cancel_scope.deadline = anyio.current_time() + self._policy.shutdown_grace
        finally:
            with anyio.CancelScope(shield=True):
                for task in list(self._queued.values()):
                    await self._hand_back(task)
                self._queued.clear()

    async def _claim_loop(self, send: MemoryObjectSendStream[Task]) -> None:
        # the flag, not only the cancel scope, ends the loop: a stop that lands while the idle
        # wait's own deadline expires is absorbed by that inner scope
        while not self._stopped:
            free = self._idle_workers - len(self._queued)
            self._starved = free <= 0
            claimed: list[Task] = []
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:
                    # the store being away for a while must not kill the engine
                    logger.exception("claiming due tasks failed; trying again shortly")
            for task in claimed:
                self._queued[task.id] = task
                send.send_nowait(task)
            if len(claimed) < free or free <= 0:
                await self._idle()

    async def _work(self, receive: MemoryObjectReceiveStream[Task]) -> None:
        async with receive:
            async for task in receive:
                if self._queued.pop(task.id, None) is None:
                    continue  # handed back at shutdown already
                self._idle_workers -= 1
                try:
                    await self._process(task)
                finally:
                    self._idle_workers += 1
                    if self._starved:
                        self.wake()

    async def _claim(self, free: int) -> list[Task]:
        lease = self._policy.lease_seconds
        claimed = list(
            await self._store.claim_due(owner=self.owner, limit=free, lease_seconds=lease)
        )
        for name in self._providers:
            if len(claimed) >= free:
                break
            claimed += await self._store.claim_submissions(
                provider=name,
                owner=self.owner,
                limit=free - len(claimed),
                lease_seconds=lease,
                max_in_flight=self.max_in_flight(name),
            )
        return claimed

    def reset(self) -> None:
        """Forget an earlier :meth:`stop`, so the engine can run again."""
        self._stopped = False

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once in-flight work is finished or handed back."""
        self._stopped = True
        if self._claiming is not None:
            self._claiming.cancel()

    async def _idle(self) -> None:
        now = self._clock()
        if self._earliest is not None and self._earliest <= now:
            self._earliest = None
        wait = self._policy.idle_wait
        if self._earliest is not None:
            wait = min(wait, (self._earliest - now).total_seconds())
        self._idle_until = now + timedelta(seconds=wait)
        with anyio.move_on_after(wait):
            await self._wake_event().wait()
        self._idle_until = None
        self._wake = anyio.Event()

    def _wake_event(self) -> anyio.Event:
        if self._wake is None:
            self._wake = anyio.Event()
        return self._wake

    async def _process(self, task: Task) -> None:
        try:
            async with self._limiters.get(task.provider) or anyio.CapacityLimiter(1):
                if task.deadline_at is not None and self._clock() >= task.deadline_at:
                    await self._timeout(task)
                elif task.external_id is not None:
                    await self.poll(task)
                elif task.submission_id is None:
                    await self.submit(task)
                else:
                    await self.resolve_uncertain(task)
        except (ConflictError, TaskNotFoundError):
            log_task(
                logging.DEBUG, "task changed under us; dropping this round", task, action="poll"
            )
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._hand_back(task)
            raise
        except Exception:
            log_task(
                logging.ERROR,
                "unexpected error while processing task",
                task,
                action="poll",
                exc_info=True,
            )

    async def _hand_back(self, task: Task) -> None:
        try:
            await self._store.update(
                task.id,
                expected_version=task.version,
                lease_owner=None,
                lease_expires_at=None,
                next_poll_at=self._clock(),
            )
        except (ConflictError, TaskNotFoundError):
            pass  # already written by this round, or gone: nothing to hand back
        except Exception:
            log_task(
                logging.WARNING,
                "could not release the lease",
                task,
                action="release",
                exc_info=True,
            )
        else:
            log_task(logging.INFO, "handed back on shutdown", task, action="release")

    async def submit(self, task: Task, image: ImageData | None = None) -> Task:
        """Send the create for ``task`` in two phases and record the provider's answer.

        The submission id is stored before the request leaves; the external id right after.
        """
        provider = self._providers[task.provider]
        if task.submission_id is None:
            task = await self._write(
                task, submission_id=f"sub_{uuid.uuid4().hex}", submitted_at=self._clock()
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
        now = self._clock()
        if task.deadline_at is not None and now >= task.deadline_at:
            return await self._timeout(task)
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
        now = self._clock()
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
        self._note_next(next_poll_at)
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
            next_poll_at=self._clock() + timedelta(seconds=delay),
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
            next_poll_at=self._clock() + timedelta(seconds=delay),
        )

    async def _uncertain(self, task: Task, exc: SubmissionUncertainError) -> Task:
        log_task(logging.WARNING, f"submission uncertain: {exc}", task, action="submit")
        if self._policy.submit_uncertain == "fail":
            return await self._finish(task, TaskStatus.FAILED, error=_uncertain_error("fail"))
        delay = timedelta(seconds=self._policy.reconcile_delay)
        return await self._write(
            task, lease_owner=None, lease_expires_at=None, next_poll_at=self._clock() + delay
        )

    async def _timeout(self, task: Task) -> Task:
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

    def _note_next(self, when: datetime) -> None:
        if self._earliest is None or when < self._earliest:
            self._earliest = when
        if self._idle_until is not None and when < self._idle_until:
            self.wake()


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
