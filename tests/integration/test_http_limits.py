"""Provider calls against misbehaving servers on 127.0.0.1: every call ends, every body is bounded.

The servers here are raw asyncio sockets, because the misbehaviour is in the bytes: a body dripped
one byte a second, a body of 400 MB (announced, or chunked without end), JSON nested 100,000 deep,
a listener whose accept queue is full so a connect never completes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import anyio
import httpx2
import pytest

from sora_tasks import (
    ProviderResponseError,
    ProviderTransportError,
    SubmissionUncertainError,
    TaskManager,
    TaskStatus,
)
from sora_tasks._deadlines import bounded
from sora_tasks.providers import OpenAIVideosProvider, SubmitRequest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "sk-limits-test-key"
LIMIT = 1024 * 1024
HUGE = 400 * 1024 * 1024
CHUNK = 64 * 1024
# what the kernel may hold between the two ends on top of what the client read: the server's
# send buffer and the client's receive buffer, both set small below, and one read of 64 KiB
IN_FLIGHT = 256 * 1024
JOB = {"id": "video_1", "object": "video", "status": "queued", "progress": 0}


@dataclass
class Server:
    """A raw HTTP/1.1 server: ``routes`` maps ``"METHOD /path"`` to a handler."""

    routes: dict[str, Handler]
    url: str = ""
    body_bytes_sent: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def send_body(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.body_bytes_sent += len(data)


Handler = Callable[[Server, asyncio.StreamWriter], Awaitable[None]]


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(payload: bytes, status: str = "200 OK") -> Handler:
    async def handle(server: Server, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, Content_Length=str(len(payload))))
        await server.send_body(writer, payload)

    return handle


async def drip(server: Server, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then the body a byte a second: each read is well within its timeout."""
    writer.write(head(Content_Length="1000"))
    await writer.drain()
    for byte in json.dumps(JOB).encode().ljust(1000):
        await server.send_body(writer, bytes([byte]))
        await asyncio.sleep(1)


async def huge_declared(server: Server, writer: asyncio.StreamWriter) -> None:
    writer.write(head(Content_Length=str(HUGE)))
    await _flood(server, writer, chunked=False)


async def huge_chunked(server: Server, writer: asyncio.StreamWriter) -> None:
    writer.write(head(Transfer_Encoding="chunked"))
    await _flood(server, writer, chunked=True)


async def _flood(server: Server, writer: asyncio.StreamWriter, *, chunked: bool) -> None:
    block = b"[" * CHUNK
    frame = f"{CHUNK:x}\r\n".encode() + block + b"\r\n" if chunked else block
    for _ in range(HUGE // CHUNK):
        await server.send_body(writer, frame)


@asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[Server]:
    state = Server(routes)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        state.handlers.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = request.decode("latin-1").split(" ", 2)
            for line in request.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    await reader.readexactly(int(value))
            await state.routes[f"{method} {path}"](state, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what these tests provoke
        except asyncio.CancelledError:
            # the test is over (see serve's exit); a connection task that ends cancelled is
            # logged by asyncio as an error, so this one ends quietly instead
            pass
        finally:
            writer.close()
            state.handlers.discard(task)

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    for sock in server.sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        for task in list(state.handlers):
            task.cancel()
        await asyncio.gather(*state.handlers)
        await server.wait_closed()


@contextmanager
def full_listener() -> Iterator[str]:
    """A listener whose accept queue is full: a new connect waits in SYN_SENT, never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(16):
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            held.append(probe)
        else:
            pytest.fail("the accept queue never filled up")
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in held:
            sock.close()
        listener.close()


def provider(url: str, **options: object) -> OpenAIVideosProvider:
    return OpenAIVideosProvider(api_key=KEY, base_url=f"{url}/v1", **options)  # type: ignore[arg-type]


def small_buffer_client() -> httpx2.AsyncClient:
    # the receive buffer pinned small, so the server's count of bytes sent tracks what was read
    options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)]
    return httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(socket_options=options))


def request() -> SubmitRequest:
    return SubmitRequest(
        task_id="video_00000000-0000-4000-8000-000000000000",
        idempotency_key="attempt-1",
        prompt="a calico cat",
        model="sora-2",
        size="1280x720",
        seconds=4,
    )


# --- one total deadline per call ---------------------------------------------------------------


async def test_a_dripped_status_body_fails_at_the_call_timeout() -> None:
    async with serve({"GET /v1/videos/video_1": drip}) as server:
        adapter = provider(server.url, call_timeout=2)
        started = anyio.current_time()
        with pytest.raises(ProviderTransportError, match=r"took longer than 2 s \(call_timeout\)"):
            await adapter.status("video_1")
        elapsed = anyio.current_time() - started
        await adapter.aclose()
    assert 2 <= elapsed < 3.5
    assert 1 <= server.body_bytes_sent <= 4


async def test_a_dripped_create_is_uncertain_and_names_the_limit() -> None:
    async with serve({"POST /v1/videos": drip}) as server:
        adapter = provider(server.url, call_timeout=2)
        started = anyio.current_time()
        with pytest.raises(SubmissionUncertainError, match="took longer than 2 s") as caught:
            await adapter.submit(request())
        elapsed = anyio.current_time() - started
        await adapter.aclose()
    assert elapsed < 3.5
    assert "may have started" in str(caught.value)


async def test_the_callers_bound_ends_a_call_before_its_own_timeout() -> None:
    async with serve({"GET /v1/videos/video_1": drip}) as server:
        adapter = provider(server.url)  # call_timeout 120 s
        started = anyio.current_time()
        with bounded(1.5), pytest.raises(ProviderTransportError, match="the caller's bound"):
            await adapter.status("video_1")
        elapsed = anyio.current_time() - started
        await adapter.aclose()
    assert elapsed < 3


async def test_a_create_still_connecting_at_the_deadline_counts_as_not_sent() -> None:
    with full_listener() as url:
        adapter = provider(url, call_timeout=1, max_retries=0)
        started = anyio.current_time()
        with pytest.raises(ProviderTransportError, match="took longer than 1 s") as caught:
            await adapter.submit(request())
        elapsed = anyio.current_time() - started
        await adapter.aclose()
    assert not isinstance(caught.value, SubmissionUncertainError)
    assert elapsed < 2.5  # not the 5 s connect timeout


# --- bodies are read as streams, under a size limit --------------------------------------------


@pytest.mark.parametrize("flood", [huge_declared, huge_chunked], ids=["declared", "chunked"])
async def test_a_huge_status_body_is_refused_before_it_is_held(flood: Handler) -> None:
    async with serve({"GET /v1/videos/video_1": flood}) as server:
        adapter = provider(server.url, client=small_buffer_client())
        tracemalloc.start()
        started = anyio.current_time()
        try:
            with pytest.raises(ProviderResponseError, match="1,048,576-byte limit") as caught:
                await adapter.status("video_1")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = anyio.current_time() - started
        await adapter.aclose()
    assert caught.value.limit == LIMIT
    assert elapsed < 5
    assert server.body_bytes_sent < LIMIT + IN_FLIGHT
    assert peak < 4 * LIMIT


async def test_a_huge_create_body_is_uncertain() -> None:
    async with serve({"POST /v1/videos": huge_chunked}) as server:
        adapter = provider(server.url, client=small_buffer_client())
        with pytest.raises(SubmissionUncertainError, match="1,048,576-byte limit"):
            await adapter.submit(request())
        await adapter.aclose()
    assert server.body_bytes_sent < LIMIT + IN_FLIGHT


async def test_max_response_bytes_is_configurable() -> None:
    body = json.dumps({**JOB, "padding": "x" * 2000}).encode()
    async with serve({"GET /v1/videos/video_1": answer(body)}) as server:
        adapter = provider(server.url, max_response_bytes=1000)
        with pytest.raises(ProviderResponseError, match="1,000-byte limit"):
            await adapter.status("video_1")
        await adapter.aclose()


# --- JSON nesting ------------------------------------------------------------------------------


async def test_deeply_nested_status_json_is_a_failed_poll_not_a_recursion_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    routes = {
        "POST /v1/videos": answer(json.dumps(JOB).encode()),
        "GET /v1/videos/video_1": answer(deep),
    }
    async with serve(routes) as server:
        adapter = provider(server.url)
        with pytest.raises(ProviderResponseError, match="deeper than 64 levels") as caught:
            await adapter.status("video_1")
        assert caught.value.limit == 64
        async with TaskManager(providers={"openai": adapter}, poll=False) as manager:
            task = await manager.create("a calico cat", size="1280x720")
            assert task.external_id == "video_1"
            task = await manager.refresh(task.id)
    assert task.status is TaskStatus.QUEUED
    assert task.poll_failures == 1
