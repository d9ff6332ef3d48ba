"""The polling engine with 10,000 tasks in flight against the loopback simulator.

For each store (in-memory, SQLite) a fresh child process creates the tasks through the manager,
then runs the engine with a schedule that keeps every task due, and reports:

- memory per in-flight task that the engine adds above what the store holds (RSS once the tasks
  are stored, against RSS while the engine polls them);
- client CPU per poll (request, parse, normalise, schedule, store write), as a ratio to raw
  ``httpx2`` GET + ``json.loads`` measured in the same process at the same concurrency.

The simulator runs in its own process, pinned to one CPU, so its work is not counted.

    .venv/bin/python benchmarks/bench_engine.py --tasks 10000 --seconds 20
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from _simulator_process import simulator_process

from sora_tasks import PollingPolicy, PollSchedule, TaskManager
from sora_tasks.providers import OpenAIVideosProvider, ProviderJob
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from sora_tasks.storage import InMemoryStore, SQLStore, TaskStore

KEY = "sk-bench"
STORES = ("memory", "sqlite")


class CountingProvider(OpenAIVideosProvider):
    """Counts status calls, so CPU can be divided by the polls actually made."""

    polls = 0

    async def status(self, external_id: str) -> ProviderJob:
        CountingProvider.polls += 1
        return await super().status(external_id)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def raw_cpu_per_request(url: str, video_id: str, requests: int, concurrency: int) -> float:
    """Microseconds of CPU per raw GET + json.loads at the engine's concurrency."""
    async with httpx2.AsyncClient() as client:
        target, headers = f"{url}/v1/videos/{video_id}", {"authorization": f"Bearer {KEY}"}
        remaining = 0

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.get(target, headers=headers)
                json.loads(response.content)

        for count in (500, requests):  # warm-up opens the connections first
            remaining = count
            started = time.process_time()
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker)
        return (time.process_time() - started) / requests * 1e6


async def paced_raw_cpu_per_request(
    url: str, video_id: str, rate: float, seconds: float, concurrency: int
) -> float:
    """Raw GET + json.loads issued at ``rate`` per second, at most ``concurrency`` at once.

    The traffic pattern of a poller (requests spread in time, connections idle between them)
    costs the HTTP client more per request than a back-to-back loop, whoever drives it.
    """
    async with httpx2.AsyncClient() as client:
        target, headers = f"{url}/v1/videos/{video_id}", {"authorization": f"Bearer {KEY}"}
        limiter = anyio.CapacityLimiter(concurrency)

        async def one() -> None:
            async with limiter:
                response = await client.get(target, headers=headers)
                json.loads(response.content)

        async def run(duration: float) -> int:
            sent = 0
            async with anyio.create_task_group() as group:
                started = anyio.current_time()
                while anyio.current_time() - started < duration:
                    group.start_soon(one)
                    sent += 1
                    await anyio.sleep(1 / rate)
            return sent

        await run(min(2.0, seconds / 4))
        cpu = time.process_time()
        sent = await run(seconds)
        return (time.process_time() - cpu) / sent * 1e6


async def child(
    kind: str, url: str, tasks: int, seconds: float, folder: Path, concurrency: int
) -> dict[str, float]:
    store: TaskStore = (
        InMemoryStore() if kind == "memory" else SQLStore(f"sqlite+aiosqlite:///{folder}/t.db")
    )
    provider = CountingProvider(
        api_key=KEY,
        base_url=f"{url}/v1",
        capabilities=DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0}),
    )
    # every task is due again at once: the engine polls as fast as it can
    busy = PollSchedule(
        expected_seconds=0.001, first_interval=0.001, dense_interval=0.001, max_interval=0.001
    )
    policy = PollingPolicy(schedule=busy, max_concurrent_polls=concurrency, batch_size=concurrency)
    manager = TaskManager(providers={"sim": provider}, store=store, policy=policy)
    probe = await manager.create("probe", model="sora-2", size="1280x720", seconds=4)

    gc.collect()
    before_tasks = rss_kib()
    created = 0

    async def create_some(count: int) -> None:
        nonlocal created
        for _ in range(count):
            await manager.create(f"task {created}", model="sora-2", size="1280x720", seconds=4)
            created += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for share in range(32):
            group.start_soon(create_some, tasks // 32 + (share < tasks % 32))
    create_seconds = time.perf_counter() - started
    gc.collect()
    stored = rss_kib()
    # the baseline runs beside the same stored tasks (a full garbage collection walks them all),
    # once before the engine and once after, so a slow patch of the machine weighs on both sides
    raw_before = await raw_cpu_per_request(url, probe.external_id or "", 4000, concurrency)

    async with manager:
        await anyio.sleep(min(5.0, seconds / 4))  # warm-up: connections, first claims
        polls, cpu, peak = CountingProvider.polls, time.process_time(), stored
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await anyio.sleep(0.5)
            peak = max(peak, rss_kib())
        polls, cpu = CountingProvider.polls - polls, time.process_time() - cpu
    raw_after = await raw_cpu_per_request(url, probe.external_id or "", 4000, concurrency)
    paced_us = await paced_raw_cpu_per_request(
        url, probe.external_id or "", polls / seconds, min(seconds, 10.0), concurrency
    )
    return {
        "tasks": tasks + 1,
        "create_per_s": tasks / create_seconds,
        "store_kib_per_task": (stored - before_tasks) / tasks,
        "engine_kib_per_task": (peak - stored) / (tasks + 1),
        "polls_per_s": polls / seconds,
        "cpu_us_per_poll": cpu / polls * 1e6,
        "raw_us_per_request": (raw_before + raw_after) / 2,
        "paced_raw_us_per_request": paced_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--rounds", type=int, default=3, help="runs per row; the median is shown")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, folder = args.child
        outcome = anyio.run(
            child, kind, url, args.tasks, args.seconds, Path(folder), args.concurrency[0]
        )
        print(json.dumps(outcome))
        return
    simulator = ["--render-seconds=86400", "--queue-seconds=0", f"--api-key={KEY}"]
    rounds: dict[tuple[str, int], list[dict[str, float]]] = {}
    with simulator_process(simulator, cpu=0) as url:
        # rounds interleave the rows, so that a slow spell of the machine is spread over them all
        for _ in range(args.rounds):
            for kind in args.stores:
                for concurrency in args.concurrency:
                    with tempfile.TemporaryDirectory() as folder:
                        command = [
                            sys.executable,
                            __file__,
                            f"--tasks={args.tasks}",
                            f"--seconds={args.seconds}",
                            f"--concurrency={concurrency}",
                            "--child",
                            kind,
                            url,
                            folder,
                        ]
                        output = subprocess.run(command, check=True, capture_output=True, text=True)
                    rounds.setdefault((kind, concurrency), []).append(json.loads(output.stdout))
    results, spreads = {}, {}
    for row, runs in rounds.items():
        runs.sort(key=lambda r: r["cpu_us_per_poll"] / r["raw_us_per_request"])
        results[row] = runs[(len(runs) - 1) // 2]
        low, high = (r["cpu_us_per_poll"] / r["raw_us_per_request"] for r in (runs[0], runs[-1]))
        spreads[row] = f"{low:.2f} to {high:.2f}x"
    print(
        f"{args.tasks} tasks in flight, {args.seconds:.0f} s measured per run, "
        f"median of {args.rounds} runs per row\n"
    )
    print(
        "| store | polls at once | creates/s | store KiB/task | engine KiB/task | polls/s "
        "| CPU µs/poll | raw µs/req back-to-back | ratio | ratio, all runs "
        "| raw µs/req at the same rate | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (kind, concurrency), r in results.items():
        ratio = r["cpu_us_per_poll"] / r["raw_us_per_request"]
        paced = r["cpu_us_per_poll"] / r["paced_raw_us_per_request"]
        print(
            f"| {kind} | {concurrency} | {r['create_per_s']:.0f} | {r['store_kib_per_task']:.2f} "
            f"| {r['engine_kib_per_task']:.2f} | {r['polls_per_s']:.0f} "
            f"| {r['cpu_us_per_poll']:.0f} | {r['raw_us_per_request']:.0f} | {ratio:.2f}x "
            f"| {spreads[kind, concurrency]} "
            f"| {r['paced_raw_us_per_request']:.0f} | {paced:.2f}x |"
        )


if __name__ == "__main__":
    main()
