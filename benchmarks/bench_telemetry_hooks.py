"""What the OpenTelemetry hooks cost one poll: the engine's span, the provider call's span and
its HTTP annotation, the poll counter, the store timer and the wait for a pooled connection, with
no network or store around them.

Run it three ways: as is (opentelemetry-api installed, no SDK: the usual case for a library),
with ``--sdk`` (an SDK recording every span and metric in memory), and with ``--without-otel``
(the API hidden, as if the ``otel`` extra were not installed).

    python benchmarks/bench_telemetry_hooks.py
    python benchmarks/bench_telemetry_hooks.py --sdk
    python benchmarks/bench_telemetry_hooks.py --without-otel
"""

from __future__ import annotations

import argparse
import sys
import timeit
from datetime import UTC, datetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20_000)
    parser.add_argument("--sdk", action="store_true", help="record into an in-memory SDK")
    parser.add_argument("--without-otel", action="store_true", help="hide opentelemetry")
    args = parser.parse_args()
    if args.without_otel:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    if args.sdk:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    from sora_tasks._telemetry import (
        engine_span,
        note_http,
        provider_span,
        record_connection_wait,
        record_poll,
        store_timer,
        wait_started,
    )
    from sora_tasks.testing._task_factories import make_task

    task = make_task(datetime.now(UTC))

    def one_poll() -> None:
        with engine_span("poll", task):
            with provider_span("status", task):
                note_http("GET", 200, 0)
            record_poll(task.provider, "ok")
            with store_timer("update"):
                started = wait_started()
                if started is not None:
                    record_connection_wait(started, engine=True)

    seconds = min(timeit.repeat(one_poll, number=args.polls, repeat=3))
    mode = "no otel" if args.without_otel else "SDK in memory" if args.sdk else "API, no SDK"
    print(f"{mode}: {seconds / args.polls * 1e6:.1f} µs of telemetry hooks per poll")


if __name__ == "__main__":
    main()
