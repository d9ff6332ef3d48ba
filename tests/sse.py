"""A small Server-Sent Events reader over an httpx2 streaming response, for the tests.

It follows the WHATWG event-stream parsing rules the tests rely on: ``field: value`` lines, a
blank line ends an event, lines starting with ``:`` are comments (heartbeats), several ``data``
lines join with newlines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2


@dataclass
class Message:
    """One event (``event``, ``data``, ``id``) or one comment (``comment`` set, nothing else)."""

    event: str = "message"
    data_lines: list[str] = field(default_factory=list)
    id: str | None = None
    comment: str | None = None

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return json.loads(self.data)


async def messages(response: httpx2.Response) -> AsyncIterator[Message]:
    """Events and comments in the order they arrive; ends when the server ends the stream."""
    current = Message()
    started = False
    async for line in response.aiter_lines():
        if line == "":
            if started:
                yield current
            current, started = Message(), False
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            yield Message(comment=value)
        elif name == "data":
            current.data_lines.append(value)
            started = True
        elif name == "event":
            current.event, started = value, True
        elif name == "id":
            current.id, started = value, True
