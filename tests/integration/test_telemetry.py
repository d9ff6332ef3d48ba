"""OpenTelemetry: the spans and metrics of real tasks, read back from the SDK's in-memory
exporters, the provider being the simulator on 127.0.0.1. The library uses the API only; the
SDK is set up here, as an application would."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sora_tasks import (
    PollingPolicy,
    PollSchedule,
    PriceTable,
    ProviderServerError,
    TaskManager,
    TaskStatus,
)
from sora_tasks._circuits import CircuitPolicy, CircuitState, HealthBook
from sora_tasks.providers import Backoff, OpenAIVideosProvider
from sora_tasks.storage import SQLStore
from sora_tasks.testing import (
    FakeBehaviour,
    FakeProvider,
    create_simulator_app,
    serve_in_thread,
)
from sora_tasks.testing._simulator import Faults

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "sk-otel-test"
QUICK = PollSchedule(first_interval=0.05, dense_interval=0.05, max_interval=0.2)
POLICY = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0, schedule=QUICK)


@dataclass(frozen=True)
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self, provider: str) -> list[ReadableSpan]:
        return [
            span
            for span in self.spans.get_finished_spans()
            if (span.attributes or {}).get("sora_tasks.provider") == provider
        ]

    def points(self, name: str, **attributes: Any) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        found = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        given = point.attributes or {}
                        if all(given.get(k) == v for k, v in attributes.items()):
                            found.append(point)
        return found


_SETUP: Telemetry | None = None


@pytest.fixture
def otel() -> Telemetry:
    """The process's SDK (the API accepts a provider once per process), spans cleared."""
    global _SETUP
    if _SETUP is None:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _SETUP = Telemetry(exporter, reader)
    _SETUP.spans.clear()
    return _SETUP


@pytest.fixture
def simulator() -> Iterator[str]:
    app = create_simulator_app(
        render_seconds=0.2,
        queue_seconds=0,
        poll_after_ms=None,
        faults={"retrieve": Faults(rate_limits=1, retry_after=0)},
    )
    with serve_in_thread(app) as url:
        yield f"{url}/v1"


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_a_task_leaves_engine_and_provider_spans_with_ids_status_and_retries(
    otel: Telemetry, simulator: str
) -> None:
    provider = OpenAIVideosProvider(
        api_key=KEY, base_url=simulator, backoff=Backoff(initial=0.01, maximum=0.02)
    )
    async with TaskManager(providers={"sim-spans": provider}, policy=POLICY) as manager:
        task = await manager.create("a cat", seconds=4)
        task = await manager.wait(task.id, timeout=20)
    assert task.status is TaskStatus.COMPLETED
    spans = otel.finished("sim-spans")
    submit = named(spans, "sora_tasks.provider.submit")
    statuses = named(spans, "sora_tasks.provider.status")
    polls = named(spans, "sora_tasks.engine.poll")
    assert len(submit) == 1
    assert statuses
    assert polls
    first = statuses[0]
    attributes = dict(first.attributes or {})
    assert attributes["sora_tasks.task_id"] == task.id
    assert attributes["sora_tasks.external_id"] == task.external_id
    assert attributes["sora_tasks.model"] == task.model
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    # the simulator answered the first status call 429: one retry inside that call
    assert attributes["sora_tasks.retry_count"] == 1
    assert all((s.attributes or {})["sora_tasks.retry_count"] == 0 for s in statuses[1:])
    # every status call runs inside the engine's poll of that task
    poll_ids = {span.context.span_id for span in polls if span.context is not None}
    assert all(s.parent is not None and s.parent.span_id in poll_ids for s in statuses)
    assert (submit[0].attributes or {})["http.request.method"] == "POST"


async def test_task_metrics_count_transitions_polls_and_store_latency(
    otel: Telemetry, simulator: str
) -> None:
    provider = OpenAIVideosProvider(
        api_key=KEY, base_url=simulator, backoff=Backoff(initial=0.01, maximum=0.02)
    )
    async with TaskManager(providers={"sim-metrics": provider}, policy=POLICY) as manager:
        task = await manager.wait((await manager.create("a cat")).id, timeout=20)
    assert task.status is TaskStatus.COMPLETED
    by = {"sora_tasks.provider": "sim-metrics"}
    reached = {
        point.attributes["sora_tasks.status"]: point.value
        for point in otel.points("sora_tasks.task.transitions", **by)
    }
    assert reached == {"QUEUED": 1, "PROCESSING": 1, "COMPLETED": 1}
    (ok,) = otel.points("sora_tasks.polls", **by, **{"sora_tasks.outcome": "ok"})
    assert ok.value >= 1
    (delay,) = otel.points("sora_tasks.completion.detection_delay", **by)
    assert delay.count == 1
    assert 0 <= delay.sum < 20
    updates = otel.points("sora_tasks.store.duration", **{"sora_tasks.operation": "update"})
    claims = otel.points("sora_tasks.store.duration", **{"sora_tasks.operation": "claim_due"})
    assert updates and updates[0].count > 0
    assert claims and claims[0].count > 0


async def test_a_provider_error_is_counted_by_kind_and_recorded_on_its_span(
    otel: Telemetry,
) -> None:
    app = create_simulator_app(faults={"create": Faults(rejections=1)})
    with serve_in_thread(app) as url:
        provider = OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1")
        async with TaskManager(providers={"sim-errors": provider}, policy=POLICY) as manager:
            task = await manager.wait((await manager.create("a cat")).id, timeout=20)
    assert task.status is TaskStatus.FAILED
    (errors,) = otel.points(
        "sora_tasks.provider.errors",
        **{"sora_tasks.provider": "sim-errors", "error.type": "ProviderRejectedError"},
    )
    assert errors.value == 1
    assert errors.attributes["http.response.status_code"] == 400
    (span,) = named(otel.finished("sim-errors"), "sora_tasks.provider.submit")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_without_opentelemetry_installed_the_library_works_as_before() -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
import anyio
from sora_tasks import TaskManager, TaskStatus
from sora_tasks.testing import FakeBehaviour, FakeProvider

async def main():
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05, poll_after=0.01))
    async with TaskManager(providers=fake) as manager:
        task = await manager.wait((await manager.create("a cat")).id, timeout=10)
    assert task.status is TaskStatus.COMPLETED, task
    assert "opentelemetry.trace" not in sys.modules

anyio.run(main)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr


def _total(points: Sequence[Any]) -> tuple[int, float]:
    return sum(point.count for point in points), sum(point.sum for point in points)


async def test_the_wait_for_a_pooled_connection_is_recorded_by_lane(
    otel: Telemetry, tmp_path: Path
) -> None:
    wait = "sora_tasks.store.connection.wait"
    # one connection: a caller that finds it taken waits for it
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}", pool_size=1, max_overflow=0)
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05, poll_after=0.01))
    async with TaskManager(providers={"sim-pool": fake}, store=store, policy=POLICY) as manager:
        task = await manager.wait((await manager.create("a cat")).id, timeout=20)
        assert task.status is TaskStatus.COMPLETED
        engine_count, _ = _total(otel.points(wait, **{"sora_tasks.lane": "engine"}))
        api_count, api_seconds = _total(otel.points(wait, **{"sora_tasks.lane": "api"}))
        assert engine_count > 0
        assert api_count > 0
        held = 0.3
        holding = anyio.Event()

        async def hold() -> None:
            async with store._engine.connect():
                holding.set()
                await anyio.sleep(held)

        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            await holding.wait()
            await manager.get(task.id)
        count, seconds = _total(otel.points(wait, **{"sora_tasks.lane": "api"}))
    assert count == api_count + 1
    # the read waited for the connection held above
    assert seconds - api_seconds >= held / 2


def test_circuit_state_is_observed_per_provider(otel: Telemetry) -> None:
    now = [0.0]
    book = HealthBook(
        ["sim-circuit"], CircuitPolicy(failure_threshold=2, open_seconds=10), clock=lambda: now[0]
    )

    def states() -> dict[str, int]:
        return {
            point.attributes["sora_tasks.circuit.state"]: point.value
            for point in otel.points(
                "sora_tasks.provider.circuit", **{"sora_tasks.provider": "sim-circuit"}
            )
        }

    assert states() == {"closed": 1, "open": 0, "half_open": 0}
    for _ in range(2):
        book.failed("sim-circuit", ProviderServerError("down", status_code=503))
    assert states() == {"closed": 0, "open": 1, "half_open": 0}
    now[0] = 11.0
    assert states() == {"closed": 0, "open": 0, "half_open": 1}
    book.succeeded("sim-circuit")
    assert states() == {"closed": 1, "open": 0, "half_open": 0}
    del book
    gc.collect()
    # a manager gone is no longer reported
    assert states() == {}


async def test_a_closed_manager_no_longer_reports_its_circuits(otel: Telemetry) -> None:
    def reported() -> list[object]:
        return otel.points("sora_tasks.provider.circuit", **{"sora_tasks.provider": "sim-closed"})

    manager = TaskManager(providers={"sim-closed": FakeProvider()}, poll=False)
    async with manager:
        assert len(reported()) == len(list(CircuitState))
    # still referenced, but closed: its circuits say nothing about the provider any more
    assert reported() == []
    async with manager:
        assert len(reported()) == len(list(CircuitState))


PRICES = PriceTable.from_csv(
    "provider,model,resolution,audio,per_second,per_job,currency,effective,source\n"
    "fake,fake-video-1,*,*,0.5,,USD,2026-01-01,test price\n",
    name="prices.csv",
)


async def test_the_cost_of_each_ended_task_is_counted_once(otel: Telemetry) -> None:
    quick = FakeBehaviour(render_for=0.05, poll_after=0.01)
    failing = FakeBehaviour(render_for=0.05, poll_after=0.01, outcome="failed")
    providers = {
        "sim-cost": FakeProvider(behaviour=quick),
        "sim-cost-fail": FakeProvider(behaviour=failing),
    }
    async with TaskManager(providers=providers, prices=PRICES, policy=POLICY) as manager:
        for seconds in (4, 8):
            task = await manager.create("a cat", seconds=seconds, provider="sim-cost")
            assert (await manager.wait(task.id, timeout=20)).status is TaskStatus.COMPLETED
        failed = await manager.create("a dog", seconds=4, provider="sim-cost-fail")
        assert (await manager.wait(failed.id, timeout=20)).status is TaskStatus.FAILED
    (actual,) = otel.points("sora_tasks.cost", **{"sora_tasks.provider": "sim-cost"})
    assert actual.value == 6.0
    assert actual.attributes == {
        "sora_tasks.provider": "sim-cost",
        "sora_tasks.model": "fake-video-1",
        "sora_tasks.currency": "USD",
        "sora_tasks.cost.estimated": False,
    }
    # a failed job keeps its estimate: the budgets count it as spent
    (estimated,) = otel.points("sora_tasks.cost", **{"sora_tasks.provider": "sim-cost-fail"})
    assert (estimated.value, estimated.attributes["sora_tasks.cost.estimated"]) == (2.0, True)


def test_providers_set_while_the_engine_runs_are_reported_to_from_then_on() -> None:
    # the hooks skip all work while no provider is set: one set later must still be used
    code = """
import anyio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sora_tasks import TaskManager, TaskStatus
from sora_tasks.testing import FakeBehaviour, FakeProvider

async def main():
    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05, poll_after=0.01))
    async with TaskManager(providers={"late": fake}) as manager:
        before = await manager.wait((await manager.create("a cat")).id, timeout=10)
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        after = await manager.wait((await manager.create("a dog")).id, timeout=10)
    assert before.status is after.status is TaskStatus.COMPLETED
    ids = {span.attributes["sora_tasks.task_id"] for span in exporter.get_finished_spans()}
    assert ids == {after.id}, ids
    names = {span.name for span in exporter.get_finished_spans()}
    assert {"sora_tasks.engine.poll", "sora_tasks.provider.status"} <= names, names
    data = reader.get_metrics_data()
    found = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert {"sora_tasks.polls", "sora_tasks.store.duration"} <= found, found

anyio.run(main)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr
