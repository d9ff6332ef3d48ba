"""The change feed as a live stream reads it, and the opaque event ids that name its places.

A stream follows :meth:`TaskStore.changes` with a cursor. The feed is read with an overlap: on
PostgreSQL ``updated_at`` is the writing transaction's start, so a transaction that began
earlier can commit after a later one was read, landing behind the cursor. Each read therefore
starts ``overlap`` behind the cursor and drops the ``(task, version)`` pairs this stream has
already handled.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Final

from .._exceptions import InvalidRequestError
from .._models import Task
from ..storage import ChangeCursor, TaskStore

__all__ = ["ChangeFeed", "decode_event_id", "encode_event_id"]

_PAGE: Final = 500


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
