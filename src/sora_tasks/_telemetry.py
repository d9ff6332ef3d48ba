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

import os
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from typing import TYPE_CHECKING, Any

from ._exceptions import ProviderError, ProviderHTTPError

if TYPE_CHECKING:
    from ._circuits import HealthBook
    from ._models import Task

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as _metrics_api
except ImportError:  # the otel extra is not installed
    _ENABLED = False
else:
    _ENABLED = True

_ENVIRONMENT_AT_IMPORT = frozenset(
    name
    for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
    if name in os.environ
)

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


# the hooks run several times per poll, so "nothing is configured" must cost next to nothing:
# a context manager that does nothing is shared, and a provider once set is remembered (the
# API accepts one per process and never replaces it)
_NOTHING: AbstractContextManager[None] = nullcontext()
_tracer_provider: trace.TracerProvider | None = None
_metering = False
_UNKNOWN = object()


def _unset(api: object, name: str, variable: str) -> bool:
    """Whether the API holds no provider in its global ``name`` (certainly none recording).

    The API's own getters look in the environment on every call while no provider is set
    (``os.environ`` raises and catches a ``KeyError`` each time), several times per poll; its
    global is read instead. A provider named by the environment is left to the getter, which
    loads it; an API that keeps its provider elsewhere is asked through the getter as well.
    """
    return getattr(api, name, _UNKNOWN) is None and variable not in _ENVIRONMENT_AT_IMPORT


def _tracer() -> trace.Tracer | None:
    """The tracer, or None while the application has set no tracer provider: a span that
    nothing records still costs tens of microseconds, on every poll."""
    global _tracer_provider
    provider = _tracer_provider
    if provider is None:
        if _unset(trace, "_TRACER_PROVIDER", "OTEL_PYTHON_TRACER_PROVIDER"):
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
        _tracer_provider = provider  # the API accepts one provider per process, for good
    return provider.get_tracer(_NAME)


def _metered() -> bool:
    """Whether the application has set a meter provider: until it does, the API's instruments
    drop every measurement, so none is taken."""
    global _metering
    if not _metering:
        if _unset(_metrics_api, "_METER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER"):
            return False
        # the API's own providers (its proxy and its no-op) record nothing; any other does
        module = type(metrics.get_meter_provider()).__module__
        _metering = not module.startswith("opentelemetry.metrics")
    return _metering


def _task_attributes(task: Task) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "sora_tasks.task_id": task.id,
        "sora_tasks.provider": task.provider,
        "sora_tasks.model": task.model,
    }
    if task.external_id is not None:
        attributes["sora_tasks.external_id"] = task.external_id
    return attributes


def engine_span(operation: str, task: Task) -> AbstractContextManager[object]:
    """A span over one engine operation on ``task`` (``submit``, ``poll``, ...)."""
    tracer = _tracer() if _ENABLED else None
    if tracer is None:
        return _NOTHING
    return tracer.start_as_current_span(
        f"sora_tasks.engine.{operation}", attributes=_task_attributes(task)
    )


def provider_span(operation: str, task: Task) -> AbstractContextManager[None]:
    """A span over one provider call for ``task``; a :class:`ProviderError` is recorded on it
    (with the provider's request id) and counted in ``sora_tasks.provider.errors``."""
    if not _ENABLED:
        return _NOTHING
    tracer = _tracer()
    if tracer is not None:
        return _provider_span(tracer, operation, task)
    if _metered():
        return _counting_errors(operation, task)
    return _NOTHING


@contextmanager
def _counting_errors(operation: str, task: Task) -> Iterator[None]:
    try:
        yield
    except ProviderError as exc:
        _count_error(task, operation, exc)
        raise


@contextmanager
def _provider_span(tracer: trace.Tracer, operation: str, task: Task) -> Iterator[None]:
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
    if not (_ENABLED and _metered()):
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
    if not _ENABLED or (before is not None and before.status is after.status) or not _metered():
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
    if _ENABLED and _metered():
        _instruments().polls.add(
            1, {"sora_tasks.provider": provider, "sora_tasks.outcome": outcome}
        )


def record_detection_delay(provider: str, seconds: float) -> None:
    """Record how long after the provider finished a job the engine saw it."""
    if _ENABLED and _metered():
        _instruments().detection_delay.record(max(0.0, seconds), {"sora_tasks.provider": provider})


def wait_started() -> float | None:
    """A start time for :func:`record_connection_wait`; ``None`` without OpenTelemetry."""
    return time.perf_counter() if _ENABLED and _metered() else None


def record_connection_wait(started: float, *, engine: bool) -> None:
    """Record the wait for a pooled connection since ``started`` (from :func:`wait_started`)."""
    _instruments().connection_wait.record(
        time.perf_counter() - started, {"sora_tasks.lane": "engine" if engine else "api"}
    )


def store_timer(operation: str) -> AbstractContextManager[None]:
    """Time one store operation into ``sora_tasks.store.duration``."""
    if not (_ENABLED and _metered()):
        return _NOTHING
    return _timing(operation)


@contextmanager
def _timing(operation: str) -> Iterator[None]:
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
