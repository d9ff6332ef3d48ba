"""The engine's dispatch: which task is worked on, when, and by which worker.

No coroutine sleeps per task. The loop claims due tasks (``next_poll_at <= now``) from the store in
batches and hands them to a fixed pool of workers; each runs one operation of
:class:`~sora_tasks._operations.TaskOperations` (poll, submit, resolve), whose write releases the
lease. A task whose owner died is claimed again once its lease runs out, so nothing is lost; a
create that may have been sent is never sent again unless the policy says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime, timedelta

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import ConflictError, StoreUnavailableError, TaskNotFoundError
from ._logging import log_task, logger
from ._models import Task
from ._notify import WebhookSender
from ._operations import TaskOperations
from ._policy import PollingPolicy
from ._states import Phase, phase_of
from ._telemetry import engine_span, store_timer
from .providers._base import Provider
from .storage._base import TaskStore
from .storage._lanes import engine_work

__all__ = ["LIVENESS_GRACE", "Engine"]

_FREE: AbstractAsyncContextManager[object] = nullcontext()

LIVENESS_GRACE = 60.0
"""Seconds the loop may take beyond a planned wait before it counts as stalled (a claim that
hangs, an event loop blocked by someone's synchronous code)."""


class Engine:
    """The polling loop of one manager (or one worker process)."""

    def __init__(
        self,
        *,
        store: TaskStore,
        providers: Mapping[str, Provider],
        policy: PollingPolicy,
        operations: TaskOperations,
        owner: str,
        collect: bool = False,
        sender: WebhookSender | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._providers = providers
        self._policy = policy
        self._ops = operations
        self._clock = operations.clock
        self.owner = owner
        operations.on_scheduled = self._note_next
        # anyio primitives need a running event loop, and a manager may be built before one
        # (at import time, in a FastAPI app module): they are made when the engine runs
        self._wake: anyio.Event | None = None
        self._earliest: datetime | None = None
        self._starved = False
        self._idle_workers = 0
        self._refill_at = max(1, policy.batch_size // 2)
        self._queued: dict[str, Task] = {}
        self._idle_until: datetime | None = None
        self._claiming: anyio.CancelScope | None = None
        self._stopped = False
        self._limiters: dict[str, AbstractAsyncContextManager[object]] = {}
        self._collect = collect
        self._store_failures = 0
        self._running = False
        self._turn_due: float | None = None

    def max_in_flight(self, provider: str) -> int | None:
        """How many jobs ``provider`` may run at once (``None``: no cap)."""
        if provider in self._policy.max_in_flight:
            return self._policy.max_in_flight[provider]
        return self._providers[provider].capabilities.max_in_flight

    async def _learn_from_store(self) -> None:
        try:
            learned = await self._ops.learn_from_store()
        except StoreUnavailableError as exc:
            # the schedule starts from the declared expectations instead: slower, never wrong
            logger.warning("could not read past render times (%s); starting unlearned", exc)
            return
        except Exception:
            # learning is an optimisation: whatever a custom store raises must not stop the worker
            logger.exception("reading past render times failed; starting unlearned")
            return
        logger.debug("schedule seeded with %d past render times", learned)

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is under way (or scheduled to start, see :meth:`starting`)."""
        return self._running

    def starting(self) -> None:
        """:meth:`run` has been scheduled: count the engine as running from now on."""
        self._running = True
        self._beat()

    def stalled(self) -> bool:
        """Whether the running loop has not come round when it should have (see
        :data:`LIVENESS_GRACE`): the liveness a health check reports."""
        return (
            self._running and self._turn_due is not None and anyio.current_time() > self._turn_due
        )

    def _beat(self, wait: float = 0.0) -> None:
        """The loop came round; it plans to wait ``wait`` seconds before the next turn."""
        self._turn_due = anyio.current_time() + wait + LIVENESS_GRACE

    def wake(self) -> None:
        """Make the loop look for due tasks now rather than after its idle wait."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Claim and process due tasks until :meth:`stop` (or cancellation).

        On stop it claims nothing more, lets in-flight calls finish for up to
        ``shutdown_grace`` seconds, then cancels the rest; a cancelled call hands its task back
        at once (lease released, due now) so that a peer resumes it without waiting.
        Its store calls are marked as the engine's, so that a store can keep connections free for
        the API calls of the same process.
        """
        self.starting()
        try:
            with engine_work():
                await self._run()
        finally:
            self._running = False
            self._turn_due = None

    async def _run(self) -> None:
        await self._learn_from_store()
        # fast_acquire: a free slot must not cost a trip through the event loop on every poll;
        # with no more workers than the cap allows, no cap can bind and none is kept
        cap = self._policy.max_concurrent_polls
        self._limiters = {
            name: anyio.Semaphore(cap, fast_acquire=True)
            if cap < self._policy.batch_size
            else _FREE
            for name in self._providers
        }
        self._wake = anyio.Event()
        self._claiming = anyio.CancelScope()
        if self._stopped:
            self._claiming.cancel()
        # long-lived workers take claimed tasks from a queue: a task per poll would cost more
        # than the poll's own bookkeeping once thousands of tasks are in flight
        workers = self._policy.batch_size
        send, receive = anyio.create_memory_object_stream[Task](2 * workers)
        self._idle_workers = workers
        try:
            async with anyio.create_task_group() as group:
                async with receive:
                    for _ in range(workers):
                        group.start_soon(self._work, receive.clone())
                if self._sender is not None and not self._stopped:
                    group.start_soon(self._sender.run)
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
            self._beat()
            free = self._free()
            self._starved = free < self._refill_at
            claimed: list[Task] = []
            if not self._starved:
                try:
                    claimed = await self._claim(free)
                except Exception as exc:
                    # the store being away for a while must not kill the engine
                    await self._store_away(exc)
                    continue
                if self._store_failures:
                    logger.warning(
                        "the task store answers again after %d failed claims", self._store_failures
                    )
                    self._store_failures = 0
            for task in claimed:
                self._queued[task.id] = task
                send.send_nowait(task)
            if len(claimed) < free or self._starved:
                await self._idle()

    async def _store_away(self, exc: Exception) -> None:
        self._store_failures += 1
        delay = min(
            self._policy.max_retry_interval,
            self._policy.store_retry_interval * 2 ** min(self._store_failures - 1, 16),
        )
        # one record with the traceback when the outage starts, then one line per retry
        logger.log(
            logging.ERROR if self._store_failures == 1 else logging.WARNING,
            "claiming due tasks failed (%s: %s); trying again in %.1f s",
            type(exc).__name__,
            exc,
            delay,
            exc_info=self._store_failures == 1,
            extra={"action": "claim", "attempt": self._store_failures},
        )
        self._beat(delay)
        with anyio.move_on_after(delay):
            await self._wake_event().wait()
        self._wake = anyio.Event()

    async def _work(self, receive: MemoryObjectReceiveStream[Task]) -> None:
        async with receive:
            while (task := await _next(receive)) is not None:
                if self._queued.pop(task.id, None) is None:
                    continue  # handed back at shutdown already
                self._idle_workers -= 1
                try:
                    await self._process(task)
                finally:
                    self._idle_workers += 1
                    if self._starved and self._free() >= self._refill_at:
                        self.wake()

    def _free(self) -> int:
        # up to one claimed task waits per worker, so a worker that finishes finds its next task
        # at once; claims come in batches of half the workers rather than one per poll
        return self._idle_workers + self._policy.batch_size - len(self._queued)

    async def _claim(self, free: int) -> list[Task]:
        lease = self._policy.lease_seconds
        with store_timer("claim_due"):
            claimed = list(
                await self._store.claim_due(
                    owner=self.owner, limit=free, lease_seconds=lease, content=self._collect
                )
            )
        for name in self._providers:
            if len(claimed) >= free:
                break
            with store_timer("claim_submissions"):
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
        if self._sender is not None:
            self._sender.reset()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once in-flight work is finished or handed back."""
        self._stopped = True
        if self._sender is not None:
            self._sender.stop()
        if self._claiming is not None:
            self._claiming.cancel()

    async def _idle(self) -> None:
        now = self._clock()
        if self._earliest is not None and self._earliest <= now:
            self._earliest = None
        wait = self._policy.idle_wait
        # a starved loop cannot claim whatever comes due: only a worker finishing (which wakes
        # it) makes room
        if self._earliest is not None and not self._starved:
            wait = min(wait, (self._earliest - now).total_seconds())
        self._idle_until = now + timedelta(seconds=wait)
        self._beat(wait)
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
            async with self._limiters.get(task.provider) or anyio.Semaphore(1):
                phase = phase_of(task)
                if phase is Phase.DONE:
                    return  # finished between the claim and now: nothing is owed
                if phase is Phase.COLLECTING:
                    operation, run = "collect", self._ops.collect
                elif task.deadline_at is not None and self._clock() >= task.deadline_at:
                    operation, run = "timeout", self._ops.timeout
                elif phase is Phase.RENDERING:
                    operation, run = "poll", self._ops.poll
                elif phase is Phase.WAITING:
                    operation, run = "submit", self._ops.submit
                else:
                    operation, run = "resolve", self._ops.resolve_uncertain
                with engine_span(operation, task):
                    await run(task)
        except (ConflictError, TaskNotFoundError):
            log_task(
                logging.DEBUG, "task changed under us; dropping this round", task, action="poll"
            )
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._hand_back(task)
            raise
        except Exception as exc:
            # one task's failure (a store blip, a provider's nonsense) never ends the engine:
            # its lease runs out and it is claimed again, by us or a peer
            log_task(
                logging.ERROR,
                f"processing the task failed ({type(exc).__name__}); it is retried once its "
                "lease runs out",
                task,
                action="process",
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

    def _note_next(self, when: datetime) -> None:
        if self._earliest is None or when < self._earliest:
            self._earliest = when
        if not self._starved and self._idle_until is not None and when < self._idle_until:
            self.wake()


async def _next(receive: MemoryObjectReceiveStream[Task]) -> Task | None:
    """The next claimed task, or None once the stream is closed."""
    try:
        # a task already queued is taken without a checkpoint (one loop trip less)
        return receive.receive_nowait()
    except anyio.WouldBlock:
        pass
    except anyio.EndOfStream:
        return None
    try:
        return await receive.receive()
    except anyio.EndOfStream:
        return None
