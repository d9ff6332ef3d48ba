"""The provider client's own transport, over real sockets on 127.0.0.1.

It differs from httpx2's in one thing, how an idle connection learns that the server hung up, so
that is what these tests exercise: a connection the server closed is never used again, a live
one is reused, and a proxy named by the environment is still honoured.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import httpcore2
import httpx2
import pytest
from anyio.abc import SocketStream

from sora_tasks.providers._http import _default_client
from sora_tasks.providers._transport import PollingTransport, _SocketKeepingBackend

pytestmark = pytest.mark.anyio

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}"


async def _read_request(stream: SocketStream) -> bool:
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
    return True


@dataclass
class Server:
    """A keep-alive HTTP server: requests answered per connection, in the order accepted."""

    url: str
    served: list[int]
    hang_up: Callable[[], None]
    accepted: anyio.Event


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A keep-alive HTTP server on 127.0.0.1; ``hang_up()`` closes every connection it has open."""
    served: list[int] = []
    open_streams: set[SocketStream] = set()
    accepted = anyio.Event()

    async def handle(stream: SocketStream) -> None:
        open_streams.add(stream)
        served.append(0)
        accepted.set()
        index = len(served) - 1
        async with stream:
            while await _read_request(stream):
                await stream.send(RESPONSE)
                served[index] += 1
        open_streams.discard(stream)

    def hang_up() -> None:
        for stream in list(open_streams):
            # a FIN from the server, as a keep-alive timeout on its side would send
            stream.extra(anyio.abc.SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield Server(f"http://127.0.0.1:{port}", served, hang_up, accepted)
        group.cancel_scope.cancel()


async def test_a_live_idle_connection_is_reused(
    server: Server,
) -> None:
    url, served = server.url, server.served
    async with httpx2.AsyncClient(transport=PollingTransport()) as client:
        for _ in range(3):
            assert (await client.get(url)).json() == {}
    assert served == [3]


async def test_a_connection_the_server_closed_is_not_used_again(
    server: Server,
) -> None:
    url, served, hang_up = server.url, server.served, server.hang_up
    async with httpx2.AsyncClient(transport=PollingTransport()) as client:
        assert (await client.get(url)).status_code == 200
        hang_up()  # on loopback the FIN is in our socket before shutdown() returns
        # the pool's readability check must see it: sent on the old connection, this would fail
        assert (await client.get(url)).status_code == 200
    assert served == [1, 1]


async def test_the_stream_reports_readability_from_its_own_socket(
    server: Server,
) -> None:
    url, hang_up = server.url, server.hang_up
    port = httpx2.URL(url).port
    assert port is not None
    stream = await _SocketKeepingBackend().connect_tcp("127.0.0.1", port)
    try:
        assert stream.get_extra_info("socket").fileno() >= 0
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        assert stream.get_extra_info("is_readable") is False
        with anyio.fail_after(5):
            await server.accepted.wait()
        hang_up()  # on loopback the FIN is in our socket before shutdown() returns
        assert stream.get_extra_info("is_readable") is True
    finally:
        await stream.aclose()
    assert stream.get_extra_info("is_readable") is True  # a closed socket is never reused


async def test_the_default_client_uses_it_without_a_proxy(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    url, served = server.url, server.served
    async with _default_client(5.0) as client:
        assert isinstance(client._transport, PollingTransport)
        assert (await client.get(url)).status_code == 200
    assert served == [1]


async def test_a_proxy_from_the_environment_is_still_honoured(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url, served = server.url, server.served
    async with _default_client(5.0) as client:
        # the request goes to the (absent) proxy, not to the server
        with pytest.raises((httpx2.ProxyError, httpx2.ConnectError)):
            await client.get(url)
    assert served == []


def test_the_pool_is_httpcore2s_own() -> None:
    # PollingTransport fills in httpx2's transport by hand; this fails loudly if httpx2 stops
    # sending through `_pool`
    transport = PollingTransport(limits=httpx2.Limits(max_connections=3))
    assert isinstance(transport._pool, httpcore2.AsyncConnectionPool)
    assert "_pool" in httpx2.AsyncHTTPTransport.handle_async_request.__code__.co_names
