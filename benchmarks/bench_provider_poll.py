"""Client CPU per status poll: each adapter's status() vs raw httpx2 (and the official clients).

OpenAIVideosProvider.status is measured against a raw GET of the same video,
ReplicateProvider.status against a raw GET of the same prediction (the simulator's Replicate
shape), and FalProvider.status against a raw GET of the same request's ``…/status?logs=1`` (the
fal shape; the request is IN_PROGRESS, so each answer carries logs the adapter reads for
progress), with fal-client's status beside it.

The simulator runs in a separate process (pinned to its own CPU when there are several) so only
the client's work is counted: ``time.process_time`` of this process divided by the number of
requests. Each client uses its own defaults, as a user would get them. Every client (the
official SDKs included) makes one untimed call first, so lazy imports and first-use model builds
are paid before any timing, and a warm-up before each measurement opens its connections.
Rounds interleave the clients; the table gives the median round and, for each ratio, the
spread of the per-round ratios (each client against the raw baseline of the same round).

    .venv/bin/python benchmarks/bench_provider_poll.py --requests 3000 --rounds 5
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

from sora_tasks.providers import FalProvider, OpenAIVideosProvider, ReplicateProvider

KEY = "sk-bench"
RAW_OPENAI = "raw httpx2 + json"
RAW_REPLICATE = "raw httpx2 + json (replicate)"
RAW_FAL = "raw httpx2 + json (fal)"
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


async def main(
    url: str, requests: int, rounds: int, levels: list[int]
) -> dict[str, dict[int, list[float]]]:
    async with AsyncExitStack() as stack:
        raw = await stack.enter_async_context(httpx2.AsyncClient())
        created = await raw.post(
            f"{url}/v1/videos", json={"prompt": "bench"}, headers={"authorization": f"Bearer {KEY}"}
        )
        video_id = created.json()["id"]
        status_url = f"{url}/v1/videos/{video_id}"
        headers = {"authorization": f"Bearer {KEY}"}
        predicted = await raw.post(
            f"{url}/replicate/v1/models/google/veo-3.1/predictions",
            json={"input": {"prompt": "bench", "duration": 8}},
            headers={"authorization": f"Bearer {KEY}"},
        )
        prediction_id = predicted.json()["id"]
        prediction_url = f"{url}/replicate/v1/predictions/{prediction_id}"
        replicate = ReplicateProvider(KEY, base_url=f"{url}/replicate/v1")
        stack.push_async_callback(replicate.aclose)
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

        async def raw_prediction() -> object:
            response = await raw.get(prediction_url, headers=headers)
            response.raise_for_status()
            return json.loads(response.content)

        async def replicate_status() -> object:
            return await replicate.status(prediction_id)

        clients: dict[str, Call] = {
            RAW_OPENAI: raw_get,
            "OpenAIVideosProvider.status": ours_status,
            "openai videos.retrieve": sdk_retrieve,
            RAW_REPLICATE: raw_prediction,
            "ReplicateProvider.status": replicate_status,
            **await fal_clients(stack, raw, url),
        }
        for call in clients.values():
            await call()  # lazy imports, first-use model builds: paid before any timing
        samples: dict[str, dict[int, list[float]]] = {n: {c: [] for c in levels} for n in clients}
        for _ in range(rounds):
            for concurrency in levels:
                for name, call in clients.items():
                    samples[name][concurrency].append(
                        await cpu_per_request(call, requests, concurrency)
                    )
    return samples


async def fal_clients(stack: AsyncExitStack, raw: httpx2.AsyncClient, url: str) -> dict[str, Call]:
    import fal_client.client  # a test dependency, like openai and replicate

    headers = {"authorization": f"Key {KEY}"}
    created = await raw.post(f"{url}/fal/{FAL_MODEL}", json={"prompt": "bench"}, headers=headers)
    request_id = created.json()["request_id"]
    external_id = f"{FAL_MODEL}/requests/{request_id}"
    status_url = f"{url}/fal/{external_id}/status"
    await anyio.sleep(1.5)  # past the simulated queue: every poll answers IN_PROGRESS with logs
    fal = FalProvider(KEY, base_url=f"{url}/fal")
    stack.push_async_callback(fal.aclose)
    official = await fal_client.AsyncClient(key=KEY)._client  # the httpx client it builds
    stack.push_async_callback(official.aclose)
    handle = fal_client.client.AsyncRequestHandle(
        request_id=request_id,
        response_url=status_url.removesuffix("/status"),
        status_url=status_url,
        cancel_url=status_url.removesuffix("/status") + "/cancel",
        client=official,
    )

    async def raw_status() -> object:
        response = await raw.get(status_url, params={"logs": "1"}, headers=headers)
        response.raise_for_status()
        return json.loads(response.content)

    async def fal_status() -> object:
        return await fal.status(external_id)

    async def official_status() -> object:
        return await handle.status(with_logs=True)

    return {
        RAW_FAL: raw_status,
        "FalProvider.status": fal_status,
        "fal_client status": official_status,
    }


def _baseline(name: str) -> str:
    if "eplicate" in name:
        return RAW_REPLICATE
    return RAW_FAL if "fal" in name.lower() else RAW_OPENAI


def report(samples: dict[str, dict[int, list[float]]], levels: list[int]) -> None:
    print(
        "client CPU per status request, µs (median of rounds); ratio to raw httpx2 on that shape:"
        " median of the per-round ratios [min to max over rounds]"
    )
    print(f"{'client':32}" + "".join(f"{f'c={c}':>30}" for c in levels))
    for name, by_level in samples.items():
        raw = samples[_baseline(name)]
        cells = ""
        for c in levels:
            ratios = [ours / base for ours, base in zip(by_level[c], raw[c], strict=True)]
            spread = f"[{min(ratios):.2f} to {max(ratios):.2f}]"
            median = statistics.median(by_level[c])
            cells += f"{median:>8.0f} {statistics.median(ratios):>6.2f}x {spread:>14}"
        print(f"{name:32}{cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    # the official SDK marks the Videos API deprecated; its warning is not what we measure
    warnings.simplefilter("ignore", DeprecationWarning)
    with simulator_process(["--render-seconds=100000"], cpu=0) as base_url:
        outcome = anyio.run(main, base_url, args.requests, args.rounds, args.concurrency)
    report(outcome, args.concurrency)
