"""A raw asyncio HTTP/1.1 server on 127.0.0.1 for downloads that misbehave on purpose.

Each request is handed to a script (``async (request, writer) -> None``) that writes whatever
bytes it likes: a truncated body, a reset, a drip, a wrong ``Content-Range``. Every request seen
is recorded, in order, so a test can assert what the client asked for.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """What the client sent: method, path (with query) and headers, names lower-cased."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """The running server: its base URL and the requests it saw."""

    url: str
    requests: list[Request] = field(default_factory=list)


def head(status: str, headers: dict[str, str]) -> bytes:
    """A response's status line and headers, ready to write."""
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset (what a middlebox or a crashed server does)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[RawServer]:
    """Serve ``script`` on an ephemeral port of 127.0.0.1 until the block ends."""
    server_state = RawServer(url="")
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        assert current is not None
        handlers.add(current)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Request(method, path, headers)
                server_state.requests.append(request)
                await script(request, writer)
                if writer.transport.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.transport.abort()
            handlers.discard(current)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state.url = f"http://127.0.0.1:{port}"
    try:
        yield server_state
    finally:
        server.close()
        # a dripping script may still be asleep when the client has given up
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
