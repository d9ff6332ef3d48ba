"""Fan-out of task changes to whoever listens: ``wait``, ``events()`` and ``on_event`` callbacks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._models import Task, TaskStatus
from ._telemetry import record_transition

__all__ = ["EventHub", "TaskEvent"]

logger = logging.getLogger("sora_tasks")

EventKind = Literal["created", "status", "progress", "updated"]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One observed change of a task: ``kind`` says what moved, ``task`` is the new snapshot."""

    kind: EventKind
    task: Task
    previous_status: TaskStatus | None = None


class EventHub:
    """Publishes events without ever blocking the publisher.

    A subscriber whose buffer is full misses events rather than stalling the poller; ``wait``
    re-reads the store, so a missed event only delays it.
    """

    def __init__(self) -> None:
        self._subscribers: set[MemoryObjectSendStream[TaskEvent]] = set()
        self._callbacks: list[Callable[[TaskEvent], object]] = []

    def add_callback(self, callback: Callable[[TaskEvent], object]) -> None:
        """Call ``callback`` with every event, in the publisher's task. Exceptions are logged."""
        self._callbacks.append(callback)

    def publish(self, previous: Task | None, task: Task) -> None:
        """Announce ``task``'s new snapshot, classified against ``previous``."""
        record_transition(previous, task)
        if not self._subscribers and not self._callbacks:
            return  # nobody listens (the engine publishes on every poll)
        if previous is None:
            event = TaskEvent("created", task)
        elif previous.status is not task.status:
            event = TaskEvent("status", task, previous.status)
        elif previous.progress != task.progress:
            event = TaskEvent("progress", task, previous.status)
        else:
            event = TaskEvent("updated", task, previous.status)
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except anyio.WouldBlock:
                logger.debug(
                    "event subscriber is full; dropping an event", extra={"task_id": task.id}
                )
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("on_event callback failed", extra={"task_id": task.id})

    @asynccontextmanager
    async def subscribe(
        self, buffer: int = 1024
    ) -> AsyncIterator[MemoryObjectReceiveStream[TaskEvent]]:
        """A stream of every event published while the context is open."""
        send, receive = anyio.create_memory_object_stream[TaskEvent](buffer)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
