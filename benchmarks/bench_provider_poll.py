"""Client CPU per status poll: an adapter's status() vs raw httpx2 vs the official client.

``--shape openai`` (the default) measures OpenAIVideosProvider.status against raw httpx2 and the
openai package; ``--shape fal`` measures FalProvider.status (a job IN_PROGRESS, its logs read for
progress) against raw httpx2 on the same ``…/status?logs=1`` and fal-client's status.

The simulator runs in a separate process (pinned to its own CPU when there are several) so only
the client's work is counted: ``time.process_time`` of this process divided by the number of
requests. Each client uses its own defaults, as a user would get them. Rounds interleave the
clients and the median round is reported.

    .venv/bin/python benchmarks/bench_provider_poll.py --requests 3000 --rounds 5
    .venv/bin/python benchmarks/bench_provider_poll.py --shape fal --requests 1500 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import anyio
import httpx2
import openai
from _simulator_process import simulator_process

from sora_tasks.providers import FalProvider, OpenAIVideosProvider

KEY = "sk-bench"
FAL_MODEL = "fal-ai/veo3.1"
Call = Callable[[], Awaitable[object]]


async def run_batch(call: Call, requests: int, concurrency: int) -> None:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)


async def cpu_per_request(call: Call, requests: int, concurrency: int) -> float:
    """Microseconds of client CPU per request, after a warm-up that opens the connections."""
    await run_batch(call, max(200, 4 * concurrency), concurrency)
    gc.collect()
    started = time.process_time()
    await run_batch(call, requests, concurrency)
    return (time.process_time() - started) / requests * 1e6


async def openai_clients(stack: AsyncExitStack, url: str) -> dict[str, Call]:
    raw = await stack.enter_async_context(httpx2.AsyncClient())
    created = await raw.post(
        f"{url}/v1/videos", json={"prompt": "bench"}, headers={"authorization": f"Bearer {KEY}"}
    )
    video_id = created.json()["id"]
    status_url = f"{url}/v1/videos/{video_id}"
    headers = {"authorization": f"Bearer {KEY}"}
    ours = OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1")
    stack.push_async_callback(ours.aclose)
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
    stack.push_async_callback(sdk.close)

    async def raw_get() -> object:
        response = await raw.get(status_url, headers=headers)
        response.raise_for_status()
        return json.loads(response.content)

    async def ours_status() -> object:
        return await ours.status(video_id)

    async def sdk_retrieve() -> object:
        return await sdk.videos.retrieve(video_id)

    return {
        "raw httpx2 + json": raw_get,
        "OpenAIVideosProvider.status": ours_status,
        "openai videos.retrieve": sdk_retrieve,
    }


async def fal_clients(stack: AsyncExitStack, url: str) -> dict[str, Call]:
    import fal_client.client  # a test dependency: only this shape needs it

    raw = await stack.enter_async_context(httpx2.AsyncClient())
    headers = {"authorization": f"Key {KEY}"}
    created = await raw.post(f"{url}/fal/{FAL_MODEL}", json={"prompt": "bench"}, headers=headers)
    request_id = created.json()["request_id"]
    external_id = f"{FAL_MODEL}/requests/{request_id}"
    status_url = f"{url}/fal/{external_id}/status"
    await anyio.sleep(1.5)  # past the simulated queue: every poll answers IN_PROGRESS with logs
    ours = FalProvider(KEY, base_url=f"{url}/fal")
    stack.push_async_callback(ours.aclose)
    official = await fal_client.AsyncClient(key=KEY)._client  # its own httpx client
    stack.push_async_callback(official.aclose)
    handle = fal_client.client.AsyncRequestHandle(
        request_id=request_id,
        response_url=status_url.removesuffix("/status"),
        status_url=status_url,
        cancel_url=status_url.removesuffix("/status") + "/cancel",
        client=official,
    )

    async def raw_get() -> object:
        response = await raw.get(status_url, params={"logs": "1"}, headers=headers)
        response.raise_for_status()
        return json.loads(response.content)

    async def ours_status() -> object:
        return await ours.status(external_id)

    async def official_status() -> object:
        return await handle.status(with_logs=True)

    return {
        "raw httpx2 + json": raw_get,
        "FalProvider.status": ours_status,
        "fal_client status": official_status,
    }


async def main(
    url: str, shape: str, requests: int, rounds: int, levels: list[int]
) -> dict[str, object]:
    async with AsyncExitStack() as stack:
        build = fal_clients if shape == "fal" else openai_clients
        clients = await build(stack, url)
        samples: dict[str, dict[int, list[float]]] = {n: {c: [] for c in levels} for n in clients}
        for _ in range(rounds):
            for concurrency in levels:
                for name, call in clients.items():
                    samples[name][concurrency].append(
                        await cpu_per_request(call, requests, concurrency)
                    )
    return {
        name: {c: statistics.median(values) for c, values in by_level.items()}
        for name, by_level in samples.items()
    }


def report(results: dict[str, dict[int, float]], levels: list[int]) -> None:
    raw = results["raw httpx2 + json"]
    print("client CPU per status request, µs (median of rounds); ratio to raw httpx2")
    print(f"{'client':32}" + "".join(f"{f'c={c}':>20}" for c in levels))
    for name, by_level in results.items():
        cells = "".join(f"{by_level[c]:>11.0f} ({by_level[c] / raw[c]:.2f}x)" for c in levels)
        print(f"{name:32}{cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--shape", choices=["openai", "fal"], default="openai")
    args = parser.parse_args()
    # the official SDK marks the Videos API deprecated; its warning is not what we measure
    warnings.simplefilter("ignore", DeprecationWarning)
    with simulator_process(["--render-seconds=100000"], cpu=0) as base_url:
        outcome = anyio.run(
            main, base_url, args.shape, args.requests, args.rounds, args.concurrency
        )
    report(outcome, args.concurrency)  # type: ignore[arg-type]
