"""Admission: a request becomes a stored task, submitted at once or queued behind a provider's cap.

Everything is validated before anything is stored, for one request as for a batch. A task bound
for a provider without a cap is stored with its submission attempt and a lease, then submitted in
two phases; one bound for a capped provider is stored QUEUED and left to the engine, which submits
in priority order as running jobs finish.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import anyio

from ._budgets import BudgetAlert, Budgets, announce
from ._events import EventHub
from ._exceptions import InvalidRequestError, UnknownProviderError, UnsupportedParameterError
from ._models import GenerationRequest, ImageData, Limits, RouteStep, SkippedProvider, Task
from ._notify_url import NotifyDefaults
from ._operations import TaskOperations
from ._policy import PollingPolicy
from ._poller import Engine
from ._routes import RouteEntry
from ._validation import PreparedRequest, describe, prepare
from .providers._base import Provider
from .storage._base import TaskStore

__all__ = ["Admission"]


class Admission:
    """Turns requests into tasks for one manager."""

    def __init__(
        self,
        *,
        store: TaskStore,
        providers: Mapping[str, Provider],
        default_provider: str,
        limits: Limits,
        policy: PollingPolicy,
        events: EventHub,
        operations: TaskOperations,
        engine: Engine,
        clock: Callable[[], datetime],
        routes: Mapping[str, Sequence[RouteEntry]] | None = None,
        budgets: Budgets | None = None,
        on_budget_alert: Callable[[BudgetAlert], object] | None = None,
        notify: NotifyDefaults | None = None,
    ) -> None:
        self._store = store
        self._notify = notify or NotifyDefaults()
        self._budgets = budgets
        self._on_budget_alert = on_budget_alert
        self._routes = dict(routes or {})
        self._providers = providers
        self._default = default_provider
        self._limits = limits
        self._policy = policy
        self._events = events
        self._ops = operations
        self._engine = engine
        self._clock = clock

    async def submit(self, request: GenerationRequest) -> Task:
        """Validate ``request``, store its task and submit it (or queue it behind a cap)."""
        task, images = self._new_task(request)
        return await self._admit(task, images)

    async def submit_many(self, requests: Iterable[GenerationRequest]) -> list[Task]:
        """Validate every request, then admit them all, ``max_concurrent_polls`` at a time.

        Under budgets they are admitted one after another, in order, until one does not fit:
        its :class:`BudgetExceededError` is raised, and the ones before it stay admitted.
        """
        prepared = [self._new_task(request) for request in requests]
        if self._budgets is not None:
            return [await self._admit(task, images) for task, images in prepared]
        tasks: list[Task | None] = [None] * len(prepared)
        limiter = anyio.CapacityLimiter(self._policy.max_concurrent_polls)

        async def admit(index: int, task: Task, images: list[ImageData]) -> None:
            async with limiter:
                tasks[index] = await self._admit(task, images)

        async with anyio.create_task_group() as group:
            for index, (task, images) in enumerate(prepared):
                group.start_soon(admit, index, task, images)
        return [task for task in tasks if task is not None]

    def _new_task(self, request: GenerationRequest) -> tuple[Task, list[ImageData]]:
        notify_url, notify_progress = self._notify.for_request(
            request.notify_url, request.notify_progress
        )
        name = request.provider or self._default
        route_name, route = name, self._routes.get(name)
        if route is not None:
            steps, prepared, skipped = self._plan(name, route, request)
            name = steps[0].provider
        else:
            try:
                provider = self._providers[name]
            except KeyError:
                known = ", ".join(sorted(self._providers))
                if self._routes:
                    known += f"; routes: {', '.join(sorted(self._routes))}"
                raise UnknownProviderError(
                    f"no provider named {name!r}; registered: {known}",
                    field="provider",
                ) from None
            prepared = prepare(request, limits=self._limits, provider=provider, name=name)
            steps, skipped = [], []
        now = self._clock()
        task = Task(
            provider=name,
            user_id=request.user_id,
            media_type=request.media_type,
            prompt=prepared.prompt,
            model=prepared.model,
            size=prepared.frame.size,
            aspect_ratio=prepared.frame.aspect_ratio,
            resolution=prepared.frame.resolution,
            seconds=prepared.seconds,
            negative_prompt=prepared.negative_prompt,
            seed=prepared.seed,
            audio=prepared.audio,
            reference_image=describe(prepared.image),
            last_frame=describe(prepared.last_frame),
            reference_images=[
                described
                for image in prepared.reference_images
                if (described := describe(image)) is not None
            ],
            provider_options=prepared.provider_options,
            metadata=request.metadata,
            priority=request.priority,
            created_at=now,
            updated_at=now,
            deadline_at=now + (request.deadline or self._policy.deadline),
            next_poll_at=now,
            route=route_name if route is not None else None,
            route_steps=steps,
            notify_url=notify_url,
            notify_progress=notify_progress,
            skipped=[
                SkippedProvider(provider=provider, code="unsupported", reason=reason, at=now)
                for provider, reason in skipped
            ],
        )
        return task.model_copy(update={"cost": self._ops.estimate(task)}), prepared.images

    async def _insert(self, task: Task, images: list[ImageData]) -> Task:
        """Store ``task``, within the budgets when there are any (atomically, in the store)."""
        checks = self._budgets.checks(task.user_id) if self._budgets is not None else []
        if not checks:
            return await self._store.insert(task, images=images)
        assert self._budgets is not None
        cost = task.cost
        if cost is None:
            raise InvalidRequestError(
                f"no price is known for model {task.model!r} at provider {task.provider!r}, so "
                "its cost cannot be kept within the budgets: add it to the price table",
                field="model",
            )
        for check in checks:
            if cost.currency != check.limit.currency:
                raise InvalidRequestError(
                    f"the task is priced in {cost.currency} but the budget is in "
                    f"{check.limit.currency}",
                    field="budget",
                    limit=check.limit.currency,
                )
        spent = await self._store.insert_within_budget(task, checks=checks, images=images)
        announce(self._budgets.alerts(checks, spent, cost.amount, task.id), self._on_budget_alert)
        return task

    def _plan(
        self, name: str, route: Sequence[RouteEntry], request: GenerationRequest
    ) -> tuple[list[RouteStep], PreparedRequest, list[tuple[str, str]]]:
        """Check ``request`` against each provider of route ``name``, with the model it goes by
        there: the steps that can take it, the request as the first one takes it, and why each
        of the others cannot. Raises when none can, listing every provider's reason."""
        steps: list[RouteStep] = []
        first: PreparedRequest | None = None
        refused: list[tuple[str, str]] = []
        errors: list[InvalidRequestError] = []
        for entry in route:
            asked = (
                request
                if entry.model is None
                else request.model_copy(update={"model": entry.model})
            )
            provider = self._providers[entry.provider]
            try:
                prepared = prepare(
                    asked, limits=self._limits, provider=provider, name=entry.provider
                )
            except InvalidRequestError as exc:
                refused.append((entry.provider, str(exc)))
                errors.append(exc)
                continue
            first = first or prepared
            steps.append(
                RouteStep(
                    provider=entry.provider,
                    model=prepared.model,
                    size=prepared.frame.size,
                    seconds=prepared.seconds,
                    aspect_ratio=prepared.frame.aspect_ratio,
                    resolution=prepared.frame.resolution,
                )
            )
        if first is None:
            reasons = "; ".join(f"{provider}: {reason}" for provider, reason in refused)
            fields = {error.field for error in errors}
            kinds = {type(error) for error in errors}
            kind = kinds.pop() if len(kinds) == 1 else UnsupportedParameterError
            raise kind(
                f"no provider of route {name!r} can take this request ({reasons})",
                field=fields.pop() if len(fields) == 1 else "provider",
                limit=[provider for provider, _ in refused],
            )
        return steps, first, refused

    async def _admit(self, task: Task, images: list[ImageData]) -> Task:
        if self._engine.max_in_flight(task.provider) is not None:
            # a capped provider: the engine submits in priority order as jobs finish
            task = await self._insert(task, images)
            self._events.publish(None, task)
            self._engine.wake()
            return task
        now = self._clock()
        task = task.model_copy(
            update={
                "submission_id": f"sub_{uuid.uuid4().hex}",
                "submitted_at": now,
                # if we die mid-submit, a peer finds the task once this lease runs out
                "lease_owner": self._engine.owner,
                "lease_expires_at": now + timedelta(seconds=self._policy.lease_seconds),
            }
        )
        task = await self._insert(task, images)
        self._events.publish(None, task)
        task = await self._ops.submit(task, images)
        self._engine.wake()
        return task
