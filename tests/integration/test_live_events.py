"""Live task events (SSE) over real HTTP: uvicorn on 127.0.0.1, an httpx2 streaming client.

The events come from the store, so the tests run on the memory store and on SQLite (and the
reconnect test on PostgreSQL too), with the engine in the serving manager or in another one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sora_tasks import PollingPolicy, TaskManager
from sora_tasks.contrib._events import ChangeFeed, decode_event_id
from sora_tasks.contrib.fastapi import create_router
from sora_tasks.storage import ChangeCursor, InMemoryStore, SQLStore, TaskStore
from sora_tasks.testing import FakeBehaviour, FakeProvider
from sora_tasks.testing._server import base_url, bind, make_server
from sora_tasks.testing._task_factories import make_task
from tests.integration.test_fastapi_router import TASK_FIELDS, serving, user_from_header
from tests.sql_databases import database_url, sqlite_url
from tests.sse import Message, messages

pytestmark = pytest.mark.anyio

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
# progress moves in a few visible steps, then the job completes
RENDER = FakeBehaviour(render_for=0.4, poll_after=0.05, progress_step=25)
SLOW = FakeBehaviour(render_for=3600, poll_after=0.05)
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}

Json = dict[str, Any]


@dataclass
class Live:
    client: httpx2.AsyncClient
    manager: TaskManager

    async def create(self, user: str = "u1", prompt: str = "a cat") -> Json:
        answer = await self.client.post(
            "/api/video/tasks", json={"prompt": prompt}, headers={"x-user": user}
        )
        assert answer.status_code == 201, answer.text
        task: Json = answer.json()
        return task

    def stream(
        self, path: str, user: str = "u1", last_event_id: str | None = None
    ) -> Any:  # the stream's context manager
        headers = {"x-user": user}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return self.client.stream("GET", f"/api/video{path}", headers=headers)

    async def rest(self, video_id: str, user: str = "u1") -> Json:
        answer = await self.client.get(f"/api/video/tasks/{video_id}", headers={"x-user": user})
        task: Json = answer.json()
        return task


@asynccontextmanager
async def live(
    store: TaskStore | None = None,
    *,
    poll: bool = True,
    fake: FakeProvider | None = None,
    **router_options: Any,
) -> AsyncIterator[Live]:
    fake = fake or FakeProvider(behaviour=RENDER)
    manager = TaskManager(providers={"fake": fake}, store=store, policy=FAST, poll=poll)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)
    options: dict[str, Any] = {"events_poll_interval": 0.05} | router_options
    app.include_router(create_router(manager, current_user=user_from_header, **options))
    async with serving(app) as url, httpx2.AsyncClient(base_url=url, timeout=10) as client:
        yield Live(client, manager)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> TaskStore:
    if request.param == "memory":
        return InMemoryStore()
    return SQLStore(sqlite_url(tmp_path))  # the manager closes it


def events_only(received: list[Message]) -> list[Message]:
    return [message for message in received if message.comment is None]


def later_or_same(event_id: str, other: str) -> bool:
    return bool(decode_event_id(event_id) >= decode_event_id(other))


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Re-check ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.01)


async def test_one_task_streams_its_state_then_each_change_and_ends_after_the_final_one(
    store: TaskStore,
) -> None:
    async with live(store) as api:
        task = await api.create()
        received: list[Message] = []
        with anyio.fail_after(10):
            async with api.stream(f"/tasks/{task['videoId']}/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["cache-control"] == "no-store"
                received = [message async for message in messages(response)]
        events = events_only(received)
        assert {event.event for event in events} == {"task"}
        shown = [event.json() for event in events]
        assert all(set(data) == TASK_FIELDS for data in shown)
        assert {data["videoId"] for data in shown} == {task["videoId"]}
        assert shown[0]["status"] in ("QUEUED", "PROCESSING")
        assert shown[-1]["status"] == "COMPLETED"
        assert [data["status"] for data in shown[:-1]] == [
            data["status"] for data in shown[:-1] if data["status"] not in FINAL
        ]
        progress = [data["progress"] for data in shown]
        assert progress == sorted(progress) and len(set(progress)) >= 3  # it moved, live
        # the final event is exactly what the REST route answers
        assert shown[-1] == await api.rest(task["videoId"])
        ids = [event.id for event in events]
        assert all(isinstance(event_id, str) and event_id for event_id in ids)
        assert all(later_or_same(b or "", a or "") for a, b in itertools.pairwise(ids))

        # a browser resuming after the end is told to stop reconnecting
        async with api.stream(f"/tasks/{task['videoId']}/events", last_event_id=ids[-1]) as again:
            assert again.status_code == 204
        # resuming before the end gets the current state, final, and the end
        async with api.stream(f"/tasks/{task['videoId']}/events", last_event_id=ids[0]) as rest:
            tail = events_only([message async for message in messages(rest)])
        assert [event.json() for event in tail] == [shown[-1]]


async def test_another_users_task_is_404_before_any_stream() -> None:
    async with live() as api:
        task = await api.create(user="u1")
        for path in (f"/tasks/{task['videoId']}/events", "/tasks/video_unknown/events"):
            async with api.stream(path, user="u2") as response:
                await response.aread()
                assert response.status_code == 404
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"]["code"] == "task_not_found"
        async with api.stream("/events", user="") as response:
            await response.aread()
            assert response.status_code == 401


@pytest.mark.parametrize("bad", ["garbage", "eyJub3QiOiJhIGxpc3QifQ", "WyJub3QgYSBkYXRlIiwieCJd"])
async def test_a_bad_last_event_id_answers_400_naming_the_header(bad: str) -> None:
    async with live() as api:
        task = await api.create()
        for path in (f"/tasks/{task['videoId']}/events", "/events"):
            async with api.stream(path, last_event_id=bad) as response:
                await response.aread()
                assert response.status_code == 400
                error = response.json()["error"]
                assert error["field"] == "last-event-id"
                assert "Last-Event-ID" in error["message"]


async def test_heartbeats_keep_an_idle_stream_alive() -> None:
    async with live(heartbeat_interval=0.05) as api:
        started = time.monotonic()
        comments = 0
        with anyio.fail_after(5):
            async with api.stream("/events") as response:
                async for message in messages(response):
                    assert message.comment is not None, "no task changed, so only comments"
                    comments += 1
                    if comments == 3:
                        break
        assert time.monotonic() - started >= 0.1  # three, spaced by the interval


async def test_the_users_stream_carries_only_that_users_tasks_and_does_not_end(
    store: TaskStore,
) -> None:
    async with live(store) as api:
        mine: dict[str, Json] = {}
        with anyio.fail_after(10):
            async with api.stream("/events") as response:
                assert response.status_code == 200
                first = await api.create(user="u1")
                await api.create(user="u2", prompt="someone else's")
                second = await api.create(user="u1")
                async for message in messages(response):
                    if message.comment is not None:
                        continue
                    data = message.json()
                    assert data["userId"] == "u1" and set(data) == TASK_FIELDS
                    mine[data["videoId"]] = data
                    if len(mine) == 2 and {t["status"] for t in mine.values()} == {"COMPLETED"}:
                        break
        assert set(mine) == {first["videoId"], second["videoId"]}
        for video_id, data in mine.items():
            assert data == await api.rest(video_id)


async def test_a_reconnecting_client_misses_no_final_state_and_gets_nothing_stale(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The browser's case over a real socket: read a little, drop the connection mid-stream,
    let the tasks move on, come back with ``Last-Event-ID``."""
    async with database_url("sqlite", tmp_path, request) as url:
        fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.6, poll_after=0.05))
        async with live(SQLStore(url), fake=fake) as api:
            hub = api.manager._events._subscribers  # the streams' wake-up subscriptions
            baseline = len(hub)
            tasks = [await api.create(prompt=f"task {n}") for n in range(6)]
            latest: dict[str, Json] = {}
            last_id = ""
            with anyio.fail_after(10):
                async with api.stream("/events") as response:
                    async for message in messages(response):
                        if message.comment is None:
                            latest[message.json()["videoId"]] = message.json()
                            last_id = message.id or ""
                        if len(latest) >= 3:
                            break  # mid-stream: most tasks are still rendering
            unfinished = [t for t in latest.values() if t["status"] not in FINAL]
            assert unfinished, "the client dropped out while tasks were still running"
            watched = unfinished[0]

            async def stream_ended() -> bool:
                return len(hub) == baseline

            async def moved_on() -> bool:
                return bool((await api.rest(watched["videoId"]))["progress"] > watched["progress"])

            await eventually(stream_ended, timeout=5, what="the server to end the dropped stream")
            await eventually(moved_on, timeout=5, what="a task to change while nobody listens")

            resumed: list[Message] = []
            with anyio.fail_after(10):
                async with api.stream("/events", last_event_id=last_id) as response:
                    async for message in messages(response):
                        if message.comment is not None:
                            continue
                        resumed.append(message)
                        data = message.json()
                        seen = latest.get(data["videoId"])
                        # never an older state of a task than one already shown
                        assert seen is None or data["updatedAt"] >= seen["updatedAt"]
                        assert (seen or data)["progress"] <= data["progress"]
                        latest[data["videoId"]] = data
                        if len(latest) == len(tasks) and all(
                            t["status"] in FINAL for t in latest.values()
                        ):
                            break
            assert all(message.id and later_or_same(message.id, last_id) for message in resumed)
            for task in tasks:
                assert latest[task["videoId"]] == await api.rest(task["videoId"])


async def test_events_come_from_the_store_when_the_engine_is_elsewhere(tmp_path: Path) -> None:
    """The serving manager never polls; a second manager on the same SQLite file runs the
    engine, so no change reaches the serving process's event hub."""
    url = sqlite_url(tmp_path)
    engine = TaskManager(
        providers={"fake": FakeProvider(behaviour=RENDER)}, store=SQLStore(url), policy=FAST
    )
    async with live(SQLStore(url), poll=False) as api, engine:
        with anyio.fail_after(10):
            async with api.stream("/events") as response:
                task = await engine.create("made elsewhere", user_id="u1")
                statuses = []
                async for message in messages(response):
                    if message.comment is None:
                        data = message.json()
                        assert data["videoId"] == task.id
                        statuses.append(data["status"])
                        if data["status"] == "COMPLETED":
                            break
            async with api.stream(f"/tasks/{task.id}/events") as response:
                assert [
                    m.json()["status"] for m in events_only([m async for m in messages(response)])
                ] == ["COMPLETED"]
        assert statuses[-1] == "COMPLETED" and len(statuses) >= 2


async def test_streams_end_cleanly_when_the_server_shuts_down() -> None:
    """A stream that never ends by itself is closed by the server's shutdown, promptly (well
    within uvicorn's graceful timeout), and the app's lifespan then closes the manager."""
    manager = TaskManager(
        providers={"fake": FakeProvider(behaviour=SLOW)}, store=InMemoryStore(), policy=FAST
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(manager, current_user=user_from_header))
    server = make_server(app)
    sock = bind()
    ended = anyio.Event()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(server.serve, [sock])
                while not server.started:  # noqa: ASYNC110 - uvicorn offers only a flag
                    await anyio.sleep(0.005)
                async with httpx2.AsyncClient(base_url=base_url(sock), timeout=10) as client:
                    headers = {"x-user": "u1"}
                    created = await client.post(
                        "/api/video/tasks", json={"prompt": "an hour"}, headers=headers
                    )
                    async with client.stream("GET", "/api/video/events", headers=headers) as got:
                        async for message in messages(got):
                            if message.comment is None:
                                assert message.json()["videoId"] == created.json()["videoId"]
                                server.should_exit = True
                        ended.set()
                stopping = time.monotonic()
            assert time.monotonic() - stopping < 3
    finally:
        sock.close()
    assert ended.is_set()


@pytest.mark.postgres
async def test_a_write_committed_late_with_an_earlier_time_is_not_missed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """On PostgreSQL ``updated_at`` is the writing transaction's start: a transaction that began
    first and commits last lands behind rows already read. The overlap window catches it; a
    cursor that only moves forward (no overlap) would not."""
    async with database_url("postgres", tmp_path, request) as url:
        store = SQLStore(url)
        try:
            now = await store.now()
            early, late = (
                await store.insert(make_task(now, user_id="u1", prompt="early")),
                await store.insert(make_task(now, user_id="u1", prompt="late")),
            )
            feeds = {
                overlap: ChangeFeed(store, "u1", ChangeCursor(now), overlap=timedelta(seconds=s))
                for overlap, s in (("overlap", 10), ("naive", 0))
            }
            for feed in feeds.values():
                await feed.read()
            sneaky = create_async_engine(url, poolclass=NullPool)
            try:
                async with sneaky.connect() as conn:
                    # this transaction starts now, so its now() is before the store's write
                    await conn.execute(
                        text(
                            "UPDATE sora_tasks SET progress = 50, version = version + 1,"
                            " updated_at = now() WHERE id = :id"
                        ),
                        {"id": early.id},
                    )
                    moved = await store.update(late.id, progress=10)
                    for feed in feeds.values():
                        assert [task.id for task, _ in await feed.read()] == [late.id]
                    await conn.commit()
            finally:
                await sneaky.dispose()
            committed = await store.get(early.id)
            assert committed.updated_at < moved.updated_at  # the late commit is behind
            caught = await feeds["overlap"].read()
            assert [(task.id, task.progress) for task, _ in caught] == [(early.id, 50)]
            assert await feeds["overlap"].read() == []  # and only once
            assert await feeds["naive"].read() == []  # the naive cursor lost it
        finally:
            await store.close()
