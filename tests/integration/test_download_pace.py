"""A body dripped or stalled by a raw 127.0.0.1 server fails on its pace; a slow real one not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from sora_tasks import Limits
from sora_tasks._download import save_stream
from sora_tasks._download_pace import Pace
from sora_tasks._exceptions import DownloadError
from sora_tasks.providers._base import ContentStream
from sora_tasks.providers._http import ProviderClient
from tests.raw_http import Request, Script, head, raw_server

pytestmark = pytest.mark.anyio

SIZE = 1024 * 1024


def drip(piece: int, every: float, total: int = SIZE) -> Script:
    """Announce ``total`` bytes, then send ``piece`` bytes every ``every`` seconds."""

    async def script(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", {"Content-Length": str(total)}))
        for start in range(0, total, piece):
            writer.write(b"x" * min(piece, total - start))
            await writer.drain()
            await asyncio.sleep(every)

    return script


@asynccontextmanager
async def opened(script: Script) -> AsyncIterator[ContentStream]:
    async with raw_server(script) as server:
        client = ProviderClient(provider="raw", base_url=server.url, api_key=SecretStr("sk"))
        try:
            async with client.stream(f"{server.url}/video.mp4") as stream:
                yield stream
        finally:
            await client.aclose()


async def test_a_dripped_body_fails_on_the_throughput_rule_within_its_window(
    tmp_path: Path,
) -> None:
    target = tmp_path / "video.mp4"
    async with opened(drip(16, 0.02)) as stream:
        started = anyio.current_time()
        with pytest.raises(DownloadError, match=r"slower than 1,024 B/s for 1 s \(\d+ B/s\)"):
            await save_stream(
                stream, target, max_bytes=SIZE, min_bytes_per_second=1024, speed_window=1.0
            )
        elapsed = anyio.current_time() - started
    assert 1.0 <= elapsed < 3.0
    assert list(tmp_path.iterdir()) == []


async def test_a_body_that_stops_fails_on_the_stall_timeout(tmp_path: Path) -> None:
    async def stop_after_headers(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", {"Content-Length": str(SIZE)}) + b"x" * 1000)
        await writer.drain()
        await asyncio.sleep(60)

    async with opened(stop_after_headers) as stream:
        started = anyio.current_time()
        with pytest.raises(DownloadError, match=r"stalled: no bytes arrived for 0.5 s"):
            await save_stream(
                stream,
                tmp_path / "video.mp4",
                max_bytes=SIZE,
                min_bytes_per_second=0,
                stall_timeout=0.5,
            )
        elapsed = anyio.current_time() - started
    assert 0.5 <= elapsed < 2.5
    assert list(tmp_path.iterdir()) == []


async def test_a_slow_but_steady_body_is_saved(tmp_path: Path) -> None:
    # 4 KiB every 20 ms is about 200 KiB/s, for about 1.3 s: several windows of 0.3 s
    total = 256 * 1024
    async with opened(drip(4096, 0.02, total)) as stream:
        saved = await save_stream(
            stream,
            tmp_path / "video.mp4",
            max_bytes=total,
            min_bytes_per_second=100 * 1024,
            speed_window=0.3,
            stall_timeout=0.5,
        )
    assert saved.byte_size == total


def test_the_default_pace_fails_a_drip_in_tens_of_seconds_but_not_a_slow_link() -> None:
    pace = Pace()
    assert pace.window <= 30 and pace.stall_timeout <= 60
    assert 10 < pace.min_bytes_per_second < 100 * 1024
    limits = Limits()
    assert (
        limits.download_min_bytes_per_second,
        limits.download_speed_window,
        limits.download_stall_timeout,
    ) == (pace.min_bytes_per_second, pace.window, pace.stall_timeout)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_bytes_per_second": -1}, "min_bytes_per_second must not be negative"),
        ({"speed_window": 0}, "window and stall_timeout must be positive"),
        ({"stall_timeout": -2.0}, "window and stall_timeout must be positive"),
    ],
)
async def test_a_bad_pace_is_refused_before_anything_is_written(
    tmp_path: Path, options: dict[str, float], message: str
) -> None:
    class Untouched(ContentStream):
        def aiter_bytes(self) -> AsyncIterator[bytes]:
            raise AssertionError("the body was read")

    with pytest.raises(ValueError, match=message):
        await save_stream(Untouched(), tmp_path / "v.mp4", max_bytes=1, **options)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
