"""Integration fixtures: SQL stores on SQLite and PostgreSQL, and real HTTP servers.

The SQL-store tests run on each database; the HTTP tests serve ASGI apps (the provider
simulator) with uvicorn on 127.0.0.1, an ephemeral port each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import URL

from sora_tasks.storage import SQLStore
from sora_tasks.testing._server import serve_in_thread
from sora_tasks.testing._simulator_asgi import ASGIApp
from tests.sql_databases import database_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    name: str = request.param
    return name


@pytest.fixture
async def sql_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[URL]:
    """A migrated, empty database of its own for the test."""
    async with database_url(backend, tmp_path, request) as url:
        yield url


@pytest.fixture
async def sql_store(sql_url: URL) -> AsyncIterator[SQLStore]:
    """A store on the test's database."""
    store = SQLStore(sql_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Serve ASGI apps with uvicorn in background threads: ``serve(app)`` returns the base URL.

    Every server started through it stops when the test ends.
    """
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))
