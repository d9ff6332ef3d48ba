"""Download a large body from the simulator: our path vs raw httpx2 streaming to a file.

Our path is ``OpenAIVideosProvider.open_content`` feeding ``sora_tasks._download.save_stream``
(temporary file, SHA-256, length check, fsync, atomic rename), as ``TaskManager.download`` uses it.
The baseline streams the same URL with ``httpx2.AsyncClient.stream`` into a plain file. The
simulator serves a synthetic body from a separate process; every download runs in a fresh child
process so its peak RSS (``VmHWM``) is its own. Files go to ``--dir`` (tmpfs by default, so the
disk is not what is measured).

    .venv/bin/python benchmarks/bench_download.py --size-mib 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
from _simulator_process import simulator_process

from sora_tasks._download import save_stream
from sora_tasks.providers import OpenAIVideosProvider

KEY = "sk-bench"
VARIANTS = (
    "raw httpx2 stream to file",
    "open_content + save_stream",
    "... with checksum=False",
)


def memory_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


async def download_raw(url: str, video_id: str, target: Path) -> int:
    async with httpx2.AsyncClient(timeout=60) as client:
        headers = {"authorization": f"Bearer {KEY}"}
        async with client.stream(
            "GET", f"{url}/v1/videos/{video_id}/content", headers=headers
        ) as r:
            r.raise_for_status()
            written = 0
            with target.open("wb") as handle:
                async for chunk in r.aiter_bytes():
                    written += handle.write(chunk)
    return written


async def download_ours(url: str, video_id: str, target: Path, checksum: bool = True) -> int:
    provider = OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1")
    try:
        async with provider.open_content(video_id) as stream:
            saved = await save_stream(stream, target, max_bytes=1 << 40, checksum=checksum)
    finally:
        await provider.aclose()
    return saved.byte_size


def worker(variant: str, url: str, video_id: str, target: Path) -> None:
    """Run one download in this (fresh) process and print its measurements as JSON."""
    before = memory_kib("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    if variant == VARIANTS[0]:
        size = anyio.run(download_raw, url, video_id, target)
    else:
        size = anyio.run(download_ours, url, video_id, target, variant == VARIANTS[1])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    growth = memory_kib("VmHWM") - before
    print(json.dumps({"bytes": size, "seconds": seconds, "cpu": cpu, "rss_growth_kib": growth}))


def measure(variant: str, url: str, video_id: str, folder: Path) -> dict[str, float]:
    target = folder / "download.bin"
    command = [sys.executable, __file__, "--worker", variant, url, video_id, str(target)]
    try:
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        target.unlink(missing_ok=True)
    result: dict[str, float] = json.loads(output)
    return result


def main(size: int, rounds: int, folder: Path) -> None:
    with simulator_process(
        [f"--content-size={size}", "--render-seconds=0", "--queue-seconds=0", f"--api-key={KEY}"],
        cpu=0,
    ) as url:
        created = httpx2.post(
            f"{url}/v1/videos", json={"prompt": "bench"}, headers={"authorization": f"Bearer {KEY}"}
        )
        video_id = created.json()["id"]
        runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                run = measure(variant, url, video_id, folder)
                if run["bytes"] != size:
                    raise RuntimeError(f"{variant} wrote {run['bytes']} of {size} bytes")
                runs[variant].append(run)
    print(f"{size / 2**20:.0f} MiB from the loopback simulator, {rounds} rounds, into {folder}")
    print(
        f"{'path':30}{'MiB/s (median)':>16}{'ratio':>8}{'ratio, rounds':>16}"
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
            f"{variant:30}{speed / 2**20:>16.0f}{speed / baseline:>7.2f}x{spread:>16}"
            f"{cpu:>14.2f}{growth:>20.1f} MiB"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    default_dir = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    parser.add_argument("--dir", type=Path, default=Path(default_dir))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        main(args.size_mib * 2**20, args.rounds, Path(scratch))
