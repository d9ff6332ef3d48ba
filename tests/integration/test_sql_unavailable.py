"""A database that cannot be reached raises the library's error, without connection details."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import anyio
import pytest

from sora_tasks import StoreUnavailableError
from sora_tasks._models import TaskQuery
from sora_tasks.storage import SQLStore

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_postgresql_is_store_unavailable_and_keeps_the_password() -> None:
    store = SQLStore(f"postgresql+asyncpg://app:hunter2-canary@127.0.0.1:{closed_port()}/tasks")
    try:
        with pytest.raises(
            StoreUnavailableError, match="postgresql task store is unavailable"
        ) as caught:
            await store.list(TaskQuery())
    finally:
        await store.close()
    assert "hunter2-canary" not in str(caught.value)
    assert "hunter2-canary" not in repr(store)


async def test_an_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'tasks.db'}", create=False)
    try:
        with pytest.raises(
            StoreUnavailableError, match=r"directory of the SQLite database .* does not exist"
        ):
            await store.get("video_00000000-0000-4000-8000-000000000000")
    finally:
        await store.close()


async def test_a_cancelled_call_leaves_no_connection_teardown_behind(tmp_path: Path) -> None:
    # regression: a statement cut by cancellation left aiosqlite's connection teardown running,
    # and asyncio.run() then hung at exit waiting for it
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    try:
        await store.list(TaskQuery())
        for delay in (0, 0.0005, 0.001, 0.002, 0.005):
            for _ in range(5):
                with anyio.move_on_after(delay):
                    await store.list(TaskQuery())
    finally:
        await store.close()
    leftovers = [task for task in asyncio.all_tasks() if "terminate" in repr(task)]
    assert leftovers == []
