"""Downloads cut off half-way, served by a raw 127.0.0.1 server: resumed, restarted or refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from sora_tasks._download import SavedFile, save_stream
from sora_tasks._exceptions import DownloadError
from sora_tasks.providers import Backoff
from sora_tasks.providers._http import ProviderClient
from tests.raw_http import RawServer, Request, Script, head, raw_server, reset

pytestmark = pytest.mark.anyio

BODY = os.urandom(4 * 1024 * 1024 + 123)
CUT = len(BODY) // 2
ETAG = '"v1-4mib"'


async def send_body(writer: asyncio.StreamWriter, data: bytes) -> None:
    for start in range(0, len(data), 64 * 1024):
        writer.write(data[start : start + 64 * 1024])
        await writer.drain()


async def send_cut(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
    """Announce the whole body, send half of it, then reset the connection."""
    writer.write(head("200 OK", {"Content-Length": str(len(BODY)), **headers}))
    await send_body(writer, BODY[:CUT])
    reset(writer)


async def send_whole(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
    writer.write(head("200 OK", {"Content-Length": str(len(BODY)), **headers}))
    await send_body(writer, BODY)


async def send_range(writer: asyncio.StreamWriter, start: int, *, total: int = len(BODY)) -> None:
    part = BODY[start:]
    content_range = f"bytes {start}-{start + len(part) - 1}/{total}"
    headers = {"Content-Length": str(len(part)), "Content-Range": content_range, "ETag": ETAG}
    writer.write(head("206 Partial Content", headers))
    await send_body(writer, part)


def range_start(request: Request) -> int:
    value = request.headers["range"]
    assert value.startswith("bytes=") and value.endswith("-"), value
    return int(value.removeprefix("bytes=").removesuffix("-"))


def first_cut_then(answer: Script, first_headers: dict[str, str]) -> Script:
    """A script whose first answer breaks off half-way and whose later answers are ``answer``."""
    served = 0

    async def script(request: Request, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        if served == 1:
            await send_cut(writer, first_headers)
        else:
            await answer(request, writer)

    return script


@asynccontextmanager
async def downloading(script: Script) -> AsyncIterator[tuple[RawServer, ProviderClient]]:
    async with raw_server(script) as server:
        client = ProviderClient(
            provider="raw",
            base_url=server.url,
            api_key=SecretStr("sk-raw"),
            backoff=Backoff(initial=0.01, maximum=0.05),
        )
        try:
            yield server, client
        finally:
            await client.aclose()


async def download(client: ProviderClient, server: RawServer, target: Path) -> SavedFile:
    async with client.stream(f"{server.url}/video.mp4") as stream:
        return await save_stream(stream, target, max_bytes=1 << 30)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_reset_half_way_is_resumed_with_one_range_request(tmp_path: Path) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_range(writer, range_start(request))

    ranges = {"Accept-Ranges": "bytes", "ETag": ETAG}
    async with downloading(first_cut_then(answer, ranges)) as (server, client):
        saved = await download(client, server, tmp_path / "video.mp4")
    assert saved.sha256 == sha256(BODY)
    assert (tmp_path / "video.mp4").read_bytes() == BODY
    first, resumed = server.requests
    assert "range" not in first.headers
    assert 0 < range_start(resumed) <= CUT
    assert resumed.headers["if-range"] == ETAG
    assert resumed.headers["authorization"] == "Bearer sk-raw"


async def test_a_resume_without_an_etag_sends_last_modified_as_if_range(tmp_path: Path) -> None:
    stamp = "Mon, 30 Nov 2026 03:00:00 GMT"

    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_range(writer, range_start(request))

    ranges = {"Accept-Ranges": "bytes", "Last-Modified": stamp}
    async with downloading(first_cut_then(answer, ranges)) as (server, client):
        await download(client, server, tmp_path / "video.mp4")
    assert server.requests[1].headers["if-range"] == stamp
    assert (tmp_path / "video.mp4").read_bytes() == BODY


async def test_a_server_without_ranges_is_downloaded_again_from_zero(tmp_path: Path) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_whole(writer, {})

    async with downloading(first_cut_then(answer, {})) as (server, client):
        saved = await download(client, server, tmp_path / "video.mp4")
    assert [r.headers.get("range") for r in server.requests] == [None, None]
    assert saved.sha256 == sha256(BODY)
    assert saved.byte_size == len(BODY)
    assert (tmp_path / "video.mp4").read_bytes() == BODY


async def test_a_whole_answer_to_a_range_request_starts_the_file_over(tmp_path: Path) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_whole(writer, {"Accept-Ranges": "bytes", "ETag": '"v2"'})

    ranges = {"Accept-Ranges": "bytes", "ETag": ETAG}
    async with downloading(first_cut_then(answer, ranges)) as (server, client):
        saved = await download(client, server, tmp_path / "video.mp4")
    assert "range" in server.requests[1].headers
    assert saved.sha256 == sha256(BODY)
    assert (tmp_path / "video.mp4").read_bytes() == BODY


@pytest.mark.parametrize(
    "misfit",
    [
        pytest.param(lambda start: send_range_at(start + 100), id="starts-later"),
        pytest.param(lambda start: send_range_at(start - 100), id="starts-earlier"),
        pytest.param(lambda start: send_range_at(start, total=len(BODY) + 1), id="other-total"),
    ],
)
async def test_a_partial_answer_that_does_not_fit_is_refused_and_the_file_restarted(
    tmp_path: Path, misfit: Callable[[int], Script]
) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        if "range" in request.headers:
            await misfit(range_start(request))(request, writer)
        else:
            await send_whole(writer, {"Accept-Ranges": "bytes", "ETag": ETAG})

    ranges = {"Accept-Ranges": "bytes", "ETag": ETAG}
    async with downloading(first_cut_then(answer, ranges)) as (server, client):
        saved = await download(client, server, tmp_path / "video.mp4")
    assert [("range" in r.headers) for r in server.requests] == [False, True, False]
    assert saved.sha256 == sha256(BODY)
    assert (tmp_path / "video.mp4").read_bytes() == BODY


def send_range_at(start: int, *, total: int = len(BODY)) -> Script:
    async def script(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_range(writer, start, total=total)

    return script


async def test_a_body_cut_on_every_try_fails_after_the_retry_budget(tmp_path: Path) -> None:
    async def always_cut(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_cut(writer, {"Accept-Ranges": "bytes"})

    target = tmp_path / "video.mp4"
    target.write_bytes(b"the earlier video")
    async with downloading(always_cut) as (server, client):
        with pytest.raises(DownloadError, match="broke off"):
            await download(client, server, target)
    assert len(server.requests) == 4
    assert target.read_bytes() == b"the earlier video"
    assert list(tmp_path.iterdir()) == [target]


def md5_header(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param(lambda digest: {"Content-MD5": digest}, id="content-md5"),
        pytest.param(lambda digest: {"x-goog-hash": f"crc32c=AAAAAA==,md5={digest}"}, id="goog"),
    ],
)
async def test_a_checksum_mismatch_leaves_no_file_and_the_earlier_one_untouched(
    tmp_path: Path, declared: Callable[[str], dict[str, str]]
) -> None:
    async def wrong(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_whole(writer, declared(md5_header(b"some other video")))

    target = tmp_path / "video.mp4"
    target.write_bytes(b"the earlier video")
    async with downloading(wrong) as (server, client):
        with pytest.raises(DownloadError, match="MD5"):
            await download(client, server, target)
    assert target.read_bytes() == b"the earlier video"
    assert list(tmp_path.iterdir()) == [target]


async def test_a_matching_checksum_survives_a_resume(tmp_path: Path) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_range(writer, range_start(request))

    headers = {"Accept-Ranges": "bytes", "ETag": ETAG, "Content-MD5": md5_header(BODY)}
    async with downloading(first_cut_then(answer, headers)) as (server, client):
        stream_md5 = None
        async with client.stream(f"{server.url}/video.mp4") as stream:
            await save_stream(stream, tmp_path / "video.mp4", max_bytes=1 << 30)
            stream_md5 = stream.md5
    assert stream_md5 == hashlib.md5(BODY, usedforsecurity=False).digest()
    assert (tmp_path / "video.mp4").read_bytes() == BODY


async def test_a_resume_through_a_redirect_keeps_credentials_off_the_foreign_host(
    tmp_path: Path,
) -> None:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await send_range(writer, range_start(request))

    ranges = {"Accept-Ranges": "bytes", "ETag": ETAG}
    async with raw_server(first_cut_then(answer, ranges)) as cdn:

        async def redirect(request: Request, writer: asyncio.StreamWriter) -> None:
            location = f"{cdn.url}/signed.mp4?sig=abc"
            writer.write(head("302 Found", {"Location": location, "Content-Length": "0"}))
            await writer.drain()

        async with downloading(redirect) as (api, client):
            saved = await download(client, api, tmp_path / "video.mp4")
    assert saved.sha256 == sha256(BODY)
    assert [r.headers["authorization"] for r in api.requests] == ["Bearer sk-raw"] * 2
    assert [("authorization" in r.headers) for r in cdn.requests] == [False, False]
    assert 0 < range_start(cdn.requests[1]) <= CUT
