"""Archive a large video from the simulator into a local S3: our path vs ``obstore.put``.

Our path is ``OpenAIVideosProvider.open_content`` feeding ``sora_tasks.archive.archive_stream``
(a streamed multipart upload with SHA-256, length check and a size check after), as the engine's
content phase uses it. The baseline is ``obstore.put_async`` of the same number of bytes already
in memory (no download, no hashing). The S3 API is moto's server and the simulator serves a
synthetic body, each in its own process; every upload runs in a fresh child process so its peak
RSS (``VmHWM``) is its own, measured from just before the upload starts (after the baseline's
buffer is allocated).

    .venv/bin/python benchmarks/bench_archive.py --size-mib 1024 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import httpx2
import obstore
from _simulator_process import simulator_process

from sora_tasks._download_pace import Pace
from sora_tasks.archive import ObstoreArchive, archive_stream, open_archive
from sora_tasks.providers import OpenAIVideosProvider

KEY = "sk-bench"
BUCKET = "bench-archive"
VARIANTS = ("obstore.put from memory", "open_content + archive_stream")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench-key-id",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-access-key",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def memory_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Start ``VmHWM`` over from the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


async def put_from_memory(size: int) -> tuple[int, float, int]:
    archive = open_archive(f"s3://{BUCKET}/bench")
    data = bytearray(size)  # allocated (and touched) before the clock and the memory baseline
    data[::4096] = b"\1" * len(data[::4096])
    reset_peak()
    before = memory_kib("VmRSS")
    started = time.perf_counter()
    await obstore.put_async(archive.store, "baseline.bin", memoryview(data))
    seconds = time.perf_counter() - started
    return size, seconds, memory_kib("VmHWM") - before


async def archive_ours(url: str, video_id: str) -> tuple[int, float, int]:
    archive = open_archive(f"s3://{BUCKET}/bench")
    assert isinstance(archive, ObstoreArchive)
    provider = OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1")
    reset_peak()
    before = memory_kib("VmRSS")
    started = time.perf_counter()
    try:
        async with provider.open_content(video_id) as stream:
            stored = await archive_stream(
                archive, "ours.mp4", stream, max_bytes=1 << 40, pace=Pace()
            )
    finally:
        await provider.aclose()
    seconds = time.perf_counter() - started
    return stored.byte_size, seconds, memory_kib("VmHWM") - before


def worker(variant: str, url: str, video_id: str, size: int) -> None:
    """Run one upload in this (fresh) process and print its measurements as JSON."""
    cpu = time.process_time()
    if variant == VARIANTS[0]:
        written, seconds, growth = anyio.run(put_from_memory, size)
    else:
        written, seconds, growth = anyio.run(archive_ours, url, video_id)
    cpu = time.process_time() - cpu
    print(json.dumps({"bytes": written, "seconds": seconds, "cpu": cpu, "rss_growth_kib": growth}))


def measure(
    variant: str, url: str, video_id: str, size: int, env: dict[str, str]
) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", variant, url, video_id, str(size)]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


@contextmanager
def moto_process() -> Iterator[str]:
    """moto's S3 server in its own process on a free port of 127.0.0.1; yield its endpoint."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.put(f"{endpoint}/{BUCKET}").raise_for_status()
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start within 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(size: int, rounds: int) -> None:
    with (
        moto_process() as endpoint,
        simulator_process(
            [
                f"--content-size={size}",
                "--render-seconds=0",
                "--queue-seconds=0",
                f"--api-key={KEY}",
            ]
        ) as url,
    ):
        env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
        created = httpx2.post(
            f"{url}/v1/videos", json={"prompt": "bench"}, headers={"authorization": f"Bearer {KEY}"}
        )
        video_id = created.json()["id"]
        runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                run = measure(variant, url, video_id, size, env)
                if run["bytes"] != size:
                    raise RuntimeError(f"{variant} stored {run['bytes']} of {size} bytes")
                runs[variant].append(run)
    print(f"{size / 2**20:.0f} MiB into moto's S3 server on 127.0.0.1, {rounds} rounds")
    print(
        f"{'path':32}{'MiB/s (median)':>16}{'ratio':>8}{'ratio, rounds':>16}"
        f"{'client CPU s':>14}{'peak RSS growth (max)':>24}"
    )
    baseline = statistics.median(size / r["seconds"] for r in runs[VARIANTS[0]])
    for variant, results in runs.items():
        speed = statistics.median(size / r["seconds"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        growth = max(r["rss_growth_kib"] for r in results) / 1024
        # each round ran every path in turn: a round's ratio compares neighbours in time
        ratios = [
            base["seconds"] / r["seconds"]
            for r, base in zip(results, runs[VARIANTS[0]], strict=True)
        ]
        spread = f"{min(ratios):.2f} to {max(ratios):.2f}x"
        print(
            f"{variant:32}{speed / 2**20:>16.0f}{speed / baseline:>7.2f}x{spread:>16}"
            f"{cpu:>14.2f}{growth:>20.1f} MiB"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    main(args.size_mib * 2**20, args.rounds)
