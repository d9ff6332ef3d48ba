"""``manager.health()``: liveness is the engine loop turning, readiness is the store answering;
and the worker's health endpoints serving the same over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import anyio
import httpx2
import pytest

from sora_tasks import Health, StoreUnavailableError, SyncTaskManager, Task, TaskManager
from sora_tasks.cli._health import serve_health
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeProvider

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class AwayStore(InMemoryStore):
    """A store whose database has gone away (only for the health check's round trip)."""

    async def now(self) -> datetime:
        raise StoreUnavailableError("the database is not accepting connections")


class HangingStore(InMemoryStore):
    """A store whose claims never return once ``hang`` is set: the engine loop stops turning."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def claim_due(
        self, *, owner: str, limit: int, lease_seconds: float, content: bool = False
    ) -> Sequence[Task]:
        if self.hang:
            await anyio.sleep_forever()
        return await super().claim_due(
            owner=owner, limit=limit, lease_seconds=lease_seconds, content=content
        )


async def test_an_open_polling_manager_is_live_and_ready() -> None:
    async with TaskManager(providers=FakeProvider()) as manager:
        health = await manager.health()
    assert health == Health(
        live=True,
        ready=True,
        engine="running",
        store="ok",
        store_seconds=health.store_seconds,
        providers=health.providers,
    )
    assert [(name, item.state.value) for name, item in health.providers.items()] == [
        ("default", "closed")
    ]
    assert health.store_seconds is not None
    assert health.store_seconds >= 0


async def test_a_manager_that_is_not_open_is_not_live() -> None:
    health = await TaskManager(providers=FakeProvider()).health()
    assert (health.live, health.ready, health.engine) == (False, False, "stopped")


async def test_an_api_process_without_polling_is_live_with_the_engine_off() -> None:
    async with TaskManager(providers=FakeProvider(), poll=False) as manager:
        health = await manager.health()
    assert (health.live, health.ready, health.engine) == (True, True, "off")


async def test_a_store_that_does_not_answer_makes_it_unready_but_still_live() -> None:
    async with TaskManager(providers=FakeProvider(), store=AwayStore()) as manager:
        health = await manager.health()
    assert (health.live, health.ready) == (True, False)
    assert health.store == "StoreUnavailableError: the database is not accepting connections"


async def test_an_engine_loop_that_stops_turning_is_reported_stalled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sora_tasks._poller.LIVENESS_GRACE", 0.05)
    store = HangingStore()
    async with TaskManager(providers=FakeProvider(), store=store) as manager:
        store.hang = True
        with anyio.fail_after(10):
            while (health := await manager.health()).live:  # noqa: ASYNC110 (no event to wait on)
                await anyio.sleep(0.02)
    assert health.engine == "stalled"
    assert not health.ready


async def test_the_health_endpoints_answer_over_http() -> None:
    async with (
        TaskManager(providers=FakeProvider(), store=AwayStore()) as manager,
        serve_health(manager, "127.0.0.1", 0) as port,
        httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        live = await client.get("/livez")
        ready = await client.get("/readyz")
        both = await client.get("/healthz")
        unknown = await client.get("/status")
        posted = await client.post("/livez")
    assert live.status_code == 200
    assert live.json()["engine"] == "running"
    assert ready.status_code == both.status_code == 503
    assert ready.json()["store"].startswith("StoreUnavailableError")
    assert unknown.status_code == 404
    assert posted.status_code == 405


async def test_the_health_server_answers_garbage_with_400() -> None:
    async with (
        TaskManager(providers=FakeProvider()) as manager,
        serve_health(manager, "127.0.0.1", 0) as port,
    ):
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(b"hello\r\n\r\n")
            answer = b""
            with anyio.fail_after(10):
                while True:
                    try:
                        answer += await stream.receive()
                    except anyio.EndOfStream:
                        break
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_the_sync_manager_answers_health_too() -> None:
    with SyncTaskManager(providers=FakeProvider()) as manager:
        health = manager.health()
    assert (health.live, health.ready, health.engine) == (True, True, "running")
