"""Live task events for the FastAPI router: Server-Sent Events read from the task store.

Every event is ``event: task`` with the task's REST JSON as ``data`` and an opaque ``id``: a
place in the store's change feed (:meth:`TaskStore.changes`). The store is the source, so the
engine may run in another process; a manager in this process wakes the streams early through
its event hub. A reconnecting client sends the last id it saw as ``Last-Event-ID`` and is sent
every task whose state changed since, each in its latest state.

The feed is read with an overlap: on PostgreSQL a transaction that began earlier can commit
after a later one was read, with the smaller ``updated_at``, so each read starts ``overlap``
behind the cursor and drops the ``(task, version)`` pairs this stream has already handled.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from functools import partial
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.responses import Response

from .._exceptions import InvalidRequestError, StoreUnavailableError, TaskNotFoundError
from .._manager import TaskManager
from .._models import Task
from ..storage import ChangeCursor, TaskStore
from ._rest_models import TaskBody

__all__ = ["ChangeFeed", "LiveEvents", "decode_event_id", "encode_event_id"]

logger = logging.getLogger("sora_tasks")

EVENT_NAME: Final = "task"
_PAGE: Final = 500
# how many tasks' last sent JSON a stream remembers, to skip writes no client can see (a lease
# taken or renewed); forgetting one costs at most one repeated event
_REMEMBERED: Final = 4096
# how long a stream may take to end by itself once the server shuts down (it takes a moment)
_SHUTDOWN_GRACE: Final = 2.0


def encode_event_id(cursor: ChangeCursor) -> str:
    """The opaque SSE id of a place in the change feed."""
    raw = json.dumps([cursor.updated_at.isoformat(), cursor.task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_event_id(event_id: str) -> ChangeCursor:
    """Undo :func:`encode_event_id`; any other string is an :class:`InvalidRequestError`."""
    try:
        padded = event_id + "=" * (-len(event_id) % 4)
        updated_at, task_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(updated_at)
        if when.tzinfo is None or not isinstance(task_id, str):
            raise ValueError("not an event id of this API")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            "Last-Event-ID is not an id this API sent; reconnect without it",
            field="last-event-id",
        ) from exc
    return ChangeCursor(when, task_id)


class ChangeFeed:
    """One stream's reader of the store's change feed: each new state of a task once, in
    ``(updated_at, id)`` order, none missed when commits land out of order within ``overlap``.
    """

    def __init__(
        self, store: TaskStore, user_id: str | None, cursor: ChangeCursor, *, overlap: timedelta
    ) -> None:
        self._store = store
        self._user_id = user_id
        self._cursor = cursor
        self._overlap = overlap
        self._handled: dict[str, tuple[datetime, int]] = {}

    @property
    def cursor(self) -> ChangeCursor:
        """The furthest place read so far."""
        return self._cursor

    async def read(self) -> list[tuple[Task, ChangeCursor]]:
        """Tasks changed since the last read, each with the cursor to resume after it."""
        after = ChangeCursor(self._cursor.updated_at - self._overlap)
        found: list[tuple[Task, ChangeCursor]] = []
        while True:
            page = await self._store.changes(user_id=self._user_id, after=after, limit=_PAGE)
            for task in page:
                handled = self._handled.get(task.id)
                if handled is not None and handled[1] >= task.version:
                    continue
                self._handled[task.id] = (task.updated_at, task.version)
                self._cursor = max(self._cursor, ChangeCursor.of(task))
                found.append((task, self._cursor))
            if len(page) < _PAGE:
                break
            after = ChangeCursor.of(page[-1])
        horizon = self._cursor.updated_at - self._overlap
        # a task last changed before the horizon is read again only once it changes again
        self._handled = {key: seen for key, seen in self._handled.items() if seen[0] >= horizon}
        return found


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


def _event(body: TaskBody, cursor: ChangeCursor) -> ServerSentEvent:
    data = body.model_dump_json(by_alias=True)
    return ServerSentEvent(data, event=EVENT_NAME, id=encode_event_id(cursor))


Render = Callable[[Task], TaskBody]
Producer = Callable[
    [MemoryObjectSendStream[ServerSentEvent], anyio.Event], Coroutine[None, None, None]
]


class LiveEvents:
    """The two event streams the router serves, with their timing.

    ``heartbeat`` seconds between SSE comments that keep proxies from closing an idle stream;
    the store is read every ``poll_interval`` seconds, or at once when this process's manager
    publishes a change; reads start ``overlap`` behind the cursor (see the module docstring).
    """

    def __init__(
        self,
        manager: TaskManager,
        *,
        heartbeat: float,
        poll_interval: float,
        overlap: timedelta = timedelta(seconds=10),
    ) -> None:
        for name, value in (("heartbeat", heartbeat), ("poll_interval", poll_interval)):
            if not value > 0:
                raise ValueError(f"the events {name} must be more than 0 seconds, not {value}")
        self._manager = manager
        self._heartbeat = heartbeat
        self._poll_interval = poll_interval
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
        # the producer runs in the response's task group, so it may hold a task group of its
        # own; both ends are closed when the response ends, even if the producer never started.
        # On shutdown the producer ends the stream itself: a stream cut off by cancellation
        # would end without its last chunk, an error for the server and the client
        send, receive = anyio.create_memory_object_stream[ServerSentEvent]()
        stop = anyio.Event()

        def close() -> None:
            send.close()
            receive.close()

        return EventSourceResponse(
            receive,
            ping=self._heartbeat,
            data_sender_callable=partial(producer, send, stop),
            background=BackgroundTask(close),
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
            while not task.is_terminal:
                await wakeup.wait(self._poll_interval)
                try:
                    current = await store.get(task.id)
                except TaskNotFoundError:
                    break  # deleted by a clean-up: nothing more will happen to it
                except StoreUnavailableError as exc:
                    logger.warning("live events: %s; retrying", exc)
                    continue
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
            while True:
                try:
                    changed = await feed.read()
                except StoreUnavailableError as exc:
                    logger.warning("live events: %s; retrying", exc)
                    changed = []
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
