"""A database that cannot be reached raises the library's error, without connection details."""

from __future__ import annotations

import socket
from pathlib import Path

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
