"""TaskManager: the one place where the use cases live."""

from __future__ import annotations

import builtins
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack, overload

import anyio
import pydantic
from anyio.abc import TaskGroup

from ._admission import Admission
from ._budgets import BudgetAlert, Budgets
from ._circuits import CircuitPolicy, HealthBook, ProviderHealth
from ._download import check_target
from ._events import EventHub, TaskEvent
from ._exceptions import (
    ConflictError,
    DownloadError,
    InvalidRequestError,
    ManagerNotRunningError,
    ProviderError,
    TaskFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    UnknownProviderError,
    WaitTimeoutError,
)
from ._filenames import default_filename
from ._health import DEFAULT_STORE_TIMEOUT, Health, check_health
from ._logging import logger
from ._models import (
    GenerationRequest,
    Limits,
    MediaType,
    Task,
    TaskPage,
    TaskQuery,
    TaskStats,
    TaskStatus,
)
from ._notify import WebhookSender, check_webhook_secret
from ._notify_url import NotifyDefaults, check_notify_url
from ._operations import TaskOperations
from ._options import CreateOptions, check_options
from ._outbox import WebhookDelivery, WebhookPolicy, WebhookState
from ._policy import PollingPolicy
from ._poller import Engine
from ._prices import PriceTable
from ._routes import parse_routes
from ._saved import SavedContent, saved_copy
from ._states import Phase, phase_of
from ._telemetry import unwatch_circuits, watch_circuits
from ._webhooks import WebhookReceiver, WebhookResult
from .archive._base import (
    DEFAULT_KEY_TEMPLATE,
    Archive,
    ArchiveError,
    check_key_template,
)
from .providers._base import ContentStream, Provider
from .storage._base import TaskStore
from .storage.memory import InMemoryStore

__all__ = ["TaskManager"]

# wait() re-reads the store this often, to see changes made by workers in other processes
_RECHECK_SECONDS = 1.0
_DEFAULT_URL_LIFETIME = timedelta(hours=1)
_LONGEST_URL_LIFETIME = timedelta(days=7)
# cleanup() reads the tasks it is about to delete in pages of this many
_CLEANUP_PAGE = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TaskManager:
    """Validates, submits, tracks, polls and downloads video-generation tasks.

    Use it as an async context manager: entering starts the polling engine in the background,
    leaving stops it, lets in-flight writes land and closes the store and the providers::

        providers = {"openai": OpenAIVideosProvider()}
        async with TaskManager(store=SQLStore(), providers=providers) as manager:
            task = await manager.create(prompt="a calico cat playing piano", user_id="u1")
            task = await manager.wait(task.id, timeout=900)
            await manager.download(task.id, "cat.mp4")

    ``providers`` maps names to providers (a single provider is registered as ``"default"``);
    requests name one (or a route) or get ``default_provider`` (the first one). Without
    ``providers``, they come from the environment and the config file as for the command line
    (``OPENAI_API_KEY`` with ``OPENAI_BASE_URL``, ``REPLICATE_API_TOKEN``, ``GEMINI_API_KEY`` or
    ``GOOGLE_API_KEY``, ``FAL_KEY``, ``RUNWAYML_API_SECRET``, ``[providers.*]`` in
    ``sora-tasks.toml``): :attr:`configuration_notes` says which were chosen, and why others
    were not. With ``poll=False`` the manager only creates and reads tasks (for an API server
    whose polling runs in worker processes).
    With ``download_dir``, the engine fetches every video as soon as its task completes (provider
    links expire, about an hour after completion for OpenAI-shaped APIs) to
    ``<download_dir>/<task id>.mp4`` (an image's extension for an image task). Downloads
    record the file's SHA-256 unless ``checksum_downloads`` is false (hashing costs about half
    a second of CPU per GiB).
    With ``archive`` (a URL such as ``s3://bucket/videos``, or an
    :class:`~sora_tasks.archive.Archive`), the engine streams every video into object storage
    under ``archive_key`` (default ``{user_id}/{task_id}.mp4``); ``archive`` and
    ``download_dir`` may be used together.
    Every method that takes ``user_id`` acts only on that user's tasks: another user's task is
    "not found".

    ``routes`` give one name to a model several providers reach, ``{"veo-3.1": ["veo",
    "fal:fal-ai/veo3.1"]}`` (a provider's name, with the model it goes by there after a colon
    when it is not the request's or the provider's default): ``create(provider="veo-3.1")``
    tries them in order, going on to the next only when a create certainly started no job (see
    :class:`SkippedProvider`), and passing over providers whose circuit breaker is open
    (``circuit``, a :class:`CircuitPolicy`; see :meth:`provider_health`).
    Every task carries its ``cost``: estimated at creation from ``prices`` (default
    :meth:`PriceTable.shipped`, which :meth:`PriceTable.extended` lays your own prices over),
    then accounted from the seconds rendered once it completes; :meth:`stats` totals them.
    ``budgets`` (:class:`Budgets`) caps spending per user and overall over a rolling window: a
    create whose estimate does not fit raises :class:`BudgetExceededError`, storing and sending
    nothing, and passing a share of a limit calls ``on_budget_alert`` with a :class:`BudgetAlert`.

    ``notify_url`` is the default webhook target of every task (``create(notify_url=...)``
    overrides it), with ``notify_progress`` for progress events too. Deliveries are signed with
    ``webhook_secret`` (a Standard Webhooks ``whsec_...`` secret, needed for any notify URL) and
    sent, retried and given up under ``webhook_policy`` (:class:`WebhookPolicy`), by the workers
    that poll; see :meth:`webhooks` and the push page of the docs.
    """

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider] | Provider | None = None,
        store: TaskStore | None = None,
        default_provider: str | None = None,
        limits: Limits | None = None,
        policy: PollingPolicy | None = None,
        poll: bool = True,
        on_event: Callable[[TaskEvent], object] | None = None,
        download_dir: str | os.PathLike[str] | None = None,
        checksum_downloads: bool = True,
        clock: Callable[[], datetime] = _utcnow,
        webhook_secrets: Mapping[str, str | pydantic.SecretStr] | None = None,
        archive: Archive | str | None = None,
        archive_key: str = DEFAULT_KEY_TEMPLATE,
        routes: Mapping[str, Sequence[str]] | None = None,
        circuit: CircuitPolicy | None = None,
        prices: PriceTable | None = None,
        budgets: Budgets | None = None,
        on_budget_alert: Callable[[BudgetAlert], object] | None = None,
        notify_url: str | None = None,
        notify_progress: bool = False,
        webhook_secret: str | pydantic.SecretStr | None = None,
        webhook_policy: WebhookPolicy | None = None,
    ) -> None:
        self.webhook_policy = webhook_policy or WebhookPolicy()
        secret = check_webhook_secret(webhook_secret) if webhook_secret is not None else None
        if notify_url is not None:
            if secret is None:
                raise ValueError("notify_url needs a webhook_secret to sign deliveries with")
            check_notify_url(notify_url, allow_private=self.webhook_policy.allow_private)
        self.configuration_notes: tuple[str, ...] = ()
        """How the providers were chosen when none were passed, and what was left out."""
        if providers is None:
            from ._discovery import providers_from_environment

            found = providers_from_environment()
            providers = found.providers
            default_provider = default_provider or found.default_provider
            chosen = ", ".join(
                f"{name} (default)" if name == default_provider else name for name in providers
            )
            self.configuration_notes = (
                f"providers from the environment and config file: {chosen}",
                *found.notes,
            )
            for note in self.configuration_notes:
                logger.info("%s", note, extra={"action": "configure"})
        self._providers = (
            dict(providers) if isinstance(providers, Mapping) else {"default": providers}
        )
        if not self._providers:
            raise ValueError("TaskManager needs at least one provider")
        self._routes = parse_routes(routes or {}, self._providers)
        if default_provider is not None and not (
            default_provider in self._providers or default_provider in self._routes
        ):
            raise UnknownProviderError(
                f"default_provider {default_provider!r} is not among "
                f"{sorted({*self._providers, *self._routes})}",
                field="default_provider",
            )
        self._default = default_provider or next(iter(self._providers))
        self._health = HealthBook(self._providers, circuit)
        self._archive = _archive(archive)
        check_key_template(archive_key)
        self._store = store if store is not None else InMemoryStore(clock=clock)
        self.limits = limits or Limits()
        self.policy = policy or PollingPolicy()
        self._poll = poll
        self._clock = clock
        self._events = EventHub()
        if on_event is not None:
            self._events.add_callback(on_event)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        sender = (
            WebhookSender(store=self._store, secret=secret, policy=self.webhook_policy, owner=owner)
            if secret is not None
            else None
        )
        self._ops = TaskOperations(
            store=self._store,
            providers=self._providers,
            policy=self.policy,
            events=self._events,
            clock=clock,
            limits=self.limits,
            download_dir=Path(download_dir) if download_dir is not None else None,
            checksum_downloads=checksum_downloads,
            archive=self._archive,
            archive_key=archive_key,
            health=self._health,
            prices=prices,
        )
        self._engine = Engine(
            store=self._store,
            providers=self._providers,
            policy=self.policy,
            operations=self._ops,
            owner=owner,
            collect=self._ops.collects,
            sender=sender,
        )
        self._admission = Admission(
            store=self._store,
            providers=self._providers,
            default_provider=self._default,
            limits=self.limits,
            policy=self.policy,
            events=self._events,
            operations=self._ops,
            engine=self._engine,
            clock=clock,
            routes=self._routes,
            budgets=budgets,
            on_budget_alert=on_budget_alert,
            notify=NotifyDefaults(
                url=notify_url,
                progress=notify_progress,
                allow_private=self.webhook_policy.allow_private,
                signs=secret is not None,
            ),
        )
        self._exit_stack: AsyncExitStack | None = None
        self._webhooks = WebhookReceiver(self, webhook_secrets or {})
        self._group: TaskGroup | None = None
        self._engine_started = False

    def __repr__(self) -> str:
        return f"TaskManager(providers={sorted(self._providers)}, store={self._store!r})"

    @property
    def store(self) -> TaskStore:
        """The store the tasks live in."""
        return self._store

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The registered providers, by name."""
        return dict(self._providers)

    @property
    def routes(self) -> dict[str, builtins.list[str]]:
        """The routes, by name: the providers each tries in order (``name:model`` as given)."""
        return {
            name: [f"{e.provider}:{e.model}" if e.model else e.provider for e in entries]
            for name, entries in self._routes.items()
        }

    def provider_health(self) -> dict[str, ProviderHealth]:
        """Each provider's circuit breaker as this process sees it, by provider name."""
        return self._health.snapshot()

    @property
    def archive(self) -> Archive | None:
        """The archive videos are kept in, if any."""
        return self._archive

    async def __aenter__(self) -> Self:
        self._engine.reset()
        self._engine_started = False
        watch_circuits(self._health)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._close_resources)
            if self._archive is not None:
                # a bucket that is missing or refuses the keys fails here, before any task
                await self._archive.check()
            self._group = await stack.enter_async_context(anyio.create_task_group())
            # leaving stops the engine gracefully; the task group then waits for it
            stack.callback(self._engine.stop)
            if self._poll:
                self._start_engine()
            self._exit_stack = stack.pop_all()
        return self

    def _start_engine(self) -> None:
        if not self._engine_started and self._group is not None:
            self._engine_started = True
            self._engine.starting()
            self._group.start_soon(self._engine.run)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is None:
            return None
        try:
            return await stack.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # the engine's task group wraps whatever the body raised: hand the caller its own
            # error back, unless the engine failed too
            if exc is not None and _only(group, exc):
                return False
            raise

    async def _close_resources(self) -> None:
        # a closed manager's circuits say nothing about the providers any more
        unwatch_circuits(self._health)
        with anyio.CancelScope(shield=True):
            for provider in self._providers.values():
                await provider.aclose()
            if self._archive is not None:
                await self._archive.aclose()
            await self._store.close()

    async def run_worker(self, *, handle_signals: bool = True) -> None:
        """Poll until SIGTERM or SIGINT (or cancellation), then shut down gracefully.

        The standalone worker of a fleet: it stops claiming, lets in-flight calls finish within
        the policy's ``shutdown_grace``, and hands unfinished tasks back so a peer resumes them at
        once. Opens the manager if it is not open yet, and closes it at the end in that case.
        """
        if self._exit_stack is None:
            async with self:
                await self.run_worker(handle_signals=handle_signals)
            return
        self._start_engine()
        if not handle_signals:
            await anyio.sleep_forever()
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                logger.info("received %s: stopping the worker", signal.Signals(received).name)
                self._engine.stop()
                return

    async def health(self, *, store_timeout: float = DEFAULT_STORE_TIMEOUT) -> Health:
        """Liveness (the engine loop is turning) and readiness (the store answers within
        ``store_timeout`` seconds) of this manager, and each provider's circuit breaker; see
        :class:`~sora_tasks.Health`.

        ``sora-tasks worker --health-port N`` serves the same over HTTP.
        """
        return await check_health(
            self._engine,
            self._store,
            open_=self._exit_stack is not None,
            polls=self._poll or self._engine_started,
            store_timeout=store_timeout,
            providers=self.provider_health(),
        )

    async def create(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        seconds: int | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        reference_image: bytes | os.PathLike[str] | str | None = None,
        last_frame: bytes | os.PathLike[str] | str | None = None,
        reference_images: Sequence[bytes | os.PathLike[str] | str] = (),
        negative_prompt: str | None = None,
        seed: int | None = None,
        audio: bool | None = None,
        provider_options: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        provider: str | None = None,
        media_type: MediaType = MediaType.VIDEO,
        metadata: Mapping[str, Any] | None = None,
        priority: int = 0,
        deadline: timedelta | None = None,
        allow_unsupported: bool = False,
        notify_url: str | None = None,
        notify_progress: bool | None = None,
    ) -> Task:
        """Validate a request, store it as a task and submit it to the provider.

        The frame is a ``size`` (``"1280x720"``) or an ``aspect_ratio`` (``"16:9"``) with a
        ``resolution`` (``"720p"``); ``reference_image`` is the first frame, ``last_frame`` the
        last, ``reference_images`` guide the look (each image as bytes, a path, a data URL, bare
        base64 or an http(s) URL). ``provider_options`` go into the provider's input verbatim.
        Each is checked against what the model declares (see :class:`ProviderCapabilities`).
        Bad input raises an :class:`InvalidRequestError` subclass and nothing is stored or sent.
        A provider that rejects the job leaves a FAILED task whose ``error`` says why.
        ``notify_url`` (default: the manager's) receives a signed webhook when the task ends,
        and on progress with ``notify_progress``.
        """
        try:
            request = GenerationRequest(
                prompt=prompt,
                model=model,
                size=size,
                seconds=seconds,
                aspect_ratio=aspect_ratio,
                resolution=resolution,
                reference_image=_image_source(reference_image),
                last_frame=_image_source(last_frame),
                reference_images=[_image_source(image) for image in reference_images],
                negative_prompt=negative_prompt,
                seed=seed,
                audio=audio,
                provider_options=dict(provider_options or {}),
                user_id=user_id,
                provider=provider,
                media_type=media_type,
                metadata=dict(metadata or {}),
                priority=priority,
                deadline=deadline,
                allow_unsupported=allow_unsupported,
                notify_url=notify_url,
                notify_progress=notify_progress,
            )
        except pydantic.ValidationError as exc:
            raise _invalid(exc) from None
        return await self.submit(request)

    async def submit(self, request: GenerationRequest) -> Task:
        """Like :meth:`create`, for a prepared :class:`GenerationRequest`."""
        return await self._admission.submit(request)

    def seed_schedule(self, tasks: Iterable[Task]) -> int:
        """Teach the polling schedule the render times of completed ``tasks``, oldest first.

        Workers do this with their own store when they start; use it to carry what another
        deployment learned. Returns how many tasks were learned from.
        """
        schedules = {name: self._ops.schedule_of(name) for name in self._providers}
        return self._ops.planner.seed(tasks, schedules)

    async def create_many(self, requests: Iterable[GenerationRequest]) -> list[Task]:
        """Submit a batch. Every request is validated first: one bad request stores nothing.

        Tasks come back in the order of ``requests``. They obey the same admission rules as
        :meth:`create`: a provider at its ``max_in_flight`` gets the rest later, by priority.
        Under ``budgets`` they are admitted in order until one does not fit, whose
        :class:`BudgetExceededError` is raised (the ones before it stay admitted).
        """
        return await self._admission.submit_many(requests)

    async def get(self, task_id: str, *, user_id: str | None = None) -> Task:
        """A task by our id or by the provider's id."""
        try:
            task = await self._store.get(task_id)
        except TaskNotFoundError:
            task = await self._store.get_by_external_id(task_id)
        return _owned(task, user_id, task_id)

    async def list(
        self,
        *,
        user_id: str | None = None,
        status: TaskStatus | None = None,
        provider: str | None = None,
        media_type: MediaType | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
        order: str = "desc",
    ) -> TaskPage:
        """A page of tasks, newest first by default; pass ``page.next_cursor`` for the next one."""
        try:
            query = TaskQuery(
                user_id=user_id,
                status=status,
                provider=provider,
                media_type=media_type,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
                order=order,
            )
        except pydantic.ValidationError as exc:
            raise _invalid(exc) from None
        return await self._store.list(query)

    async def refresh(self, task_id: str, *, user_id: str | None = None) -> Task:
        """Ask the provider about a task now, outside the schedule (after a webhook, say).

        A task that ended, or has no provider id yet, is returned as it is.
        """
        for _ in range(3):
            task = await self.get(task_id, user_id=user_id)
            if task.is_terminal or task.external_id is None:
                return task
            try:
                return await self._ops.poll(task)
            except ConflictError:
                continue  # the engine polled it at the same moment: read its result
        return await self.get(task_id, user_id=user_id)

    async def handle_webhook(
        self, provider: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookResult:
        """Verify a provider's Standard Webhooks delivery and re-read the job it names.

        ``provider`` picks the secret from ``webhook_secrets``; ``body`` is the raw request body.
        A repeated ``webhook-id`` is answered ``"duplicate"`` without a provider call. Raises
        :class:`WebhookVerificationError`, changing nothing, when the delivery is not authentic.
        """
        return await self._webhooks.handle(provider, headers, body)

    async def webhooks(
        self,
        *,
        state: WebhookState | str | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> builtins.list[WebhookDelivery]:
        """The outgoing webhook deliveries, newest first: all, or those in ``state``
        (``"pending"``, ``"delivered"``, ``"failed"``) or of one task."""
        try:
            wanted = WebhookState(state) if state is not None else None
        except ValueError:
            choices = ", ".join(item.value for item in WebhookState)
            raise InvalidRequestError(
                f"unknown webhook state {state!r}; one of {choices}", field="state", limit=choices
            ) from None
        if not 1 <= limit <= 1000:
            raise InvalidRequestError(
                f"limit must be within 1..1000, not {limit}", field="limit", limit=1000
            )
        found = await self._store.list_webhooks(state=wanted, task_id=task_id, limit=limit)
        return builtins.list(found)

    async def retry_webhooks(self, delivery_ids: Sequence[str] | None = None) -> int:
        """Re-arm failed deliveries (those of ``delivery_ids``, or every failed one): they are
        sent again with a fresh budget. Returns how many were re-armed."""
        return await self._store.retry_webhooks(delivery_ids)

    async def stats(self, *, user_id: str | None = None) -> TaskStats:
        """Counts by status and provider, success rate, render times and cost totals."""
        return await self._store.stats(user_id=user_id)

    async def cancel(self, task_id: str, *, user_id: str | None = None) -> Task:
        """Cancel a task: polling stops at once, and the provider is asked to stop where it can.

        Idempotent: a task that already ended is returned unchanged.
        """
        while True:
            task = await self.get(task_id, user_id=user_id)
            if task.is_terminal:
                return task
            try:
                return await self._ops.cancel(task)
            except ConflictError:
                continue  # the engine wrote first: look again

    async def cleanup(self, *, older_than: timedelta, delete_archived: bool = True) -> int:
        """Delete tasks that ended over ``older_than`` ago, and images no task uses any more.

        Their archived objects (video and thumbnail) go too, after the tasks, unless
        ``delete_archived`` is false: a failure then leaves an orphan object, never a task
        pointing at nothing. Returns the number of tasks deleted.
        """
        before = self._clock() - older_than
        archive = self._archive
        if archive is None or not delete_archived:
            return await self._store.delete_finished(before=before)
        doomed = await self._archived_before(archive, before)
        deleted = await self._store.delete_finished(before=before)
        for key in doomed:
            try:
                await archive.delete(key)
            except ArchiveError as exc:
                logger.warning("cleanup left an archived object behind: %s", exc)
        return deleted

    async def _archived_before(self, archive: Archive, before: datetime) -> builtins.list[str]:
        """The archive keys of the COMPLETED tasks that ended before ``before``."""
        keys: builtins.list[str] = []
        cursor = None
        while True:
            page = await self.list(
                status=TaskStatus.COMPLETED,
                created_before=before,
                limit=_CLEANUP_PAGE,
                cursor=cursor,
            )
            for task in page.items:
                ended = task.completed_at or task.updated_at
                if phase_of(task) is not Phase.DONE or ended >= before or task.result is None:
                    continue
                for uri in (task.result.archive_uri, task.result.thumbnail_uri):
                    key = archive.key_of(uri) if uri else None
                    if key is not None:
                        keys.append(key)
            if not page.has_more:
                return keys
            cursor = page.next_cursor

    async def wait(
        self, task_id: str, *, timeout: float | None = None, user_id: str | None = None
    ) -> Task:
        """Wait until the task ends; return it whatever the outcome.

        A task ends when nothing is left to do for it: with ``download_dir``, a COMPLETED task
        ends once its video is saved (or FAILED, ``expired``, if it could not be). Woken by the
        engine's writes, and re-reads the store now and then for changes made by workers
        elsewhere; it never asks the provider itself. Raises :class:`WaitTimeoutError` after
        ``timeout`` seconds (the task goes on).
        """
        if self._exit_stack is None:
            raise ManagerNotRunningError(
                "wait() needs a running manager: use `async with TaskManager(...)`"
            )
        task = await self.get(task_id, user_id=user_id)
        try:
            with anyio.fail_after(timeout):
                async with self._events.subscribe() as events:
                    while phase_of(task) is not Phase.DONE:
                        with anyio.move_on_after(_RECHECK_SECONDS):
                            async for event in events:
                                if event.task.id == task.id and phase_of(event.task) is Phase.DONE:
                                    break
                        task = await self._store.get(task.id)
        except TimeoutError:
            raise WaitTimeoutError(
                f"task {task.id} still {task.status.value} after {timeout} s; "
                "it goes on in the background"
            ) from None
        return task

    async def events(self, task_id: str | None = None) -> AsyncIterator[TaskEvent]:
        """Yield every change this manager observes, for one task or all."""
        async with self._events.subscribe() as stream:
            async for event in stream:
                if task_id is None or event.task.id == task_id:
                    yield event

    @asynccontextmanager
    async def open_content(
        self, task_id: str, *, user_id: str | None = None
    ) -> AsyncIterator[ContentStream]:
        """Open a COMPLETED task's video for reading, as a :class:`ContentStream`.

        The archived object is read first (when the manager has the archive it is in), then
        the copy saved by the engine (``download_dir``) or by :meth:`download` when this
        machine has it whole; otherwise the video streams from the provider (while its link
        lasts). Raises :class:`TaskNotReadyError` before the task has completed.
        """
        task = await self.get(task_id, user_id=user_id)
        if task.status is not TaskStatus.COMPLETED or task.external_id is None:
            raise TaskNotReadyError(
                f"task {task.id} is {task.status.value}; only COMPLETED tasks have content"
            )
        key = self._archived_key(task)
        if key is not None:
            assert self._archive is not None
            async with self._archive.open(key) as stream:
                yield stream
            return
        path = await saved_copy(task)
        if path is not None:
            assert task.result is not None and task.result.byte_size is not None
            yield SavedContent(path, byte_size=task.result.byte_size, media_type=task.media_type)
            return
        provider = self._providers.get(task.provider)
        if provider is None:
            raise ProviderError(f"provider {task.provider!r} is not configured here")
        async with provider.open_content(task.external_id, task=task) as stream:
            yield stream

    async def archive_url(
        self,
        task_id: str,
        *,
        user_id: str | None = None,
        expires_in: timedelta = _DEFAULT_URL_LIFETIME,
    ) -> str | None:
        """A presigned URL of the task's archived video, valid for ``expires_in``.

        ``None`` when the video is not archived (yet), or the archive cannot sign (a local
        directory, memory). Another user's task is "not found". ``expires_in`` is at most
        7 days (the longest an S3 signature lasts).
        """
        if not timedelta(0) < expires_in <= _LONGEST_URL_LIFETIME:
            raise InvalidRequestError(
                f"expires_in must be positive and at most {_LONGEST_URL_LIFETIME.days} days "
                f"(got {expires_in})",
                field="expires_in",
                limit=_LONGEST_URL_LIFETIME,
            )
        task = await self.get(task_id, user_id=user_id)
        key = self._archived_key(task)
        if key is None:
            return None
        assert self._archive is not None
        return await self._archive.sign(key, expires_in)

    async def content_url(
        self,
        task_id: str,
        *,
        user_id: str | None = None,
        expires_in: timedelta = _DEFAULT_URL_LIFETIME,
    ) -> str:
        """A URL a client can fetch the task's video from, valid for ``expires_in`` (at most).

        A presigned URL of the archived object when there is one; else the provider's own link
        while it is valid. Raises :class:`TaskNotReadyError` when there is neither (not
        completed yet, the link expired and nothing was archived, or an archive that cannot
        sign), and :class:`TaskNotFoundError` for another user's task.
        """
        signed = await self.archive_url(task_id, user_id=user_id, expires_in=expires_in)
        if signed is not None:
            return signed
        task = await self.get(task_id, user_id=user_id)
        result = task.result
        valid = result is not None and (
            result.expires_at is None or result.expires_at > self._clock()
        )
        if task.status is TaskStatus.COMPLETED and valid and result is not None and result.url:
            return result.url
        raise TaskNotReadyError(
            f"task {task.id} ({task.status.value}) has no URL to give: "
            "nothing is archived where it can be signed, and the provider's link is gone"
        )

    def _archived_key(self, task: Task) -> str | None:
        """The key of the task's video in this manager's archive, if it is there."""
        if self._archive is None or task.result is None or task.result.archive_uri is None:
            return None
        return self._archive.key_of(task.result.archive_uri)

    async def download(
        self,
        task_id: str,
        path: str | os.PathLike[str] | None = None,
        *,
        user_id: str | None = None,
    ) -> Task:
        """Save a completed task's video to ``path`` (temporary file, checks, atomic rename).

        Without ``path``, the file is ``<task id>.<extension>`` in the working directory, the
        extension saying what it is (``.mp4`` for a video; ``.png``, ``.jpg``, ``.webp`` for an
        image, by its content type). Reads it through :meth:`open_content`: a copy already saved
        is copied, not fetched again.
        """
        if path is not None:
            await check_target(path)  # a bad target fails before the content is asked for
        try:
            async with self.open_content(task_id, user_id=user_id) as stream:
                if path is None:
                    task = await self.get(task_id, user_id=user_id)
                    path = default_filename(task, stream.content_type)
                    await check_target(path)
                saved = await self._ops.save(stream, path)
        except ProviderError as exc:
            raise DownloadError(f"could not download task {task_id}: {exc}") from exc
        return await self._ops.record_saved(task_id, saved)

    async def generate(
        self,
        prompt: str,
        *,
        output: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        progress: bool = False,
        **options: Unpack[CreateOptions],
    ) -> Task:
        """Create, wait and download in one call; raise :class:`TaskFailedError` if it fails.

        ``options`` are those of :meth:`create` (a misspelt one is a ``TypeError`` naming the
        closest valid one, and an error for a type checker). The video goes to ``output``
        (default: ``<task id>.mp4`` in the current directory, an image's own extension for an
        image). ``progress=True`` shows a progress bar (a notebook widget with the ``notebook``
        extra, else a text bar; see :mod:`sora_tasks.notebook`).
        """
        check_options("generate", options, CreateOptions)
        if progress:
            from .notebook import progress_bar

            async with progress_bar(self):
                return await self.generate(prompt, output=output, timeout=timeout, **options)
        task = await self.create(prompt, **options)
        task = await self.wait(task.id, timeout=timeout)
        if task.status is not TaskStatus.COMPLETED:
            raise TaskFailedError(task)
        return await self.download(task.id, output)


def _archive(archive: Archive | str | None) -> Archive | None:
    if archive is None or isinstance(archive, Archive):
        return archive
    from .archive import open_archive

    return open_archive(archive)


def _only(group: BaseExceptionGroup[BaseException], error: BaseException) -> bool:
    """Whether ``group`` holds nothing but ``error`` (however deeply nested)."""
    return all(
        _only(inner, error) if isinstance(inner, BaseExceptionGroup) else inner is error
        for inner in group.exceptions
    )


@overload
def _image_source(image: None) -> None: ...
@overload
def _image_source(image: bytes | os.PathLike[str] | str) -> bytes | Path | str: ...
def _image_source(image: bytes | os.PathLike[str] | str | None) -> bytes | Path | str | None:
    return Path(image) if isinstance(image, os.PathLike) else image


def _owned(task: Task, user_id: str | None, asked: str) -> Task:
    if user_id is not None and task.user_id != user_id:
        raise TaskNotFoundError(asked)
    return task


def _invalid(exc: pydantic.ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "request"
    return InvalidRequestError(f"{field}: {first['msg']}", field=field)
