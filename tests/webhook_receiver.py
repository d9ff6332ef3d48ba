"""A webhook receiver for tests: a raw ASGI app that verifies each delivery with
``standardwebhooks`` and records what arrived, served for real with ``serve_in_thread``.

``answer`` decides each answer from the delivery and how many times its ``webhook-id`` has
arrived (1 on the first): a status code, optionally after a delay.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from sora_tasks.testing._simulator_asgi import Receive, Scope, Send


@dataclass(frozen=True)
class Received:
    """One verified delivery."""

    id: str
    type: str
    task_id: str
    status: str
    progress: int
    headers: dict[str, str]
    body: bytes
    arrived: float


@dataclass(frozen=True)
class Answer:
    """What the receiver answers: ``status`` after ``delay`` seconds, with ``headers``."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Plan = Callable[[Received, int], Answer]


def always_ok(_: Received, __: int) -> Answer:
    """Accept everything at once."""
    return Answer()


class Receiver:
    """The ASGI app; ``received`` holds every verified delivery, in arrival order."""

    def __init__(self, secret: str, answer: Plan = always_ok) -> None:
        self._verifier = Webhook(secret)
        self.answer = answer
        self.received: list[Received] = []
        self.unverified = 0
        self.other_paths: list[str] = []
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """The ``webhook-id`` of every delivery, in arrival order (duplicates included)."""
        with self._lock:
            return [item.id for item in self.received]

    def count(self, delivery_id: str) -> int:
        """How many times ``delivery_id`` arrived."""
        with self._lock:
            return sum(1 for item in self.received if item.id == delivery_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/hooks":
            with self._lock:
                self.other_paths.append(scope["path"])
            await _respond(send, 200)
            return
        body = b""
        while True:
            message: Any = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        try:
            payload = self._verifier.verify(body, headers)
        except WebhookVerificationError:
            with self._lock:
                self.unverified += 1
            await _respond(send, 401)
            return
        item = Received(
            id=headers["webhook-id"],
            type=payload["type"],
            task_id=payload["data"]["videoId"],
            status=payload["data"]["status"],
            progress=payload["data"]["progress"],
            headers=headers,
            body=body,
            arrived=time.monotonic(),
        )
        with self._lock:
            self.received.append(item)
            seen = sum(1 for other in self.received if other.id == item.id)
        answer = self.answer(item, seen)
        if answer.delay:
            await anyio.sleep(answer.delay)
        await _respond(send, answer.status, answer.headers)


async def _respond(send: Send, status: int, headers: dict[str, str] | None = None) -> None:
    raw = [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": json.dumps({"ok": status < 300}).encode()})
