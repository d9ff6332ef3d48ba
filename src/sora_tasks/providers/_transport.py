"""The transport a provider's own client uses: httpx2's, with a cheap idle-connection check.

Before each request, and again when a response is closed, httpcore2's pool asks every idle
keep-alive connection whether the server has hung up on it. Its stock network stream answers
by rebuilding anyio's table of socket attributes, a ``getpeername`` system call included, just to
reach the socket. A poller keeps connections idle between polls (up to 100 per provider here),
so that check cost more than the rest of a poll. The stream below keeps the socket it was opened
on and asks ``poll(2)`` only.
"""

from __future__ import annotations

import select
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

__all__ = ["DEFAULT_LIMITS", "PollingTransport", "environment_proxies"]

_READABLE = "is_readable"


def environment_proxies() -> bool:
    """Whether the environment names a proxy (``HTTPS_PROXY``, ``ALL_PROXY``, …) for httpx2."""
    return any(scheme != "no" for scheme in urllib.request.getproxies())


DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
"""Every connection may stay open between polls (httpx2 keeps 20). Past 20 calls at once,
httpx2 would close the surplus as each response ends and open (with TLS, handshake) new ones
for the next polls; an idle connection still closes after 5 s."""


class _Socket(Protocol):
    # anyio hands out asyncio's TransportSocket, not a socket.socket; all we need is the fd
    def fileno(self) -> int: ...


class PollingTransport(httpx2.AsyncHTTPTransport):
    """``httpx2.AsyncHTTPTransport`` (no proxy) over :class:`_SocketKeepingBackend`.

    Requests, responses and errors are httpx2's own; only how the pool's connections reach their
    sockets differs.
    """

    def __init__(
        self,
        *,
        limits: httpx2.Limits | None = None,
        verify: ssl.SSLContext | str | bool = True,
        trust_env: bool = True,
    ) -> None:
        # not the parent's __init__: it would build a pool (and an SSL context) only to be replaced
        limits = limits or DEFAULT_LIMITS
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_SocketKeepingBackend(),
        )


class _SocketKeepingStream(AsyncNetworkStream):
    def __init__(self, stream: AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: _Socket | None = stream.get_extra_info("socket")
        self._poller: _Poller | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        return _SocketKeepingStream(
            await self._stream.start_tls(ssl_context, server_hostname, timeout)
        )

    def get_extra_info(self, info: str) -> Any:
        if info == _READABLE and self._socket is not None:
            if self._poller is None:
                self._poller = _Poller(self._socket)
            return self._poller.readable()
        return self._stream.get_extra_info(info)


class _SocketKeepingBackend(AsyncNetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _SocketKeepingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _SocketKeepingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Poller:
    """Whether a socket is readable, asked with one system call (the fd is registered once)."""

    def __init__(self, sock: _Socket) -> None:
        self._socket = sock
        self._fd = sock.fileno()
        self._poll = select.poll() if hasattr(select, "poll") else None  # not on Windows
        if self._poll is not None and self._fd >= 0:
            self._poll.register(self._fd, select.POLLIN)

    def readable(self) -> bool:
        # readable while idle means the server closed (or sent something unasked): either way
        # the connection cannot take a request. A closed socket (fd -1) counts as readable too,
        # and is checked first so that a number the system has since reused is never polled.
        if self._socket.fileno() != self._fd or self._fd < 0:
            return True
        if self._poll is None:
            return bool(select.select([self._fd], [], [], 0)[0])
        return bool(self._poll.poll(0))
