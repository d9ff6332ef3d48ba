"""The worker's health endpoints (``--health-port``): ``/livez``, ``/readyz`` and ``/healthz``.

A probe asks one question per connection, so the server is a plain TCP listener speaking just
enough HTTP/1.1 for it: one GET, one answer, connection closed. (A full ASGI server would
install its own signal handlers and take SIGTERM away from the worker's graceful stop.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketAttribute, SocketStream

from .._health import Health
from .._manager import TaskManager

__all__ = ["serve_health"]

_MAX_HEAD = 8 * 1024
_READ_TIMEOUT = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@asynccontextmanager
async def serve_health(manager: TaskManager, host: str, port: int) -> AsyncIterator[int]:
    """Answer health probes on ``host:port`` while the block runs; yields the bound port.

    ``/livez`` is 200 while the engine turns, ``/readyz`` while the store answers too,
    ``/healthz`` is the same as ``/readyz``; each answers 503 otherwise, with the
    :class:`~sora_tasks.Health` as JSON.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)

    async def handle(stream: SocketStream) -> None:
        async with stream:
            status, body = await _answer(manager, stream)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            await stream.send(head.encode() + body)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield listener.extra(SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
        group.cancel_scope.cancel()


async def _answer(manager: TaskManager, stream: SocketStream) -> tuple[int, bytes]:
    head = await _read_head(stream)
    parts = head.split(b"\r\n", 1)[0].split() if head else []
    if len(parts) != 3:
        return 400, b'{"error": "not an HTTP request"}'
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target not in (b"/livez", b"/readyz", b"/healthz"):
        return 404, b'{"error": "try /livez, /readyz or /healthz"}'
    if method != b"GET":
        return 405, b'{"error": "GET only"}'
    health = await manager.health()
    ok = health.live if target == b"/livez" else health.ready
    return 200 if ok else 503, _json(health)


async def _read_head(stream: SocketStream) -> bytes | None:
    data = b""
    with anyio.move_on_after(_READ_TIMEOUT):
        while b"\r\n\r\n" not in data and len(data) < _MAX_HEAD:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
        return data
    return None


def _json(health: Health) -> bytes:
    return json.dumps(health.to_dict()).encode()
