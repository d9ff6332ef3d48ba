"""Live task events for the FastAPI router: Server-Sent Events read from the task store.

Every event is ``event: task`` with the task's REST JSON as ``data`` and an opaque ``id``: a
place in the store's change feed (see :mod:`._change_feed`). The store is the source, so the
engine may run in another process; a manager in this process wakes the streams early through
its event hub. A reconnecting client sends the last id it saw as ``Last-Event-ID`` and is sent
every task whose state changed since, each in its latest state.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import partial
from typing import Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._exceptions import StoreUnavailableError, TaskNotFoundError
from .._manager import TaskManager
from .._models import Task
from ..storage import ChangeCursor
from ._change_feed import ChangeFeed, encode_event_id
from ._rest_models import TaskBody

__all__ = ["LiveEvents"]

logger = logging.getLogger("sora_tasks")

EVENT_NAME: Final = "task"
# how many tasks' last sent JSON a stream remembers, to skip writes no client can see (a poll
# that found nothing new); forgetting one costs at most one repeated event
_REMEMBERED: Final = 4096
# how long a stream may take to end by itself once the server shuts down (it takes a moment)
_SHUTDOWN_GRACE: Final = 2.0


class _Wakeup:
    """A flag the event hub raises, waited on with a bound."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()


class _Shown:
    """What a stream last sent for each task, but for ``updatedAt``; bounded."""

    def __init__(self) -> None:
        self._sent: OrderedDict[str, str] = OrderedDict()

    def is_new(self, body: TaskBody) -> bool:
        seen = body.model_dump_json(exclude={"updated_at"})
        if self._sent.get(body.video_id) == seen:
            self._sent.move_to_end(body.video_id)
            return False
        self._sent[body.video_id] = seen
        self._sent.move_to_end(body.video_id)
        if len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return True


class _Outage:
    """Logs a store outage once when a stream meets it and once when it is over; the stream
    keeps its heartbeats and reads again at its interval meanwhile."""

    def __init__(self) -> None:
        self._on = False

    def began(self, exc: StoreUnavailableError) -> None:
        if not self._on:
            logger.warning("live events wait for the task store: %s", exc)
        self._on = True

    def ended(self) -> None:
        if self._on:
            logger.info("live events: the task store answers again")
        self._on = False


def _event(body: TaskBody, cursor: ChangeCursor) -> ServerSentEvent:
    data = body.model_dump_json(by_alias=True)
    return ServerSentEvent(data, event=EVENT_NAME, id=encode_event_id(cursor))


class _EventStream(EventSourceResponse):
    """An SSE response fed through a memory stream by a producer task.

    The producer runs in the response's task group, so it may hold a task group of its own (an
    async generator may not). Both ends of the stream are closed however the response ends: a
    client gone, a failed send, a cancellation. On shutdown the producer ends the stream itself:
    a stream cut off by cancellation would end without its last chunk, an error for the server
    and for the client.
    """

    def __init__(
        self,
        send: MemoryObjectSendStream[ServerSentEvent],
        receive: MemoryObjectReceiveStream[ServerSentEvent],
        **options: Any,
    ) -> None:
        super().__init__(receive, **options)
        self._ends = (send, receive)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for end in self._ends:
                end.close()


Render = Callable[[Task], TaskBody]
Producer = Callable[
    [MemoryObjectSendStream[ServerSentEvent], anyio.Event], Coroutine[None, None, None]
]


class LiveEvents:
    """The two event streams the router serves, with their timing.

    ``heartbeat_interval`` seconds between SSE comments that keep proxies from closing an idle
    stream; the store is read every ``events_poll_interval`` seconds, or at once when this
    process's manager publishes a change; reads start ``overlap`` behind the cursor (see the
    module docstring).
    """

    def __init__(
        self,
        manager: TaskManager,
        *,
        heartbeat_interval: float,
        events_poll_interval: float,
        overlap: timedelta = timedelta(seconds=10),
    ) -> None:
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("events_poll_interval", events_poll_interval),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be more than 0 seconds, not {value}")
        self._manager = manager
        self._heartbeat = heartbeat_interval
        self._poll_interval = events_poll_interval
        self._overlap = overlap

    def task_stream(self, task: Task, after: ChangeCursor | None, render: Render) -> Response:
        """One task's events: its current state first (unless the client has it), every change
        after, ending once a terminal state has been sent.

        A client resuming after the terminal state is answered 204, which tells a browser's
        ``EventSource`` to stop reconnecting.
        """
        if after is not None and ChangeCursor.of(task) <= after and task.is_terminal:
            return Response(status_code=204)
        return self._response(partial(self._follow_task, task, after, render))

    async def user_stream(
        self, user_id: str, after: ChangeCursor | None, render: Render
    ) -> Response:
        """Every change to ``user_id``'s tasks since ``after`` (or since ``overlap`` ago, so
        that a client which has just listed the tasks misses nothing), then as they happen; it
        never ends by itself.
        """
        start = after if after is not None else ChangeCursor(await self._manager.store.now())
        return self._response(partial(self._follow_user, user_id, start, render))

    def _response(self, producer: Producer) -> Response:
        send, receive = anyio.create_memory_object_stream[ServerSentEvent]()
        stop = anyio.Event()
        return _EventStream(
            send,
            receive,
            ping=self._heartbeat,
            data_sender_callable=partial(producer, send, stop),
            shutdown_event=stop,
            shutdown_grace_period=_SHUTDOWN_GRACE,
        )

    async def _follow_task(
        self,
        task: Task,
        after: ChangeCursor | None,
        render: Render,
        send: MemoryObjectSendStream[ServerSentEvent],
        stop: anyio.Event,
    ) -> None:
        store = self._manager.store
        shown = _Shown()
        async with send, anyio.create_task_group() as group:
            wakeup = _Wakeup()
            group.start_soon(_cancel_on, stop, group.cancel_scope)
            group.start_soon(self._wake_on, wakeup, lambda changed: changed.id == task.id)
            body = render(task)
            shown.is_new(body)
            if after is None or ChangeCursor.of(task) > after:
                await send.send(_event(body, ChangeCursor.of(task)))
            outage = _Outage()
            while not task.is_terminal:
                await wakeup.wait(self._poll_interval)
                try:
                    current = await store.get(task.id)
                except TaskNotFoundError:
                    break  # deleted by a clean-up: nothing more will happen to it
                except StoreUnavailableError as exc:
                    outage.began(exc)
                    continue
                outage.ended()
                if current.version == task.version:
                    continue
                task = current
                body = render(task)
                if shown.is_new(body) or task.is_terminal:
                    await send.send(_event(body, ChangeCursor.of(task)))
            group.cancel_scope.cancel()

    async def _follow_user(
        self,
        user_id: str,
        start: ChangeCursor,
        render: Render,
        send: MemoryObjectSendStream[ServerSentEvent],
        stop: anyio.Event,
    ) -> None:
        store = self._manager.store
        shown = _Shown()
        feed = ChangeFeed(store, user_id, start, overlap=self._overlap)
        async with send, anyio.create_task_group() as group:
            wakeup = _Wakeup()
            group.start_soon(_cancel_on, stop, group.cancel_scope)
            group.start_soon(self._wake_on, wakeup, lambda changed: changed.user_id == user_id)
            outage = _Outage()
            while True:
                try:
                    changed = await feed.read()
                except StoreUnavailableError as exc:
                    outage.began(exc)
                    changed = []
                else:
                    outage.ended()
                for task, cursor in changed:
                    body = render(task)
                    if shown.is_new(body):
                        await send.send(_event(body, cursor))
                await wakeup.wait(self._poll_interval)

    async def _wake_on(self, wakeup: _Wakeup, wanted: Callable[[Task], bool]) -> None:
        async for event in self._manager.events():
            if wanted(event.task):
                wakeup.set()


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
