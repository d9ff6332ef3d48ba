"""The parts of the live-event streams that need no server: event ids and the change feed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from sora_tasks import InvalidRequestError, TaskManager
from sora_tasks.contrib._change_feed import ChangeFeed, decode_event_id, encode_event_id
from sora_tasks.contrib.fastapi import create_router
from sora_tasks.storage import ChangeCursor, InMemoryStore
from sora_tasks.testing import FakeProvider
from sora_tasks.testing._task_factories import make_task

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        ChangeCursor(START, "video_1"),
        ChangeCursor(START + timedelta(microseconds=7)),
        ChangeCursor(START, "video_é/\n"),
    ],
)
def test_event_ids_round_trip_and_are_header_safe(cursor: ChangeCursor) -> None:
    event_id = encode_event_id(cursor)
    assert decode_event_id(event_id) == cursor
    assert event_id.isascii() and event_id.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "bad",
    [
        "garbage!",
        "x",
        b64({"a": 1, "b": 2}),
        b64(["2026-11-30T08:00:00", "video_1"]),  # no time zone
        b64(["2026-11-30T08:00:00+00:00", 5]),
        b64(["2026-11-30T08:00:00+00:00", "video_1", 3]),
        b64([None, "video_1"]),
    ],
)
def test_a_forged_event_id_is_a_clear_invalid_request(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="Last-Event-ID is not an id this API sent") as e:
        decode_event_id(bad)
    assert e.value.field == "last-event-id"


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_stream_timings_must_be_positive(value: float) -> None:
    manager = TaskManager(providers={"fake": FakeProvider()})
    with pytest.raises(ValueError, match="heartbeat_interval must be more than 0 seconds"):
        create_router(manager, current_user=lambda: "u1", heartbeat_interval=value)
    with pytest.raises(ValueError, match="events_poll_interval must be more than 0 seconds"):
        create_router(manager, current_user=lambda: "u1", events_poll_interval=value)


@pytest.mark.anyio
async def test_the_feed_delivers_each_new_version_once() -> None:
    clock = Clock()
    store = InMemoryStore(clock=clock)
    feed = ChangeFeed(store, "u1", ChangeCursor(START), overlap=timedelta(seconds=10))
    one = await store.insert(make_task(START, user_id="u1"))
    await store.insert(make_task(START, user_id="u2"))
    assert [task for task, _ in await feed.read()] == [one]
    assert await feed.read() == []  # within the overlap, but already handled
    clock.now += timedelta(seconds=1)
    moved = await store.update(one.id, progress=30)
    [(task, cursor)] = await feed.read()
    assert (task, cursor) == (moved, ChangeCursor.of(moved))
    assert feed.cursor == cursor


@pytest.mark.anyio
@pytest.mark.parametrize(("overlap", "caught"), [(10, True), (0, False)])
async def test_a_write_that_lands_behind_the_cursor_is_caught_within_the_overlap(
    overlap: int, caught: bool
) -> None:
    """The PostgreSQL case, on the memory store's clock: a write stamped earlier than a change
    already read (its transaction began first, committed last)."""
    clock = Clock()
    store = InMemoryStore(clock=clock)
    early = await store.insert(make_task(START, user_id="u1"))
    late = await store.insert(make_task(START, user_id="u1"))
    feed = ChangeFeed(store, "u1", ChangeCursor(START), overlap=timedelta(seconds=overlap))
    await feed.read()
    clock.now = START + timedelta(seconds=5)
    await store.update(late.id, progress=10)
    assert [task.id for task, _ in await feed.read()] == [late.id]
    clock.now = START + timedelta(seconds=2)  # the slow transaction's time
    behind = await store.update(early.id, progress=50)
    found = [task for task, _ in await feed.read()]
    assert found == ([behind] if caught else [])
    if caught:
        # its event's id does not go back: a client resuming from it misses nothing newer
        assert feed.cursor == ChangeCursor.of(await store.get(late.id))


@pytest.mark.anyio
async def test_the_feed_forgets_tasks_behind_its_window_and_still_sees_them_change() -> None:
    clock = Clock()
    store = InMemoryStore(clock=clock)
    feed = ChangeFeed(store, "u1", ChangeCursor(START), overlap=timedelta(seconds=10))
    task = await store.insert(make_task(START, user_id="u1"))
    await feed.read()
    clock.now = START + timedelta(minutes=5)
    other = await store.insert(make_task(clock.now, user_id="u1"))
    assert [found for found, _ in await feed.read()] == [other]
    clock.now += timedelta(seconds=1)
    moved = await store.update(task.id, progress=5)
    assert [found for found, _ in await feed.read()] == [moved]


@pytest.mark.anyio
async def test_the_feed_pages_through_a_burst() -> None:
    store = InMemoryStore(clock=Clock())
    feed = ChangeFeed(store, "u1", ChangeCursor(START), overlap=timedelta(seconds=10))
    inserted = [await store.insert(make_task(START, user_id="u1")) for _ in range(1201)]
    found = [task for task, _ in await feed.read()]
    assert found == sorted(inserted, key=ChangeCursor.of)
