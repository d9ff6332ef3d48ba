"""Client instructions per poll: the engine against raw httpx2, counted by cachegrind.

CPU seconds on a shared machine move by tens of percent between runs; instruction counts do not.
This runs the engine (in-memory store, a schedule that keeps every task due, as in
``bench_engine.py``) and raw ``httpx2`` GET + ``json.loads`` back to back, each in a child
process under ``valgrind --tool=cachegrind --cache-sim=no``, against the loopback simulator
(a separate, uninstrumented process). Each side runs twice, for ``--short`` and ``--long``
requests after the same start-up; the difference of the two counts divided by the difference of
the requests is the cost of one request, with start-up, imports and shutdown cancelled out.

Two more sides split the engine's cost (``--sides``): ``status``, the adapter alone
(``OpenAIVideosProvider.status`` back to back, no engine), and ``memory``, the engine with a
provider that answers from memory after one checkpoint (no HTTP: the engine's own bookkeeping,
plus building a ``ProviderJob``).

Instructions are not time (a cache miss or a system call costs more than its count), and under
valgrind the client runs some 50 times slower, so the simulator always answers at once: this is
the ratio of the work each side does per request, without the pacing effects that
``bench_engine.py`` also sees.

    .venv/bin/python benchmarks/bench_engine_instructions.py --concurrency 8 32
    .venv/bin/python benchmarks/bench_engine_instructions.py --sides raw status engine memory
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
from _simulator_process import simulator_process

from sora_tasks import PollingPolicy, PollSchedule, TaskManager, TaskStatus
from sora_tasks.providers import OpenAIVideosProvider, ProviderJob
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeProvider

KEY = "sk-bench"
SIDES = ("raw", "status", "engine", "memory")
TASKS = 300
WARM_UP = 300


class CountingProvider(OpenAIVideosProvider):
    """Counts status calls, and says when ``target`` of them have been made."""

    def __init__(self, target: int, **options: Any) -> None:
        super().__init__(**options)
        self.polls, self.target, self.reached = 0, target, anyio.Event()

    async def status(self, external_id: str) -> ProviderJob:
        self.polls += 1
        if self.polls >= self.target:
            self.reached.set()
        return await super().status(external_id)


async def raw(url: str, requests: int, concurrency: int) -> int:
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx2.AsyncClient() as client:
        created = await client.post(f"{url}/v1/videos", json={"prompt": "x"}, headers=headers)
        target = f"{url}/v1/videos/{created.json()['id']}"
        remaining = WARM_UP + requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                json.loads((await client.get(target, headers=headers)).content)

        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
    return WARM_UP + requests


async def status(url: str, requests: int, concurrency: int) -> int:
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx2.AsyncClient() as client:
        created = await client.post(f"{url}/v1/videos", json={"prompt": "x"}, headers=headers)
    provider = OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1")
    video_id, remaining = created.json()["id"], WARM_UP + requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await provider.status(video_id)

    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    await provider.aclose()
    return WARM_UP + requests


class InstantProvider(FakeProvider):
    """Answers every status from memory, after one checkpoint (as a network call would yield)."""

    honours_call_bounds = True

    def __init__(self, target: int) -> None:
        declared = FakeProvider().capabilities
        super().__init__(capabilities=declared.model_copy(update={"min_poll_interval": 0}))
        self.polls, self.target, self.reached = 0, target, anyio.Event()

    async def status(self, external_id: str) -> ProviderJob:
        self.polls += 1
        if self.polls >= self.target:
            self.reached.set()
        await anyio.lowlevel.checkpoint()
        progress = min(99, self.polls % 100)
        return ProviderJob(external_id=external_id, status=TaskStatus.PROCESSING, progress=progress)


async def engine(url: str, requests: int, concurrency: int, *, memory: bool = False) -> int:
    provider: CountingProvider | InstantProvider
    if memory:
        provider = InstantProvider(WARM_UP + requests)
    else:
        provider = CountingProvider(
            WARM_UP + requests,
            api_key=KEY,
            base_url=f"{url}/v1",
            capabilities=DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0}),
        )
    busy = PollSchedule(
        expected_seconds=0.001, first_interval=0.001, dense_interval=0.001, max_interval=0.001
    )
    policy = PollingPolicy(schedule=busy, max_concurrent_polls=concurrency, batch_size=concurrency)
    manager = TaskManager(providers={"sim": provider}, store=InMemoryStore(), policy=policy)
    for number in range(TASKS):
        await manager.create(f"task {number}", model="sora-2", size="1280x720", seconds=4)
    async with manager:
        await provider.reached.wait()
    return provider.polls  # the polls in flight at the stop count too


async def memory(url: str, requests: int, concurrency: int) -> int:
    return await engine(url, requests, concurrency, memory=True)


RUNS: dict[str, Callable[[str, int, int], Awaitable[int]]] = {
    "raw": raw,
    "status": status,
    "engine": engine,
    "memory": memory,
}


def counted(side: str, url: str, requests: int, concurrency: int) -> tuple[int, int]:
    """(requests made, instructions executed) by one instrumented child."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        side,
        url,
        str(requests),
        str(concurrency),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]), int(match.group(1).replace(",", ""))


def per_request(side: str, url: str, short: int, long: int, concurrency: int) -> float:
    made_short, spent_short = counted(side, url, short, concurrency)
    made_long, spent_long = counted(side, url, long, concurrency)
    return (spent_long - spent_short) / (made_long - made_short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--short", type=int, default=200, help="requests of the short runs")
    parser.add_argument("--long", type=int, default=1200, help="requests of the long runs")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=["raw", "engine"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, url, requests, concurrency = args.child
        print(anyio.run(RUNS[side], url, int(requests), int(concurrency)))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: this benchmark counts instructions with cachegrind")
    simulator = ["--render-seconds=86400", "--queue-seconds=0", f"--api-key={KEY}"]
    ratios = [side for side in args.sides if side != "raw"] if "raw" in args.sides else []
    columns = [f"{side} instructions/request" for side in args.sides]
    columns += [f"{side} / raw" for side in ratios]
    print("| polls at once | " + " | ".join(columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    with simulator_process(simulator) as url:
        for concurrency in args.concurrency:
            counts = {
                side: per_request(side, url, args.short, args.long, concurrency)
                for side in args.sides
            }
            cells = [f"{value:,.0f}" for value in counts.values()]
            cells += [f"{counts[side] / counts['raw']:.3f}x" for side in ratios]
            print(f"| {concurrency} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
