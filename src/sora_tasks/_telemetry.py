"""OpenTelemetry spans and metrics, through the API only (the ``otel`` extra).

The library never configures an SDK: with none configured the API hands out no-op tracers and
meters, and without ``opentelemetry-api`` installed every hook here does nothing at all. Names
are under ``sora_tasks.``; the tracer and the meter are both called ``sora_tasks``.

Spans: ``sora_tasks.engine.<operation>`` per task the engine works on (submit, poll, collect,
resolve, timeout), and inside it ``sora_tasks.provider.<operation>`` per provider call
(submit, status, find, content, cancel), which the HTTP layer annotates with the response's
status code and the number of retries.

Metrics: ``sora_tasks.task.transitions`` (tasks reaching each status), ``sora_tasks.polls``
(status calls, by outcome: divide by the tasks that ended for polls per task),
``sora_tasks.completion.detection_delay`` (seconds from the provider finishing a job to the
engine seeing it, where the provider says when it finished), ``sora_tasks.provider.errors``
(by error kind), ``sora_tasks.store.duration`` (seconds per store operation the engine makes),
``sora_tasks.store.connection.wait`` (seconds a SQL store's caller waits for a pooled connection,
by lane: the engine's or the API's), ``sora_tasks.provider.circuit`` (per provider and state, 1
for the state its circuit breaker is in, 0 for the others) and ``sora_tasks.cost`` (what tasks
cost, counted once per task when it ends: the actual cost, else the estimate).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from ._exceptions import ProviderError, ProviderHTTPError

if TYPE_CHECKING:
    from ._circuits import HealthBook
    from ._models import Task

try:
    from opentelemetry import metrics, trace
except ImportError:  # the otel extra is not installed
    _ENABLED = False
else:
    _ENABLED = True

__all__ = [
    "engine_span",
    "note_http",
    "provider_span",
    "record_connection_wait",
    "record_detection_delay",
    "record_poll",
    "record_transition",
    "store_timer",
    "unwatch_circuits",
    "wait_started",
    "watch_circuits",
]

_NAME = "sora_tasks"


class _Instruments:
    """The meter's instruments, made once (the API's proxies follow a provider set later)."""

    def __init__(self) -> None:
        meter = metrics.get_meter(_NAME)
        self.transitions = meter.create_counter(
            "sora_tasks.task.transitions", unit="{task}", description="Tasks reaching a status."
        )
        self.polls = meter.create_counter(
            "sora_tasks.polls", unit="{poll}", description="Status calls to providers."
        )
        self.detection_delay = meter.create_histogram(
            "sora_tasks.completion.detection_delay",
            unit="s",
            description="From the provider finishing a job to the engine seeing it.",
        )
        self.provider_errors = meter.create_counter(
            "sora_tasks.provider.errors", unit="{error}", description="Failed provider calls."
        )
        self.store_duration = meter.create_histogram(
            "sora_tasks.store.duration", unit="s", description="Store operations of the engine."
        )
        self.connection_wait = meter.create_histogram(
            "sora_tasks.store.connection.wait",
            unit="s",
            description="From asking a SQL store for a connection to holding one.",
        )
        self.cost = meter.create_counter(
            "sora_tasks.cost",
            unit="{currency}",
            description="What ended tasks cost: the actual cost, else the estimate.",
        )
        meter.create_observable_gauge(
            "sora_tasks.provider.circuit",
            callbacks=[_observe_circuits],
            unit="1",
            description="1 for the state a provider's circuit breaker is in, 0 for the others.",
        )


# the circuit breakers of the live managers, read when the meter collects
_BOOKS: weakref.WeakSet[HealthBook] = weakref.WeakSet()


@cache
def _instruments() -> _Instruments:
    return _Instruments()


def _tracer() -> trace.Tracer | None:
    """The tracer, or None while the application has set no tracer provider: a span that
    nothing records still costs tens of microseconds, on every poll."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(_NAME)


def _task_attributes(task: Task) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "sora_tasks.task_id": task.id,
        "sora_tasks.provider": task.provider,
        "sora_tasks.model": task.model,
    }
    if task.external_id is not None:
        attributes["sora_tasks.external_id"] = task.external_id
    return attributes


@contextmanager
def engine_span(operation: str, task: Task) -> Iterator[None]:
    """A span over one engine operation on ``task`` (``submit``, ``poll``, ...)."""
    tracer = _tracer() if _ENABLED else None
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        f"sora_tasks.engine.{operation}", attributes=_task_attributes(task)
    ):
        yield


@contextmanager
def provider_span(operation: str, task: Task) -> Iterator[None]:
    """A span over one provider call for ``task``; a :class:`ProviderError` is recorded on it
    (with the provider's request id) and counted in ``sora_tasks.provider.errors``."""
    tracer = _tracer() if _ENABLED else None
    if tracer is None:
        try:
            yield
        except ProviderError as exc:
            _count_error(task, operation, exc)
            raise
        return
    attributes = {**_task_attributes(task), "sora_tasks.operation": operation}
    # the exception is recorded below, with its kind, request id and status: not twice
    with tracer.start_as_current_span(
        f"sora_tasks.provider.{operation}",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except ProviderError as exc:
            kind = type(exc).__name__
            span.set_attribute("error.type", kind)
            if exc.request_id is not None:
                span.set_attribute("sora_tasks.request_id", exc.request_id)
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, kind))
            _count_error(task, operation, exc)
            raise


def _count_error(task: Task, operation: str, exc: ProviderError) -> None:
    if not _ENABLED:
        return
    attributes: dict[str, Any] = {
        "sora_tasks.provider": task.provider,
        "sora_tasks.operation": operation,
        "error.type": type(exc).__name__,
    }
    if isinstance(exc, ProviderHTTPError):
        attributes["http.response.status_code"] = exc.status_code
    _instruments().provider_errors.add(1, attributes)


def note_http(method: str, status_code: int | None, retries: int) -> None:
    """Annotate the current span (a provider call's) with the HTTP exchange behind it."""
    if not _ENABLED:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("http.request.method", method)
    if status_code is not None:
        span.set_attribute("http.response.status_code", status_code)
    span.set_attribute("sora_tasks.retry_count", retries)


def record_transition(before: Task | None, after: Task) -> None:
    """Count ``after`` reaching its status, when it changed; the cost of a task that ends."""
    if not _ENABLED or (before is not None and before.status is after.status):
        return
    instruments = _instruments()
    instruments.transitions.add(
        1, {"sora_tasks.status": after.status.value, "sora_tasks.provider": after.provider}
    )
    # a task's cost turns actual in the write that completes it, so this counts each task once
    if after.is_terminal and after.cost is not None:
        instruments.cost.add(
            after.cost.amount,
            {
                "sora_tasks.provider": after.provider,
                "sora_tasks.model": after.model,
                "sora_tasks.currency": after.cost.currency,
                "sora_tasks.cost.estimated": after.cost.estimated,
            },
        )


def watch_circuits(book: HealthBook) -> None:
    """Report ``book``'s circuits in ``sora_tasks.provider.circuit`` for as long as it lives."""
    if _ENABLED:
        _BOOKS.add(book)
        _instruments()  # the gauge, and with it the callback, exist from the first book on


def unwatch_circuits(book: HealthBook) -> None:
    """Stop reporting ``book``'s circuits (its manager has closed)."""
    _BOOKS.discard(book)


def _observe_circuits(_options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    from ._circuits import CircuitState  # not at the top: _circuits imports this module

    for book in list(_BOOKS):
        for name, health in book.snapshot().items():
            for state in CircuitState:
                yield metrics.Observation(
                    int(health.state is state),
                    {"sora_tasks.provider": name, "sora_tasks.circuit.state": state.value},
                )


def record_poll(provider: str, outcome: str) -> None:
    """Count one status call to ``provider``: ``outcome`` is ``ok`` or ``error``."""
    if _ENABLED:
        _instruments().polls.add(
            1, {"sora_tasks.provider": provider, "sora_tasks.outcome": outcome}
        )


def record_detection_delay(provider: str, seconds: float) -> None:
    """Record how long after the provider finished a job the engine saw it."""
    if _ENABLED:
        _instruments().detection_delay.record(max(0.0, seconds), {"sora_tasks.provider": provider})


def wait_started() -> float | None:
    """A start time for :func:`record_connection_wait`; ``None`` without OpenTelemetry."""
    return time.perf_counter() if _ENABLED else None


def record_connection_wait(started: float, *, engine: bool) -> None:
    """Record the wait for a pooled connection since ``started`` (from :func:`wait_started`)."""
    _instruments().connection_wait.record(
        time.perf_counter() - started, {"sora_tasks.lane": "engine" if engine else "api"}
    )


@contextmanager
def store_timer(operation: str) -> Iterator[None]:
    """Time one store operation into ``sora_tasks.store.duration``."""
    if not _ENABLED:
        yield
        return
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        _instruments().store_duration.record(
            time.perf_counter() - started,
            {"sora_tasks.operation": operation, "sora_tasks.outcome": outcome},
        )
