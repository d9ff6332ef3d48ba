"""A recording HTTP server for equivalence tests: it keeps every request and answers as told.

The same job goes through a provider's official client and through our adapter, each pointed at
one of these on 127.0.0.1; the tests then compare what arrived.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Recorded", "Recorder"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: method, path, headers (lower-case names) and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def matters(self, names: Iterable[str]) -> dict[str, str]:
        """The headers among ``names`` that were sent; a content type only with a body (some
        clients name one on a bodiless DELETE, and nothing reads it)."""
        wanted = [n for n in names if self.body or n != "content-type"]
        return {name: self.headers[name] for name in wanted if name in self.headers}

    def json(self) -> object:
        """The body as JSON, or ``None`` when empty."""
        return json.loads(self.body) if self.body else None


Answer = Callable[[Recorded], tuple[int, object]]
"""What to answer a request with: a status and a JSON body (``None``: an empty body)."""


class Recorder:
    """An ASGI app that keeps every request in ``requests`` and answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[Recorded] = []
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        recorded = Recorded(scope["method"], scope["path"], headers, body)
        self.requests.append(recorded)
        status, answer = self._answer(recorded)
        payload = b"" if answer is None else json.dumps(answer).encode()
        kind = [(b"content-type", b"application/json")] if payload else []
        await send({"type": "http.response.start", "status": status, "headers": kind})
        await send({"type": "http.response.body", "body": payload})
