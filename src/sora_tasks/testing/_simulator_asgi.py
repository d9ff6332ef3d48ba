"""Raw ASGI plumbing for the simulator: read a request whole, send a reply, or cut it off.

No web framework: the core package must not depend on one, and the faults need byte-level control
over what reaches the wire.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "ASGIApp",
    "HTTPFault",
    "Message",
    "Receive",
    "Reply",
    "Request",
    "Scope",
    "Send",
    "SimulatedDisconnect",
    "read_request",
    "send_reply",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SimulatedDisconnect(Exception):
    """Raised on purpose mid-response so the server closes the connection (an injected fault)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP answer: status, headers and a body given as chunks of known total length."""

    status: int
    headers: list[tuple[str, str]]
    chunks: Iterable[bytes] = field(repr=False)
    length: int

    @classmethod
    def json(cls, status: int, payload: object, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        """A JSON answer."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json"), *headers], (body,), len(body))

    @classmethod
    def redirect(cls, location: str) -> Reply:
        """A 302 to ``location``."""
        return cls(302, [("location", location)], (), 0)


class HTTPFault(Exception):
    """Raised inside a handler to answer with an error instead."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request read whole; header names lower case, a repeated one keeps its last value."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    scheme: str
    server: tuple[str, int] | None

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case (empty when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def origin(self, host: str | None = None) -> str:
        """``scheme://host:port`` as the client addressed us; ``host`` swaps the host name only."""
        authority = self.headers.get("host")
        if authority is None and self.server is not None:
            authority = f"{self.server[0]}:{self.server[1]}"
        authority = authority or "localhost"
        if host is not None:
            _, colon, port = authority.rpartition(":")
            authority = f"{host}:{port}" if colon and port.isdigit() else host
        return f"{self.scheme}://{authority}"


async def read_request(scope: Scope, receive: Receive, *, max_body: int) -> Request:
    """Read the request line, headers and the whole body (at most ``max_body`` bytes)."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > max_body:
            raise HTTPFault(Reply.json(413, {"error": {"message": "request body too large"}}))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    server = scope.get("server")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=query,
        headers=headers,
        body=b"".join(chunks),
        scheme=scope.get("scheme", "http"),
        server=(server[0], server[1]) if server else None,
    )


async def send_reply(send: Send, reply: Reply, *, cut_at: int | None = None) -> None:
    """Send ``reply``; with ``cut_at``, stop after that many body bytes and drop the connection.

    A cut announces the full ``Content-Length`` anyway, so the client sees a short body rather than
    a complete one, then raises :class:`SimulatedDisconnect` for the server to close the socket.
    """
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
    headers.append((b"content-length", str(reply.length).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    sent = 0
    for chunk in reply.chunks:
        if cut_at is not None and sent + len(chunk) >= cut_at:
            if cut_at > sent:
                await send(
                    {
                        "type": "http.response.body",
                        "body": chunk[: cut_at - sent],
                        "more_body": True,
                    }
                )
            raise SimulatedDisconnect(f"connection dropped on purpose after {cut_at} bytes")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent += len(chunk)
    if cut_at is not None:
        raise SimulatedDisconnect(f"connection dropped on purpose after {sent} bytes")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
